"""Lightning scripts swept unchanged: the traced Trainer reports after each validation, stops
cleanly on the pruner's word, and names its best checkpoint. Real scripts, real Trainers: the
example (LightningCLI on `lightning.pytorch`) and tests/scripts/lightning_argparse.py (argparse
with dotted names, on `pytorch_lightning`). Needs requirements-lightning.txt (in CI: must run)."""

import importlib.util
import os
import re
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
    assert not argparse_work._prune_file(number).exists()


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
