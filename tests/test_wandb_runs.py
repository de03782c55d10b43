"""sweeps.wandb_runs: W&B scripts run unchanged, offline, with no account; what they log is read.

The scripts (tests/scripts/wandb_*.py) are written the ways W&B's docs write them; each runs for real
through the work, with a real wandb, and writes nothing under HOME.
"""

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from sweeps import wandb_runs
from tests.conftest import SCRIPTS, make_work

needs_wandb = pytest.mark.skipif(
    not wandb_runs.installed() and not os.environ.get("CI"), reason=f"wandb is optional: {wandb_runs.INSTALL}"
)


def test_the_parameters_file_nests_dotted_names_as_w_and_b_nests_them():
    text = wandb_runs.params_file_text({"lr": 0.1, "optimizer.name": "adam", "optimizer.momentum": 0.9, "n": 3})
    assert yaml.safe_load(text) == {
        "lr": {"value": 0.1},
        "optimizer": {"value": {"name": "adam", "momentum": 0.9}},
        "n": {"value": 3},
    }


def test_runs_are_offline_in_the_trials_directory_unless_the_user_chose_a_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    env = wandb_runs.environment(tmp_path / "trials" / "7", tmp_path / "p.yaml")
    assert env["WANDB_MODE"] == "offline" and env["WANDB_SWEEP_PARAM_PATH"] == str(tmp_path / "p.yaml")
    assert all(Path(env[k]).is_relative_to(tmp_path / "trials" / "7") for k in env if k.endswith("_DIR"))
    monkeypatch.setenv("WANDB_MODE", "online")  # the user's choice: their runs go to W&B's server
    assert "WANDB_MODE" not in wandb_runs.environment(tmp_path, tmp_path / "p.yaml")


@pytest.mark.parametrize(
    "source, uses",
    [("import wandb\n", True), ("def main():\n    from wandb import init\n", True), ("import wandbx\n", False)],
)
def test_a_program_uses_wandb_if_it_imports_it_anywhere(tmp_path, source, uses):
    (tmp_path / "train.py").write_text(source)
    assert wandb_runs.uses_wandb(str(tmp_path / "train.py")) is uses


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A HOME of the test's own, to check that nothing is written there."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return home


def run_trial(tmp_path, script, metric, params, number=0):
    work = make_work(SCRIPTS / script, tmp_path / "out", metric, timeout=120)
    try:
        work.run(number, params)
    finally:
        work._server.close()
    return work.result, work.values_of(number)


@needs_wandb
def test_argparse_and_wandb_init_config_args(tmp_path, home):
    result, values = run_trial(tmp_path, "wandb_argparse.py", "loss", {"lr": 0.2, "epochs": 3})
    assert result["state"] == "COMPLETE", result
    assert values == [(0, 2.0), (1, 1.0), (2, 0.2 * 10 / 3)], "each wandb.log of the metric, at W&B's step"
    assert result["value"] == 0.2 * 10 / 3
    assert result["user_attrs"]["metrics"] == {"loss": 0.2 * 10 / 3, "lr_seen": 0.2, "epoch": 2.0}
    runs = list((tmp_path / "out" / "trials" / "0" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb")), "the offline run, for `wandb sync`"
    assert list(home.iterdir()) == [], "nothing written under HOME"


@needs_wandb
def test_wandb_config_only_nested_parameters_and_explicit_steps(tmp_path, home, monkeypatch):
    monkeypatch.setenv("SEEN_FILE", str(tmp_path / "seen.json"))
    params = {"lr": 0.5, "units": 64, "optimizer.momentum": 0.9}
    result, values = run_trial(tmp_path, "wandb_config.py", "val_loss", params)
    assert json.loads((tmp_path / "seen.json").read_text()) == {"lr": 0.5, "units": 64, "momentum": 0.9}
    assert values == [(0, 1.5), (10, 1.0), (20, 0.5 + 1 / 3), (30, 0.75)]
    assert (result["state"], result["value"]) == ("COMPLETE", 0.75), "the last step's value, as W&B's summary has it"
    assert list(home.iterdir()) == []


@needs_wandb
def test_a_summary_set_by_hand_is_the_trials_value(tmp_path, home):
    result, values = run_trial(tmp_path, "wandb_summary.py", "loss", {"x": 1.0})
    assert [v for _, v in values] == [4.0, 2.0, 3.0]
    assert (result["state"], result["value"]) == ("COMPLETE", 2.0), "not the last logged: the summary"
    assert list(home.iterdir()) == []


@needs_wandb
def test_a_run_continuing_an_interrupted_trial_takes_its_w_and_b_run_id_again_and_a_fresh_retry_does_not(
    tmp_path, home
):
    work = make_work(SCRIPTS / "wandb_argparse.py", tmp_path / "out", "loss", timeout=120)
    params = {"lr": 0.2, "epochs": 2}
    try:
        work.run(0, params)  # the first trial; say it was then interrupted
        time.sleep(1.1)  # W&B names an offline run's directory by the second it started in
        work.run(3, params, first_trial=0, resume=True)
        time.sleep(1.1)
        work.run(4, params, first_trial=0, resume=False)  # a retry after the trial's own failure: from scratch
    finally:
        work._server.close()
    runs = sorted((tmp_path / "out" / "trials" / "0" / "wandb").glob("offline-run-*"))
    ids = [run.name.rsplit("-", 1)[1] for run in runs]
    assert len(ids) == 3 and ids[0] == ids[1] != ids[2], ids
    assert not (tmp_path / "out" / "trials" / "3").exists(), "retries share the first trial's directory"


@needs_wandb
def test_child_processes_that_call_wandb_init_do_not_become_the_trial(tmp_path, home):
    result, values = run_trial(tmp_path, "wandb_children.py", "loss", {"x": 2.0})
    assert (result["state"], result["value"], values) == ("COMPLETE", 2.5, [(0, 2.5)]), "the folds' mean only"
    runs = list((tmp_path / "out" / "trials" / "0" / "wandb").glob("offline-run-*"))
    assert len(runs) == 3, "the trial's run and one per fold, all offline in the trial's directory"
    assert list(home.iterdir()) == []


def test_a_program_that_imports_wandb_where_it_is_missing_is_one_line_at_start_up(tmp_path, monkeypatch):
    from sweeps.config import parse_config
    from sweeps.errors import ConfigError
    from tests.conftest import report_config

    monkeypatch.setattr(wandb_runs, "installed", lambda: False)
    with pytest.raises(ConfigError) as refused:
        parse_config(report_config(tmp_path, program=str(SCRIPTS / "wandb_curve.py")), base_dir=SCRIPTS)
    assert str(refused.value) == (
        "program: wandb_curve.py imports wandb, which is not installed: pip install -r requirements-wandb.txt"
    )


@needs_wandb
@pytest.mark.slow
def test_a_w_and_b_grid_without_a_metric_runs_every_point_and_keeps_what_was_logged(tmp_path, write_config, home):
    import csv

    import optuna

    from tests.conftest import report_config
    from tests.harness import run_headless

    config = report_config(
        tmp_path,
        program=str(SCRIPTS / "wandb_curve.py"),
        method="grid",
        parameters={"x": {"values": [0.0, 1.0, 2.0]}, "epochs": {"value": 2}},
    )
    del config["metric"]  # W&B allows it for grid and random
    done = run_headless(write_config(config), tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    rows = {float(r["x"]): r for r in csv.DictReader((tmp_path / "results" / "trials.csv").open())}
    assert {x: (r["value"], float(r["loss"]), float(r["epoch"])) for x, r in rows.items()} == {
        x: ("", x + 5.0, 2.0) for x in (0.0, 1.0, 2.0)
    }, "no value; the last loss and epoch each run logged"
    assert "no metric: no best trial" in done.stdout
    assert list(home.iterdir()) == []


@needs_wandb
@pytest.mark.slow
def test_hyperband_prunes_a_curve_logged_with_wandb_log(tmp_path, write_config, home):
    import optuna
    from optuna.trial import TrialState

    from sweeps.record import PRUNED_AT_ATTR
    from tests.conftest import report_config
    from tests.harness import run_headless

    epochs = 12
    config = report_config(
        tmp_path,
        program=str(SCRIPTS / "wandb_curve.py"),
        method="random",
        seed=2,
        run_cap=10,
        # 0.2 s an epoch: a decision to prune reaches a busy machine's trial before its last epoch
        parameters={"x": {"min": 0.0, "max": 10.0}, "epochs": {"value": epochs}, "sleep": {"value": 0.2}},
        early_terminate={"type": "hyperband", "min_iter": 2, "eta": 3},
    )
    done = run_headless(write_config(config), tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 10
    for t in complete:
        x = t.params["x"]
        assert t.intermediate_values == {step: x + 10.0 / (step + 1) for step in range(epochs)}, "W&B's steps 0.."
        assert t.value == x + 10.0 / epochs
    for t in pruned:
        assert len(t.intermediate_values) < epochs and PRUNED_AT_ATTR in t.user_attrs
    assert list(home.iterdir()) == []


@needs_wandb
def test_a_command_that_execs_python_is_traced_in_the_process_it_execs_into(tmp_path, home, monkeypatch):
    users = tmp_path / "site"  # a sitecustomize of the user's own still runs
    users.mkdir()
    (users / "sitecustomize.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w').close()\n")
    monkeypatch.setenv("PYTHONPATH", str(users))
    command = ["${env}", "OMP_NUM_THREADS=1", "${interpreter}", "${program}", "${args}"]  # not run warm: exec'd
    work = make_work(SCRIPTS / "wandb_argparse.py", tmp_path / "out", "loss", timeout=120, command=command)
    assert not work._launch.runs_warm
    try:
        work.run(0, {"lr": 0.2, "epochs": 3})
    finally:
        work._server.close()
    values = work.values_of(0)
    assert (work.result["state"], values) == ("COMPLETE", [(0, 2.0), (1, 1.0), (2, 0.2 * 10 / 3)])
    assert work.result["user_attrs"]["metrics"]["lr_seen"] == 0.2
    assert (tmp_path / "ran").exists(), "the user's sitecustomize, after Sweeps'"
    assert list(home.iterdir()) == []
