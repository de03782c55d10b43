"""Pruning end to end: intermediate values reported as printed, unpromising trials stopped."""

import re

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.record import PRUNED_AT_ATTR
from tests.conftest import SCRIPTS, report_config
from tests.harness import run_headless

pytestmark = pytest.mark.slow

EPOCHS = 30


def printed(tmp_path, number):
    log = (tmp_path / "results" / "logs" / f"{number}.log").read_text()
    return {int(e): (float(loss), float(t)) for e, loss, t in re.findall(r"epoch=(\d+) loss=(\S+) t=(\S+)", log)}


@pytest.mark.parametrize(
    "early_terminate",
    [
        {"type": "median", "n_startup_trials": 2, "n_warmup_steps": 3},
        {"type": "hyperband", "min_iter": 2, "eta": 3},
    ],
    ids=["median", "hyperband"],
)
def test_pruned_trials_stop_early_and_complete_trials_run_every_epoch(tmp_path, write_config, early_terminate):
    config = report_config(
        tmp_path,
        program=str(SCRIPTS / "curve.py"),
        method="random",
        seed=3,
        run_cap=14,
        parameters={"x": {"min": 0.0, "max": 10.0}, "epochs": {"value": EPOCHS}},
        early_terminate=early_terminate,
    )
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert re.search(r"trial \d+ PRUNED loss=", done.stdout), "progress lines show PRUNED trials"

    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 14
    for t in complete:
        epochs = printed(tmp_path, t.number)
        assert max(epochs) == EPOCHS
        assert sorted(t.intermediate_values) == list(range(1, EPOCHS + 1)), "every value reported, live"
        assert t.value == epochs[EPOCHS][0]
    for t in pruned:
        epochs = printed(tmp_path, t.number)
        assert max(epochs) < EPOCHS, "stopped before its last epoch"
        decided = t.user_attrs[PRUNED_AT_ATTR]
        assert epochs[max(epochs)][1] - epochs[decided][1] < 1.0, "stopped within a second of the deciding value"
        assert t.value == t.intermediate_values[max(t.intermediate_values)], "PRUNED with its last value"
