import signal

import pytest

from sweeps.command import script_args
from sweeps.metrics import MetricReader
from sweeps.result import COMPLETE, FAIL, PRUNED, TrialResult, judge
from sweeps.supervise import ProcessEnd

OK = ProcessEnd()


def reader_with(text: str, metric: str = "loss") -> MetricReader:
    reader = MetricReader([metric])
    reader.write(text)
    reader.close()
    return reader


def test_script_args_pass_values_exactly_as_recorded():
    assert script_args({"lr": 0.1 + 0.2, "n": 3, "opt.name": "adam", "flag": True}) == [
        "--lr=0.30000000000000004",
        "--n=3",
        "--opt.name=adam",
        "--flag=True",
    ]


@pytest.mark.parametrize("value", [0.0, -2.5, 1e-12])
def test_zero_and_negative_metrics_complete(value):
    result = judge(1, reader_with(f"loss={value}\n"), OK)
    assert (result.state, result.value) == (COMPLETE, value)


def test_printed_metric_wins_over_a_global():
    assert judge(1, reader_with("loss=1\n"), ProcessEnd(script_globals={"loss": 5.0})).value == 1.0


def test_global_variable_is_the_fallback():
    assert judge(1, reader_with("nothing\n"), ProcessEnd(script_globals={"loss": 0.0})).value == 0.0
    assert judge(1, reader_with(""), ProcessEnd(script_globals={"other": 1.0})).reason == "no metric loss reported"


@pytest.mark.parametrize(
    "end, reason",
    [
        (ProcessEnd(exit_code=1, error="ValueError: bad lr (at train.py:3)"), "ValueError: bad lr (at train.py:3)"),
        (ProcessEnd(exit_code=3), "exit code 3"),
        (ProcessEnd(exit_code=None, signal=signal.SIGABRT), "killed by signal SIGABRT"),
        (ProcessEnd(exit_code=None, signal=signal.SIGKILL, timed_out=True), "timeout after 2.5 s"),
    ],
)
def test_failures_keep_reason_and_last_output(end, reason):
    result = judge(4, reader_with("epoch=1 loss=3\nlast words\n"), end, timeout=2.5)
    assert result.state == FAIL and result.value is None
    assert result.reason == f"{reason}\n--- last output ---\nepoch=1 loss=3\nlast words"


def test_a_pruned_trial_keeps_its_last_value():
    assert judge(2, reader_with("loss=3\nloss=2\n"), ProcessEnd(exit_code=None, signal=9, pruned=True)) == TrialResult(
        2, PRUNED, value=2.0, user_attrs={"metrics": {"loss": 2.0}}
    )


@pytest.mark.parametrize(
    "output, reason",
    [("", "no metric loss reported"), ("loss=nan\n", "metric is NaN"), ("loss=-inf\n", "metric is inf")],
)
def test_unusable_metrics_fail(output, reason):
    assert judge(1, reader_with(output), OK) == TrialResult(1, FAIL, reason=reason)


def test_result_round_trips_through_a_dict():
    result = TrialResult(3, COMPLETE, value=0.5, duration=1.25, user_attrs={"checkpoint": "/a.ckpt"})
    assert TrialResult.from_dict(result.to_dict()) == result


def test_a_trial_killed_over_its_memory_cap_fails_saying_so_with_its_last_output():
    end = ProcessEnd(exit_code=None, signal=signal.SIGKILL, memory_cap=8 * 10**9)
    result = judge(4, reader_with("epoch 1\n"), end)
    assert result.state == FAIL
    assert result.reason == "out of memory (cap 8 GB)\n--- last output ---\nepoch 1"
