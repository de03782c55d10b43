import json
import re

import hiplot as hip
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeps.hiplot import experiment, standalone_html, trial_row


def trial(number, state, value=None, values=None, metrics=None):
    t = create_trial(
        state=state,
        value=value,
        values=values,
        user_attrs={"metrics": metrics} if metrics else {},
        params={"lr": 0.01, "kernel": "rbf"},
        distributions={
            "lr": FloatDistribution(1e-4, 1.0, log=True),
            "kernel": CategoricalDistribution(["rbf", "poly"]),
        },
    )
    t.number = number
    return t


def test_rows_carry_number_state_params_and_metric():
    assert trial_row(trial(3, TrialState.COMPLETE, 0.5), ["acc"]) == {
        "uid": "3",
        "trial": 3,
        "lr": 0.01,
        "kernel": "rbf",
        "state": "COMPLETE",
        "acc": 0.5,
    }
    assert "acc" not in trial_row(trial(4, TrialState.FAIL), ["acc"])


def test_experiment_has_one_line_per_ended_trial_with_log_axes_and_metric_colour():
    trials = [trial(0, TrialState.COMPLETE, 0.5), trial(1, TrialState.FAIL), trial(2, TrialState.RUNNING)]
    exp = experiment(trials, ["acc"])
    assert [dp.uid for dp in exp.datapoints] == ["0", "1"]
    assert exp.parameters_definition["lr"].type.value == "numericlog"
    assert exp.colorby == "acc"
    exp.validate()


def test_empty_experiment_still_mounts():
    exp = experiment([], ["acc"])
    assert exp.datapoints == [] and exp.enabledDisplays == ["TABLE"]


def test_axes_left_to_right_are_trial_params_state_metric():
    exp = experiment([trial(0, TrialState.COMPLETE, 0.5), trial(1, TrialState.FAIL)], ["acc"])
    order = exp.display_data(hip.Displays.PARALLEL_PLOT)["order"]
    assert order == ["acc", "state", "kernel", "lr", "trial"], "HiPlot lists them from the right"
    assert exp.display_data(hip.Displays.TABLE)["order"] == order[::-1], "its table from the left"


def test_rows_are_sent_compressed():
    data = experiment([trial(0, TrialState.COMPLETE, 0.5)], ["acc"])._asdict()
    assert "datapoints_compressed" in data and "datapoints" not in data
    json.dumps(data)


def embedded_experiment(html: str) -> dict:
    """The experiment HiPlot's standalone page loads: a JSON text in a JavaScript string."""
    literal = re.search(r"Object\.assign\(options, eval\('\(' \+ (\"(?:[^\"\\]|\\.)*\")", html).group(1)
    return json.loads(json.loads(literal))["experiment"]


def test_standalone_html_holds_the_trials():
    html = standalone_html(
        [trial(0, TrialState.COMPLETE, 0.5), trial(1, TrialState.COMPLETE, 0.25), trial(2, TrialState.RUNNING)], ["acc"]
    )
    assert html.lstrip().lower().startswith("<!doctype html")
    shown = embedded_experiment(html)["datapoints_compressed"]
    rows = [dict(zip(shown["columns"], row[2:], strict=True)) for row in shown["rows"]]
    assert rows == [
        {"trial": 0, "lr": 0.01, "acc": 0.5, "kernel": "rbf", "state": "COMPLETE"},
        {"trial": 1, "lr": 0.01, "acc": 0.25, "kernel": "rbf", "state": "COMPLETE"},
    ], "each ended trial, its parameters and metric; not the running one"


def test_linear_parameters_and_the_metric_keep_a_linear_axis_whatever_their_values_span():
    trials = [trial(0, TrialState.COMPLETE, 0.001), trial(1, TrialState.COMPLETE, 0.9)]
    exp = experiment(trials, ["acc"])
    assert exp.parameters_definition["acc"].type.value == "numeric", "HiPlot alone would pick a log axis"


def test_several_objectives_are_the_last_axes_and_chosen_metrics_come_before_the_state():
    trials = [
        trial(0, TrialState.COMPLETE, values=[1.0, 0.9], metrics={"train_loss": 0.3, "lr": 5.0, "epoch": 2.0}),
        trial(1, TrialState.PRUNED, metrics={"train_loss": 0.7}),
    ]
    exp = experiment(trials, ["latency", "acc"], ["train_loss", "lr", "acc"])
    order = exp.display_data(hip.Displays.PARALLEL_PLOT)["order"]
    assert order == ["acc", "latency", "state", "train_loss", "kernel", "lr", "trial"], "from the right"
    rows = [trial_row(t, ["latency", "acc"], ["train_loss", "lr"]) for t in trials]
    assert rows[0]["lr"] == 0.01, "a parameter the script printed back stays the value it was given"
    assert (rows[0]["latency"], rows[0]["acc"], rows[0]["train_loss"]) == (1.0, 0.9, 0.3)
    assert "epoch" not in rows[0], "only the metrics chosen"
    assert rows[1]["train_loss"] == 0.7 and "acc" not in rows[1]
    exp.validate()
