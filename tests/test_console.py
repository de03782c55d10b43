import ast

from sweeps.config import parse_config
from sweeps.console import progress_line, summary
from sweeps.result import COMPLETE, TrialResult
from sweeps.sweep import Sweep
from tests.conftest import SCRIPTS, report_config


def test_progress_lines_and_summary(tmp_path):
    sweep = Sweep.open(
        parse_config(report_config(tmp_path, parameters={"x": {"values": [0.0, 2.0]}}), base_dir=SCRIPTS)
    )
    first = sweep.tell(TrialResult(sweep.ask().number, COMPLETE, value=0.0))
    line = progress_line(sweep, first)
    assert line.startswith("[1/2] trial 0 COMPLETE loss=0 | x=")
    assert line.endswith("| best loss=0 (trial 0)")
    failed = sweep.tell(TrialResult.failed(sweep.ask().number, "exit code 3\n--- last output ---\nboom"))
    assert "trial 1 FAIL (exit code 3) |" in progress_line(sweep, failed)

    values, best = summary(sweep.study, ["loss"]).splitlines()
    assert ast.literal_eval(values) == {0: 0.0, 1: None}
    assert best.startswith("best trial 0: value=0.0 x=")
