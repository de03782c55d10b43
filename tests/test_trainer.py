"""The plain side of sweeping Lightning scripts: which scripts are traced, the callback's lines as
the work reads them, and how long a stopping trial is given. (tests/test_lightning.py runs real
Lightning scripts.)"""

import sys

import pytest

from sweeps.metrics import MetricReader
from sweeps.record import CHECKPOINT_ATTR, METRICS_ATTR
from sweeps.result import COMPLETE, PRUNED, judge
from sweeps.supervise import ProcessEnd
from sweeps.trainer import (
    FINAL,
    MIN_GRACE_SECONDS,
    RESTORED,
    checkpoint_line,
    lightning_imports,
    prune_grace,
    trainer_packages,
    validation_line,
)


@pytest.mark.parametrize(
    "source, packages",
    [
        ("import lightning as L\n", {"lightning.pytorch"}),
        ("from lightning.pytorch import Trainer\n", {"lightning.pytorch"}),
        ("import lightning.pytorch as pl\n", {"lightning.pytorch"}),
        ("import pytorch_lightning as pl\n", {"pytorch_lightning"}),
        ("def main():\n    from pytorch_lightning.cli import LightningCLI\n", {"pytorch_lightning"}),
        ("import lightning, pytorch_lightning\n", {"lightning.pytorch", "pytorch_lightning"}),
        ("import lightning_app\nimport lightningx\nfrom .lightning import x\n", set()),
        ("import numpy\nprint('loss=1')\n", set()),
        ("this is not python(", set()),
    ],
)
def test_lightning_imports_finds_the_packages_a_script_imports_anywhere(source, packages):
    assert lightning_imports(source) == packages


def test_trainer_packages_adds_those_already_imported_by_the_scripts_modules(tmp_path, monkeypatch):
    script = tmp_path / "train.py"
    script.write_text("from my_helpers import train\ntrain()\n")  # Lightning only through a module
    monkeypatch.delitem(sys.modules, "lightning.pytorch", raising=False)
    monkeypatch.delitem(sys.modules, "pytorch_lightning", raising=False)
    assert trainer_packages(str(script)) == []
    monkeypatch.setitem(sys.modules, "pytorch_lightning", object())
    assert trainer_packages(str(script)) == ["pytorch_lightning"]
    assert trainer_packages(str(tmp_path / "missing.py")) == ["pytorch_lightning"]


def test_a_package_that_is_not_installed_is_not_traced(tmp_path, monkeypatch):
    import importlib.util

    script = tmp_path / "train.py"
    script.write_text("import lightning\n")
    for package in ("lightning.pytorch", "pytorch_lightning"):  # as if nothing had imported them yet
        monkeypatch.delitem(sys.modules, package, raising=False)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert trainer_packages(str(script)) == []


def test_prune_grace_is_twice_the_longest_validation_interval_and_at_least_the_minimum():
    assert prune_grace([], started=0.0) == MIN_GRACE_SECONDS
    assert prune_grace([1.0, 2.0], started=0.0) == MIN_GRACE_SECONDS
    assert prune_grace([4.0, 10.0, 11.0], started=0.0) == 12.0


def read(*lines: str, metric: str = "val_loss") -> MetricReader:
    reader = MetricReader([metric])
    reader.write("".join(line + "\n" for line in lines))
    reader.close()
    return reader


def test_a_script_that_prints_nothing_is_read_from_its_trainer():
    reader = read(
        "[sweeps] traced",
        validation_line({"val_loss": 0.9}, "epoch", 0),
        "some other output val_acc=0.5",
        validation_line({"val_loss": 0.5}, "epoch", 1),
        validation_line({"val_loss": 0.25}, "step", 40, kind=FINAL),
        checkpoint_line("/tmp/run 1/epoch=1-step=40.ckpt"),
    )
    assert reader.traced and not reader.printed
    assert reader.values == [(0, 0.9), (1, 0.5), (40, 0.25)]
    assert reader.checkpoint == "/tmp/run 1/epoch=1-step=40.ckpt"
    assert len(reader.validation_times) == 2, "the final line is not a validation"
    result = judge(3, reader, ProcessEnd())
    assert (result.state, result.value) == (COMPLETE, 0.25)
    assert result.user_attrs == {
        CHECKPOINT_ATTR: reader.checkpoint,
        METRICS_ATTR: {"epoch": 1.0, "step": 40.0, "val_loss": 0.25, "val_acc": 0.5},
    }, "every metric reported, the Trainer's and the script's, at its last value"


def test_the_scripts_own_lines_win_over_the_trainers():
    printing_each_epoch = read(
        "[sweeps] traced",
        "epoch=0 val_loss=7",
        validation_line({"val_loss": 0.9}, "epoch", 0),
        "epoch=1 val_loss=6",
        validation_line({"val_loss": 0.5}, "epoch", 1),
    )
    assert printing_each_epoch.values == [(0, 7.0), (1, 6.0)], "no value reported twice"
    printing_at_the_end = read(
        "[sweeps] traced",
        validation_line({"val_loss": 0.9}, "epoch", 0),
        validation_line({"val_loss": 0.5}, "epoch", 1),
        "val_loss=0.4",
    )
    assert printing_at_the_end.values == [(0, 0.9), (1, 0.5), (2, 0.4)]
    assert judge(0, printing_at_the_end, ProcessEnd()).value == 0.4


def test_a_global_variable_comes_before_the_trainers_values_but_after_printed_lines():
    from_trainer = read(validation_line({"val_loss": 0.5}, "epoch", 0))
    assert judge(0, from_trainer, ProcessEnd(script_globals={"val_loss": 2.0})).value == 2.0
    assert judge(0, from_trainer, ProcessEnd(script_globals={"other": 2.0})).value == 0.5
    printed = read("val_loss=0.1")
    assert judge(0, printed, ProcessEnd(script_globals={"val_loss": 2.0})).value == 0.1


def test_a_validation_without_the_metric_counts_for_the_grace_but_reports_nothing():
    reader = read("[sweeps] traced", validation_line({"val_acc": 0.5}, "epoch", 0), metric="val_loss")
    assert reader.values == [] and len(reader.validation_times) == 1
    assert judge(0, reader, ProcessEnd()).reason == "no metric val_loss reported"


def test_only_a_traced_trial_gets_a_grace_period():
    assert read("val_loss=1").prune_grace() == 0.0
    assert read("[sweeps] traced").prune_grace() == MIN_GRACE_SECONDS


def test_a_pruned_trial_keeps_its_checkpoint():
    reader = read(validation_line({"val_loss": 0.9}, "epoch", 0), checkpoint_line("/c.ckpt"))
    result = judge(0, reader, ProcessEnd(pruned=True))
    assert (result.state, result.value, result.user_attrs[CHECKPOINT_ATTR]) == (PRUNED, 0.9, "/c.ckpt")


def test_a_continuing_run_says_the_first_epoch_it_trains_and_reports_its_checkpoints_curve():
    reader = read(
        *(validation_line({"val_loss": 1 - e / 10}, "epoch", e, RESTORED) for e in range(6)),
        "[sweeps] resumed epoch=6",
        validation_line({"val_loss": 0.4}, "epoch", 6),
    )
    assert reader.values == [(e, 1 - e / 10) for e in range(7)] and reader.resumed_from == 6
    assert len(reader.validation_times) == 1, "a restored validation took no time in this run"
    result = judge(0, reader, ProcessEnd())
    assert (result.state, result.value, result.user_attrs["resumed_from"]) == (COMPLETE, 0.4, 6)
