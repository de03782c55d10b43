"""Lightning scripts swept unchanged: the traced Trainer reports after each validation, stops
cleanly on the pruner's word, and names its best checkpoint. Real scripts, real Trainers: the
example (LightningCLI on `lightning.pytorch`) and tests/scripts/lightning_argparse.py (argparse
with dotted names, on `pytorch_lightning`). Needs requirements-lightning.txt (in CI: must run)."""

import csv
import importlib.util
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from components.objective import ObjectiveWork
from sweeps.record import CHECKPOINT_ATTR, PRUNED_AT_ATTR
from tests.conftest import PROJECT, SCRIPTS, make_work
from tests.harness import run_headless

if not all(importlib.util.find_spec(p) for p in ("torch", "lightning", "pytorch_lightning", "jsonargparse")):
    if os.environ.get("CI"):
        raise ImportError("the Lightning tests need requirements-lightning.txt (requirements-dev.txt includes it)")
    pytest.skip("pip install -r requirements-lightning.txt", allow_module_level=True)

EXAMPLE = PROJECT / "scripts" / "train_lightning.py"
CLI_COMMAND = ["${env}", "${interpreter}", "${program}", "fit", "${args}"]


@pytest.fixture(scope="module")
def argparse_work(tmp_path_factory):
    """One warm work for the argparse script (its imports, torch included, loaded once)."""
    output_dir = tmp_path_factory.mktemp("argparse") / "results"
    return make_work(SCRIPTS / "lightning_argparse.py", output_dir, "val_loss", timeout=60)


def values(work: ObjectiveWork, number: int) -> list[tuple[int, float]]:
    return work.values_of(number)


def log_of(work: ObjectiveWork, number: int) -> str:
    return work._launch.log_file(number).read_text()


def test_a_script_that_prints_nothing_is_reported_from_its_trainer(argparse_work):
    argparse_work.run(0, {"model.lr": 0.05, "trainer.max_epochs": 4})
    result = argparse_work.result
    assert result["state"] == "COMPLETE", result
    got = values(argparse_work, 0)
    assert [step for step, _ in got] == [0, 1, 2, 3], "one value per validation epoch (--trainer.max_epochs=4 arrived)"
    assert result["value"] == got[-1][1]
    checkpoint = Path(result["user_attrs"][CHECKPOINT_ATTR])
    assert checkpoint.is_file() and checkpoint.suffix == ".ckpt"
    assert checkpoint.is_relative_to(argparse_work._launch.trial_dir(0)), "the trial's own root dir"


@pytest.mark.parametrize(
    "first, printing, expected",
    [
        (10, "epoch", lambda trainer: [(s, v + 100) for s, v in trainer]),  # the script's lines only, once each
        (
            20,
            "end",
            lambda trainer: trainer + [(len(trainer), trainer[-1][1] + 1000)],
        ),  # the trainer's, then the script's
    ],
)
def test_a_script_that_prints_its_metric_is_not_reported_twice(argparse_work, first, printing, expected):
    argparse_work.run(first, {"trainer.max_epochs": 3})
    trainer_values = values(argparse_work, first)
    argparse_work.run(first + 1, {"trainer.max_epochs": 3, "print": printing})
    got, want = values(argparse_work, first + 1), expected(trainer_values)
    assert [step for step, _ in got] == [step for step, _ in want]
    assert [value for _, value in got] == pytest.approx([value for _, value in want])
    assert argparse_work.result["value"] == got[-1][1]


def test_a_validation_after_fit_is_not_an_epoch_of_training(argparse_work):
    argparse_work.run(5, {"trainer.max_epochs": 2, "validate_after": 1})
    assert [step for step, _ in values(argparse_work, 5)] == [0, 1]
    assert argparse_work.result["state"] == "COMPLETE"


def test_a_global_variable_beats_the_trainers_values(argparse_work):
    argparse_work.run(3, {"trainer.max_epochs": 2, "global_var": 1})
    assert argparse_work.result["value"] == -1.0


def test_a_trial_asked_to_stop_ends_its_fit_cleanly_and_is_pruned(argparse_work):
    """The stop file appears after the second validation; the callback sets trainer.should_stop at
    the next one, and fit ends by itself (on_fit_end names the checkpoint) well within the grace."""
    number, asked = 4, []

    def prune_after_epoch_1() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if len(values(argparse_work, number)) >= 2:
                argparse_work.prune_trial(number)
                asked.append(time.monotonic())
                return
            time.sleep(0.005)

    pruner = threading.Thread(target=prune_after_epoch_1)
    pruner.start()
    argparse_work.run(number, {"trainer.max_epochs": 50, "sleep": 0.02})
    ended = time.monotonic()
    pruner.join()
    result = argparse_work.result
    assert result["state"] == "PRUNED", result
    steps = [step for step, _ in values(argparse_work, number)]
    assert 2 <= len(steps) <= 4 and steps == list(range(len(steps))), "stopped at the next validation or so"
    assert result["value"] == values(argparse_work, number)[-1][1]
    log = log_of(argparse_work, number)
    assert "[sweeps] checkpoint: " in log, "fit ended normally: not killed"
    assert Path(result["user_attrs"][CHECKPOINT_ATTR]).is_file()
    assert ended - asked[0] < 2.0, "it did not wait out the grace period"
    assert not argparse_work._launch.prune_file(number).exists()


def test_the_example_runs_through_lightning_cli_with_dotted_parameters(tmp_path):
    work = make_work(EXAMPLE, tmp_path, "val_loss", timeout=60, command=CLI_COMMAND)
    work.run(0, {"model.lr": 0.1, "model.hidden": 32, "trainer.max_epochs": 3})
    assert work.result["state"] == "COMPLETE", work.result
    assert [step for step, _ in work.values_of(0)] == [0, 1, 2]
    saved = yaml.safe_load((tmp_path / "trials" / "0" / "config.yaml").read_text())  # LightningCLI's record
    assert (saved["model"]["lr"], saved["model"]["hidden"], saved["trainer"]["max_epochs"]) == (0.1, 32, 3)
    assert Path(work.result["user_attrs"][CHECKPOINT_ATTR]).is_file()


@pytest.mark.slow
def test_sweeping_the_example_prunes_early_and_keeps_each_trials_checkpoint(tmp_path, write_config):
    config = yaml.safe_load((PROJECT / "sweep_lightning.yaml").read_text())
    epochs = config["parameters"]["trainer"]["parameters"]["max_epochs"]["value"]
    config.update(
        program=str(EXAMPLE),
        storage=f"sqlite:///{tmp_path / 'sweep.db'}",
        output_dir=str(tmp_path / "results"),
    )
    started = time.monotonic()
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    took = time.monotonic() - started
    assert re.search(r"trial \d+ PRUNED val_loss=", done.stdout), done.stdout

    trials = optuna.load_study(study_name=config["name"], storage=config["storage"]).trials
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == config["run_cap"] == len(trials)
    for t in complete:
        assert sorted(t.intermediate_values) == list(range(epochs)), "a value after every validation epoch"
        assert t.value == t.intermediate_values[epochs - 1]
        checkpoint = Path(t.user_attrs[CHECKPOINT_ATTR])
        assert checkpoint.is_file() and checkpoint.is_relative_to(tmp_path / "results" / "trials" / str(t.number))
    for t in pruned:
        last = max(t.intermediate_values)
        assert len(t.intermediate_values) < epochs and sorted(t.intermediate_values) == list(range(last + 1))
        assert last - t.user_attrs[PRUNED_AT_ATTR] <= 3, "stopped within a few validations of the decision"
        assert t.value == t.intermediate_values[last]
        log = (tmp_path / "results" / "logs" / f"{t.number}.log").read_text()
        assert "`Trainer.fit` stopped: `max_epochs" not in log and "[sweeps] checkpoint: " in log, "stopped cleanly"
        assert Path(t.user_attrs[CHECKPOINT_ATTR]).is_file()
    print(f"{len(pruned)} PRUNED, {len(complete)} COMPLETE in {took:.1f} s")


def kill_when_logged(work: ObjectiveWork, number: int, text: str, keep: Path) -> threading.Thread:
    """Kill trial ``number``'s process once its log shows ``text``, its last checkpoint copied to ``keep``
    first: as if the work had died with it (a work that sees its trial end removes the checkpoint)."""
    import shutil

    import psutil

    def kill() -> None:
        log = work._launch.log_file(number)
        deadline = time.monotonic() + 120
        while not (log.exists() and text in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.005)
        shutil.copy(work._launch.trial_dir(number) / "resume.ckpt", keep)
        for child in psutil.Process(work._server._process.pid).children():
            child.kill()

    killer = threading.Thread(target=kill)
    killer.start()
    return killer


def epochs_trained(log: str) -> list[int]:
    """The epochs a run trained: its validations (a continuing run first restores its checkpoint's)."""
    log = log.split("[sweeps] resumed", 1)[-1]
    return [int(e) for e in re.findall(r"\[sweeps\] validation epoch=(\d+)", log)]


def epochs_run(work: ObjectiveWork, number: int) -> list[int]:
    return epochs_trained(log_of(work, number))


def test_a_killed_trial_continues_from_its_last_checkpoint_to_the_uninterrupted_value(tmp_path):
    """The script shuffles its batches and uses dropout: the value is the same only if the run continues
    exactly (weights, optimizer, the random generators' states)."""
    work = make_work(SCRIPTS / "lightning_resume.py", tmp_path / "results", "val_loss", timeout=120)
    params = {"lr": 0.01, "sleep": 0.02}
    work.run(0, params)
    uninterrupted, curve = work.result_of(0), dict(work.values_of(0))
    assert uninterrupted.state == "COMPLETE" and epochs_run(work, 0) == list(range(10))

    killer = kill_when_logged(work, 1, "validation epoch=5", tmp_path / "kept.ckpt")
    work.run(1, params)
    killer.join()
    assert work.result_of(1).reason.startswith("killed by signal SIGKILL") and epochs_run(work, 1)[-1] >= 5
    assert not (tmp_path / "results" / "trials" / "1" / "resume.ckpt").exists(), "the trial ended: removed"
    (tmp_path / "kept.ckpt").rename(tmp_path / "results" / "trials" / "1" / "resume.ckpt")
    work.run(2, params, first_trial=1, resume=True)
    continued = work.result_of(2)
    assert continued.state == "COMPLETE", continued.reason
    assert continued.user_attrs["resumed_from"] >= 6 and epochs_run(work, 2)[0] == continued.user_attrs["resumed_from"]
    assert len(epochs_run(work, 1)) + len(epochs_run(work, 2)) <= 12
    assert continued.value == uninterrupted.value
    resumed_from = continued.user_attrs["resumed_from"]
    # the whole curve: the checkpoint's (the killed run's last values may never have reached the flow), then its own
    assert dict(work.values_of(2)) == curve and epochs_run(work, 2) == list(range(resumed_from, 10))

    work.run(3, params, first_trial=1, resume=False)  # a retry after the trial's own failure starts over
    assert epochs_run(work, 3) == list(range(10)) and work.result_of(3).value == uninterrupted.value
    assert "resumed_from" not in work.result_of(3).user_attrs


def test_a_trial_fitting_from_another_trials_checkpoint_reports_its_own_epochs_only(tmp_path):
    """Fine-tuning the best trial of an earlier sweep: its checkpoint holds that trial's curve, epoch
    and random generators' states, none of which is this trial's (it continues no interrupted run)."""
    work = make_work(SCRIPTS / "lightning_resume.py", tmp_path / "results", "val_loss", timeout=120)
    work.run(0, {"lr": 0.01})
    source = work.result_of(0).user_attrs[CHECKPOINT_ATTR]
    values = []
    for number, seed in ((1, 1), (2, 2)):
        work.run(number, {"lr": 0.01, "epochs": 12, "init_from": source, "seed": seed})
        tuned = work.result_of(number)
        assert tuned.state == "COMPLETE", tuned.reason
        assert [step for step, _ in work.values_of(number)] == [10, 11] and "resumed_from" not in tuned.user_attrs
        assert "[sweeps] restored" not in log_of(work, number) and "[sweeps] resumed" not in log_of(work, number)
        values.append(tuned.value)
    assert values[0] != values[1], "each seed draws its own batches and dropout"


def resume_config(tmp_path, **overrides) -> dict:
    """One trial of tests/scripts/lightning_resume.py (10 epochs of ~0.3 s), one retry allowed."""
    config = {
        "name": "resume",
        "program": str(SCRIPTS / "lightning_resume.py"),
        "method": "grid",
        "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"lr": {"value": 0.01}, "sleep": {"value": 0.05}},
        "parallel": 1,
        "max_retries": 1,
        "storage": f"sqlite:///{tmp_path / 'sweep.db'}",
        "output_dir": str(tmp_path / "results"),
    }
    config.update(overrides)
    return config


def uninterrupted_value(tmp_path) -> float:
    work = make_work(SCRIPTS / "lightning_resume.py", tmp_path / "reference", "val_loss", timeout=120)
    work.run(0, {"lr": 0.01, "sleep": 0.0})
    return work.result_of(0).value


def wait_for_line(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and text in path.read_text()):
        assert time.monotonic() < deadline, f"{text!r} never in {path}"
        time.sleep(0.005)


def assert_continued(trials, results: Path, reference: float, reason: str) -> None:
    """The first run killed after epoch 5, the retry continued from epoch 6 or later to the same value."""
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE], [t.user_attrs for t in trials]
    first, retry = trials
    assert first.user_attrs["fail_reason"] == reason
    assert retry.user_attrs["retry_of"] == 0 and retry.user_attrs["resume"] is True
    assert retry.user_attrs["resumed_from"] >= 6
    epochs = [epochs_trained((results / "logs" / f"{n}.log").read_text()) for n in (0, 1)]
    assert epochs[1][0] == retry.user_attrs["resumed_from"] and len(epochs[0]) + len(epochs[1]) <= 12
    assert retry.value == reference
    assert sorted(retry.intermediate_values) == list(range(10)), "the whole curve, each epoch once"
    assert not (results / "trials" / "1").exists(), "the retry ran in the first trial's directory"
    assert not (results / "trials" / "0" / "resume.ckpt").exists(), "removed once the trial ended"


@pytest.mark.slow
def test_an_app_killed_mid_trial_continues_it_from_its_checkpoint_when_restarted(tmp_path, write_config):
    from tests.harness import kill_group, start_app

    reference = uninterrupted_value(tmp_path)
    config = resume_config(tmp_path)
    path = write_config(config)
    app = start_app("app_wo_ui.py", path, tmp_path, open(tmp_path / "first.log", "w"), subprocess.STDOUT)
    try:
        wait_for_line(tmp_path / "results" / "logs" / "0.log", "validation epoch=5")
        os.killpg(app.pid, signal.SIGKILL)  # during epoch 6: the machine is gone
        app.wait(timeout=10)
    finally:
        kill_group(app)
    done = run_headless(path, tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="resume", storage=config["storage"]).trials
    assert_continued(trials, tmp_path / "results", reference, "interrupted")
    rows = list(csv.DictReader((tmp_path / "results" / "trials.csv").open()))
    assert [r["resumed_from"] for r in rows] == ["", str(trials[1].user_attrs["resumed_from"])]


@pytest.mark.slow
def test_a_worker_killed_mid_trial_has_its_trial_continued_by_another(tmp_path, write_config, shared_storage):
    from sweeps.storage import open_storage
    from tests.harness import kill_group, processes_of, start_app

    reference = uninterrupted_value(tmp_path)
    url, name = shared_storage
    config = resume_config(tmp_path, name=name, storage=url, heartbeat_interval=1, grace_period=2)
    path = write_config(config)
    workers = []
    try:
        for worker in ("a", "b"):  # started together; one takes the trial, the other waits
            (tmp_path / worker).mkdir()
            log = open(tmp_path / f"{worker}.log", "w")
            workers.append(start_app("app_wo_ui.py", path, tmp_path / worker, log, subprocess.STDOUT))
        wait_for_line(tmp_path / "results" / "logs" / "0.log", "validation epoch=5")
        running = [w for w in workers if any("lightning_resume" in " ".join(p.cmdline()) for p in processes_of(w))]
        assert len(running) == 1, "one worker runs the trial"
        os.killpg(running[0].pid, signal.SIGKILL)
        other = next(w for w in workers if w is not running[0])
        assert other.wait(timeout=120) == 0, [(tmp_path / f"{w}.log").read_text() for w in ("a", "b")]
    finally:
        for worker in workers:
            kill_group(worker)
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).trials
    assert_continued(trials, tmp_path / "results", reference, "worker lost")
