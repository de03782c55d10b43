"""The headless app end to end, through the real `lightning_app run app` command."""

import re

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.record import REASON_ATTR
from tests.conftest import report_config
from tests.harness import run_headless

pytestmark = pytest.mark.slow


def load(config):
    return optuna.load_study(study_name=config["name"], storage=config["storage"]).trials


def test_headless_sweep_runs_exactly_run_cap_trials_with_the_printed_values(tmp_path, write_config):
    config = report_config(tmp_path)  # grid over x in [-2.5, -1, 0, 1, 2.5]; the script prints loss=x
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    trials = load(config)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert sorted(t.params["x"] for t in trials) == [-2.5, -1, 0, 1, 2.5]
    for t in trials:
        log = (tmp_path / "results" / "logs" / f"{t.number}.log").read_text()
        printed = float(re.findall(r"loss=(\S+)", log)[-1])
        assert t.value == printed == t.params["x"]

    progress = [line for line in done.stdout.splitlines() if re.match(r"\[\d/5\] trial \d COMPLETE loss=", line)]
    assert len(progress) == 5
    assert "best trial" in done.stdout and "value=-2.5" in done.stdout
    assert re.search(r"^\{0: .*4: .*\}$", done.stdout, re.M), "the final {trial_number: value} dict"
    assert re.search(r"^sweep \S+: finished, 5/5 trials finished\n\{0: .*\}\nbest trial ", done.stdout, re.M), (
        "how the sweep ended, then the dict and the best trial"
    )


def test_failing_trials_keep_their_reason_and_the_sweep_goes_on(tmp_path, write_config):
    config = report_config(
        tmp_path,
        method="random",
        seed=3,
        run_cap=3,
        max_failures=30,
        parameters={"x": {"distribution": "int_uniform", "min": 0, "max": 8}, "mode": {"value": "auto"}},
    )
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    trials = load(config)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed, "the seed was chosen to mix failures in"
    for t in failed:
        expected = "ValueError: bad x" if t.params["x"] % 3 == 1 else "exit code 3"
        assert t.user_attrs[REASON_ATTR].startswith(expected)
    assert all(t.state != TrialState.RUNNING for t in trials)


def test_invalid_config_exits_at_once_with_one_line_naming_the_key(tmp_path, write_config):
    config = report_config(tmp_path, parameters={"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}})
    done = run_headless(write_config(config), cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == ["sweeps: invalid sweep config: parameters.lr.min: must be > 0 on a log scale (got 0)"]
    assert not (tmp_path / "sweep.db").exists(), "nothing started"
