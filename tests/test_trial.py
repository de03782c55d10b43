import pytest

from sweeps.metrics import MetricReader
from sweeps.trial import COMPLETE, FAIL, TrialResult, judge, script_args


def reader_with(text: str, metric: str = "loss") -> MetricReader:
    reader = MetricReader(metric)
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
    result = judge(1, reader_with(f"loss={value}\n"))
    assert (result.state, result.value) == (COMPLETE, value)


def test_printed_metric_wins_over_a_global():
    assert judge(1, reader_with("loss=1\n"), script_globals={"loss": 5}).value == 1.0


def test_global_variable_is_the_fallback():
    assert judge(1, reader_with("nothing\n"), script_globals={"loss": 0}).value == 0.0
    assert judge(1, reader_with(""), script_globals={"loss": True}).reason == "no metric loss reported"


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    "error, reason",
    [
        (raised(ValueError("bad lr")), "ValueError: bad lr (at test_trial.py:"),
        (SystemExit(3), "exit code 3"),
        (SystemExit("usage: oops"), "exit code 1 (usage: oops)"),
    ],
)
def test_failures_keep_reason_and_last_output(error, reason):
    result = judge(4, reader_with("epoch=1 loss=3\nTraceback follows\n"), error=error)
    assert result.state == FAIL and result.value is None
    assert result.reason.startswith(reason)
    assert result.reason.endswith("--- last output ---\nepoch=1 loss=3\nTraceback follows")


def test_clean_sys_exit_is_not_a_failure():
    assert judge(1, reader_with("loss=2\n"), error=SystemExit(0)).state == COMPLETE
    assert judge(1, reader_with("loss=2\n"), error=SystemExit(None)).state == COMPLETE


@pytest.mark.parametrize(
    "output, reason", [("", "no metric loss reported"), ("loss=nan\n", "metric is NaN"), ("loss=-inf\n", "metric is inf")]
)
def test_unusable_metrics_fail(output, reason):
    assert judge(1, reader_with(output)) == TrialResult(1, FAIL, reason=reason)


def test_result_round_trips_through_a_dict():
    result = TrialResult(3, COMPLETE, value=0.5, duration=1.25)
    assert TrialResult.from_dict(result.to_dict()) == result
