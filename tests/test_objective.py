"""ObjectiveWork's run, called in this process: the script runs through TracerPythonScript for real."""

import os
import sys

import pytest

from components.objective import ObjectiveWork
from tests.conftest import SCRIPTS


@pytest.fixture
def work(tmp_path):
    return ObjectiveWork(str(SCRIPTS / "report.py"), "loss", log_dir=str(tmp_path / "logs"))


def test_script_receives_parameters_as_dashed_args_and_its_metric_is_read(work, tmp_path):
    work.run(7, {"x": 0.1 + 0.2, "mode": "ok"})
    assert work.result["number"] == 7
    assert work.result["state"] == "COMPLETE"
    assert work.result["value"] == 0.1 + 0.2  # exactly: repr of the float on the way in and out
    log = (tmp_path / "logs" / "7.log").read_text()
    assert log == "epoch=1 loss=1.3\nepoch=2 loss=0.30000000000000004\n"
    assert work.script_args == ["--x=0.30000000000000004", "--mode=ok"]


def test_global_variable_and_zero_metric(work):
    work.run(1, {"x": 0.0, "mode": "global"})
    assert (work.result["state"], work.result["value"]) == ("COMPLETE", 0.0)


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("raise", "ValueError: bad x 2.0 (at report.py:"),
        ("exit3", "exit code 3"),
        ("nan", "metric is NaN"),
        ("silent", "no metric loss reported"),
    ],
)
def test_failures_become_fail_results_and_the_work_stays_usable(work, mode, reason):
    argv, path, cwd, environ = sys.argv[:], sys.path[:], os.getcwd(), os.environ
    work.run(2, {"x": 2.0, "mode": mode})
    assert work.result["state"] == "FAIL"
    assert work.result["reason"].startswith(reason)
    assert (sys.argv, sys.path, os.getcwd(), os.environ) == (argv, path, cwd, environ)
    assert os.environ is environ
    work.run(3, {"x": 1.0, "mode": "ok"})
    assert (work.result["number"], work.result["state"], work.result["value"]) == (3, "COMPLETE", 1.0)


def test_result_of_matches_the_trial_number(work):
    assert work.result_of(0) is None
    work.run(0, {"x": 1.0, "mode": "ok"})
    assert work.result_of(0)["value"] == 1.0
    assert work.result_of(1) is None


def test_stderr_goes_to_the_log_not_the_metric(work, tmp_path):
    work.run(5, {"x": 4.0, "mode": "stderr"})
    assert work.result["value"] == 4.0
    assert "a warning" in (tmp_path / "logs" / "5.log").read_text()
