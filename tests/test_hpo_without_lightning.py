import ast
import subprocess
import sys

from optuna.trial import TrialState

from tests.conftest import PROJECT

sys.path.insert(0, str(PROJECT / "scripts"))
import hpo_without_lightning  # noqa: E402


def test_every_trial_is_told_once_even_when_its_metric_is_zero():
    metrics = iter([0.0, 5.0, 0.0, -1.0, 2.0, 0.0])
    study = hpo_without_lightning.run_sweep(lambda params: next(metrics))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 6
    assert sorted(t.value for t in study.trials) == [-1.0, 0.0, 0.0, 0.0, 2.0, 5.0]


def test_script_prints_all_six_trials():
    out = subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "hpo_without_lightning.py")],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    lines = out.strip().splitlines()
    assert sum(" trial " in line and "COMPLETE" in line for line in lines) == 6, "a line per trial"
    values = ast.literal_eval(lines[-2])  # the worker's summary: {trial_number: metric}, then the best trial
    assert lines[-1].startswith("best trial ")
    assert sorted(values) == [0, 1, 2, 3, 4, 5]
    assert all(0 <= v <= 100 for v in values.values())
