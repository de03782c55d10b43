"""sweeps.dashboard: what the page shows, from trials made with Optuna directly (no app, no browser)."""

import datetime as dt
import json
import threading
import time

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeps.config import parse_config
from sweeps.dashboard import (
    Importance,
    SweepView,
    TrialLog,
    config_view,
    failures,
    format_duration,
    history,
    learning_curves,
    log_tail,
    param_importances,
    pareto,
    progress,
    pruning_decision,
    reported_metrics,
    trial_details,
    trial_rows,
)
from sweeps.record import REASON_ATTR
from tests.conftest import SCRIPTS

DISTRIBUTIONS = {"lr": FloatDistribution(1e-4, 1.0, log=True), "kernel": CategoricalDistribution(["rbf", "poly"])}
T0 = dt.datetime(2026, 1, 1, 12, 0, 0)


def trial(
    number,
    state=TrialState.COMPLETE,
    value=None,
    lr=0.01,
    kernel="rbf",
    reason=None,
    ended=None,
    attrs=None,
    values=None,
):
    user_attrs = dict(attrs or {})
    if reason is not None:
        user_attrs[REASON_ATTR] = reason
    finished = state.is_finished()
    t = create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        values=values if state == TrialState.COMPLETE else None,
        params={"lr": lr, "kernel": kernel},
        distributions=DISTRIBUTIONS,
        user_attrs=user_attrs,
    )
    t.number = number
    t.datetime_start = T0
    t.datetime_complete = (T0 + dt.timedelta(seconds=ended if ended is not None else number + 1)) if finished else None
    return t


def test_log_moves_only_when_a_trial_starts_or_ends():
    log = TrialLog(["minimize"])
    running = trial(1, TrialState.RUNNING)
    assert log.update([trial(0, value=0.5), running])
    version = log.version
    assert not log.update([trial(0, value=0.5), running]), "nothing changed"
    assert log.version == version
    assert log.update([trial(0, value=0.5), trial(1, value=0.2)]), "the running trial ended"
    assert not log.update([trial(0, value=0.5), trial(1, value=0.2)])
    assert log.update([trial(0, value=0.5), trial(1, value=0.2), trial(2, TrialState.RUNNING)]), "a new trial"
    assert log.tally.counts() == {"COMPLETE": 2, "RUNNING": 1}
    assert log.tally.finished == 2
    assert log.tally.best.number == 1


def test_an_ended_trial_is_never_looked_at_again():
    trials = [trial(i, value=float(i)) for i in range(100)]
    log = TrialLog(["minimize"])
    log.update(trials)
    for t in trials:  # were the log to read them again, it would see them all changed
        t.state, t.value = TrialState.RUNNING, None
    assert not log.update(trials) and log.tally.counts() == {"COMPLETE": 100}


def test_sessions_of_the_page_derive_each_thing_once_per_version_of_the_log():
    view = SweepView(["minimize"], objectives=1)
    view.update([trial(0, value=0.5), trial(1, TrialState.RUNNING)])
    builds = []

    def best(log):
        builds.append(log.version)
        time.sleep(0.05)  # long enough for every session to ask while it is being built
        return log.tally.best.number

    sessions = [threading.Thread(target=view.derived, args=("best", best)) for _ in range(4)]
    for session in sessions:
        session.start()
    for session in sessions:
        session.join()
    assert builds == [1], "four sessions, one build"
    view.update([trial(0, value=0.5), trial(1, value=0.2)])  # read by any session: every one sees it
    assert view.derived("best", best) == 1 and builds == [1, 2]
    assert view.derived("best", best) == 1 and builds == [1, 2]


def test_best_follows_the_goal():
    trials = [trial(0, value=0.5), trial(1, value=0.9), trial(2, TrialState.FAIL)]
    for goal, number in (("minimize", 0), ("maximize", 1)):
        log = TrialLog([goal])
        log.update(trials)
        assert log.tally.best.number == number


def test_progress_extrapolates_the_rate_since_run():
    log = TrialLog(["minimize"])
    started = T0.timestamp()
    # trial 0 ended before this app started the sweep (kept from an earlier run); 1 and 2 after
    log.update([trial(0, value=1.0, ended=-60), trial(1, value=1.0, ended=10), trial(2, value=1.0, ended=20)])
    p = progress(log, run_cap=10, started=started, ended=0, now=started + 20)
    assert (p.finished, p.elapsed) == (3, 20)
    assert p.remaining == pytest.approx(7 * 20 / 2)  # 2 trials in 20 s, 7 to go
    assert p.fraction == pytest.approx(0.3)


def test_progress_before_run_after_the_end_and_when_stopped():
    log = TrialLog(["minimize"])
    log.update([trial(0, value=1.0)])
    assert progress(log, 2, started=0, ended=0) == progress(log, 2, 0, 0, now=123)
    assert progress(log, 2, started=0, ended=0).elapsed is None
    stopped = progress(log, 2, started=100, ended=130, now=500)
    assert (stopped.elapsed, stopped.remaining) == (30, None)
    log.update([trial(0, value=1.0), trial(1, value=2.0)])
    done = progress(log, 2, started=100, ended=130, now=500)
    assert (done.elapsed, done.remaining, done.fraction) == (30, 0.0, 1.0)


def test_an_app_that_found_its_sweep_finished_shows_the_span_of_its_trials():
    log = TrialLog(["minimize"])
    log.update([trial(0, value=1.0, ended=40), trial(1, value=2.0, ended=95)])  # started at T0, ended later
    found = T0.timestamp() + 3600  # this app, an hour later: nothing left to run, ended as it started
    done = progress(log, 2, started=found, ended=found, now=found + 5)
    assert (done.elapsed, done.remaining) == (95, 0.0), "the sweep's first start to its last end, not 0 s"
    target_reached = progress(log, 5, started=found, ended=found, now=found + 5)
    assert (target_reached.elapsed, target_reached.remaining) == (95, None), "over before run_cap, the same"
    ran_here = progress(log, 2, started=T0.timestamp() - 1, ended=T0.timestamp() + 100)
    assert ran_here.elapsed == 101, "a sweep this app ran: the time it ran here"


@pytest.mark.parametrize(
    "seconds, text", [(None, "—"), (0.26, "0.3 s"), (12, "12 s"), (185, "3 min 05 s"), (3725, "1 h 02 min")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_config_view_of_a_real_config(tmp_path):
    raw = {
        "name": "demo",
        "program": str(SCRIPTS / "report.py"),
        "method": "random",
        "run_cap": 5,
        "metric": {"name": "loss", "goal": "minimize", "target": 0.1},
        "parameters": {
            "x": {"distribution": "log_uniform_values", "min": 0.01, "max": 1},
            "opt": {"values": ["a", "b"]},
        },
        "output_dir": str(tmp_path / "out"),
    }
    config = parse_config(raw, base_dir=tmp_path)
    view = config_view(config)
    assert view["name"] == "demo" and view["method"] == "random" and view["run_cap"] == 5
    assert view["metric"] == "minimize loss (target 0.1)"
    assert view["program"] == str(SCRIPTS / "report.py")
    assert view["space"] == {
        "x": {"distribution": "log_uniform_values", "min": 0.01, "max": 1},
        "opt": {"values": ["a", "b"]},
    }
    assert {"parallel", "storage"} <= view.keys()
    json.dumps(view)  # it travels in the app's state


def test_table_rows_carry_state_value_params_duration_and_the_reason_headline():
    log = TrialLog(["minimize"])
    log.update(
        [
            trial(0, value=0.5),
            trial(1, TrialState.FAIL, reason="ValueError: bad lr (at train.py:3)\n--- last output ---\nboom"),
            trial(2, TrialState.WAITING),
        ]
    )
    rows = trial_rows(log, ["loss"])
    assert list(rows.columns) == ["trial", "state", "loss", "lr", "kernel", "duration (s)", "failure reason"]
    assert rows["trial"].tolist() == [0, 1], "a queued retry is not a row"
    assert rows["failure reason"].tolist() == ["", "ValueError: bad lr (at train.py:3)"]
    assert rows.loc[0, "duration (s)"] == 1.0
    assert trial_rows(TrialLog(["minimize"]), ["loss"]).empty


def test_table_rows_say_which_devices_and_cores_each_trial_ran_on_and_where_it_resumed():
    log = TrialLog(["minimize"])
    log.update(
        [
            trial(0, value=0.5, attrs={"resources": {"gpus": "0", "cpus": "0-3"}}),
            trial(1, TrialState.RUNNING, attrs={"resources": {"gpus": "1", "cpus": "4-7"}, "resumed_from": 6}),
        ]
    )
    rows = trial_rows(log, ["loss"])
    assert list(rows.columns)[-5:] == ["gpus", "cpus", "resumed from", "duration (s)", "failure reason"]
    assert rows["resumed from"].fillna(-1).tolist() == [-1, 6]
    assert rows[["gpus", "cpus"]].values.tolist() == [["0", "0-3"], ["1", "4-7"]]


def test_history_is_each_value_and_the_best_so_far_by_trial_number():
    log = TrialLog(["maximize"])
    log.update([trial(2, value=0.7), trial(0, value=0.5), trial(1, TrialState.FAIL), trial(3, value=0.6)])
    frame = history(log, ["acc"])
    assert frame.to_dict("list") == {"trial": [0, 2, 3], "acc": [0.5, 0.7, 0.6], "best so far": [0.5, 0.7, 0.7]}


def test_failures_grouped_by_first_line_most_frequent_first():
    log = TrialLog(["minimize"])
    log.update(
        [
            trial(0, TrialState.FAIL, reason="exit code 3"),
            trial(1, TrialState.FAIL, reason="timeout after 5 s\n--- last output ---\nx"),
            trial(2, TrialState.FAIL, reason="exit code 3"),
            trial(3, value=1.0),
        ]
    )
    groups = failures(log)
    assert [(g.reason, g.count, g.trials) for g in groups] == [
        ("exit code 3", 2, (2, 0)),
        ("timeout after 5 s", 1, (1,)),
    ]


def make_trials(n):
    """lr decides the value; kernel is noise."""
    import random

    rng = random.Random(0)
    out = []
    for i in range(n):
        lr = 10 ** rng.uniform(-4, 0)
        out.append(
            trial(i, value=abs(lr - 0.01) * 100 + rng.random() * 0.01, lr=lr, kernel=rng.choice(["rbf", "poly"]))
        )
    return out


def test_importance_finds_the_parameter_that_matters():
    values = param_importances(make_trials(60), ["minimize"], sample=1000)
    assert set(values) == {"lr", "kernel"}
    assert values["lr"] > values["kernel"]


def test_importance_is_computed_rarely():
    importance, log = Importance(), TrialLog(["minimize"])
    log.update(make_trials(importance.MIN_TRIALS - 1))
    assert not importance.update(log, now=0), "too few trials"
    log.update(make_trials(20))
    assert importance.update(log, now=0) and importance.based_on == 20
    log.update(make_trials(30))
    assert not importance.update(log, now=1), "not yet: grown, but computed a second ago"
    assert importance.update(log, now=1 + importance.MIN_SECONDS) and importance.based_on == 30
    assert not importance.update(log, now=1000), "not grown by a fifth"


def test_importance_samples_a_large_sweep(monkeypatch):
    added = []
    original = optuna.Study.add_trials
    monkeypatch.setattr(
        optuna.Study, "add_trials", lambda study, trials: (added.append(len(trials)), original(study, trials))
    )
    values = param_importances(make_trials(300), ["minimize"], sample=100)
    assert added == [100]
    assert values["lr"] > values["kernel"]


TWO = ["latency", "acc"]


def two_objective_log():
    log = TrialLog(["minimize", "maximize"])
    log.update(
        [
            trial(0, values=[1.0, 0.9], attrs={"metrics": {"latency": 1.0, "train_loss": 0.3}}),
            trial(1, values=[2.0, 0.8], attrs={"metrics": {"train_loss": 0.2, "epoch": 4.0}}),
            trial(2, values=[0.5, 0.5]),
            trial(3, TrialState.FAIL, reason="exit code 1"),
        ]
    )
    return log


def test_several_objectives_have_a_column_each_then_every_other_metric_reported():
    log = two_objective_log()
    rows = trial_rows(log, TWO)
    columns = ["trial", "state", "latency", "acc", "lr", "kernel", "train_loss", "epoch", "duration (s)"]
    assert list(rows.columns) == [*columns, "failure reason"]
    assert rows["acc"].tolist()[:3] == [0.9, 0.8, 0.5] and rows["train_loss"].tolist()[:2] == [0.3, 0.2]
    assert reported_metrics(log, TWO) == ["train_loss", "epoch"], "what the plot may add to the objectives"


def test_the_pareto_chart_marks_the_front_of_the_two_objectives_chosen():
    frame = pareto(two_objective_log(), TWO, 0, 1)
    assert frame.to_dict("list") == {
        "trial": [0, 1, 2],
        "latency": [1.0, 2.0, 0.5],
        "acc": [0.9, 0.8, 0.5],
        "front": [True, False, True],
    }
    assert pareto(two_objective_log(), TWO, 1, 0)["front"].tolist() == [True, False, True], "either way round"


def test_history_of_each_objective_follows_its_own_goal():
    log = two_objective_log()
    assert history(log, TWO, 0)["best so far"].tolist() == [1.0, 1.0, 0.5]
    assert history(log, TWO, 1).to_dict("list") == {
        "trial": [0, 1, 2],
        "acc": [0.9, 0.8, 0.5],
        "best so far": [0.9] * 3,
    }


def test_importance_of_each_objective():
    import random

    rng, trials = random.Random(0), []
    for i in range(60):  # latency follows lr; acc follows the kernel
        lr, kernel = 10 ** rng.uniform(-4, 0), rng.choice(["rbf", "poly"])
        acc = (0.9 if kernel == "rbf" else 0.1) + rng.random() * 0.01
        trials.append(trial(i, values=[lr * 100 + rng.random() * 0.01, acc], lr=lr, kernel=kernel))
    by_latency = param_importances(trials, ["minimize", "maximize"], 1000, objective=0)
    by_acc = param_importances(trials, ["minimize", "maximize"], 1000, objective=1)
    assert by_latency["lr"] > by_latency["kernel"] and by_acc["kernel"] > by_acc["lr"]


def curve_trial(number, state, values, attrs=None, ended=None):
    t = trial(
        number,
        state,
        value=list(values.values())[-1] if state == TrialState.COMPLETE else None,
        attrs=attrs,
        ended=ended,
    )
    t.intermediate_values = dict(values)
    return t


def test_learning_curves_mark_where_the_pruner_stopped_a_trial_and_keep_the_latest_trials():
    log = TrialLog(["minimize"])
    log.update(
        [
            curve_trial(0, TrialState.COMPLETE, {0: 3.0, 1: 2.0, 2: 1.0}),
            curve_trial(1, TrialState.PRUNED, {0: 4.0, 1: 3.9, 2: 3.8}, attrs={"pruned_at_step": 1}),
            curve_trial(2, TrialState.PRUNED, {0: 5.0}),  # no decision step recorded: its last step
            trial(3, TrialState.FAIL),  # no curve
            curve_trial(4, TrialState.RUNNING, {0: 2.5, 1: float("nan")}),
        ]
    )
    frame = learning_curves(log)
    assert frame.groupby("trial").size().to_dict() == {0: 3, 1: 3, 2: 1, 4: 1}, "NaN is no point"
    stopped = frame[frame["stopped"]][["trial", "step"]].values.tolist()
    assert stopped == [[1, 1], [2, 0]]
    assert learning_curves(log, shown=2)["trial"].unique().tolist() == [2, 4], "the latest trials with a curve"


def test_the_pruners_decision_is_told_against_the_trials_finished_by_then():
    log = TrialLog(["minimize"])
    finished_before = [
        curve_trial(n, TrialState.COMPLETE, {0: 1.0, 1: v}, ended=1) for n, v in enumerate([0.5, 0.7, 0.9])
    ]
    later = curve_trial(3, TrialState.COMPLETE, {0: 1.0, 1: 0.1}, ended=50)  # ended after the decision
    pruned = curve_trial(4, TrialState.PRUNED, {0: 2.0, 1: 1.5}, attrs={"pruned_at_step": 1}, ended=10)
    log.update([*finished_before, later, pruned])
    decision = pruning_decision(log, pruned)
    assert (decision.step, decision.value, decision.others, decision.median, decision.best) == (1, 1.5, 3, 0.7, 0.5)
    assert decision.text("loss") == (
        "pruned at step 1: loss = 1.5, against a median of 0.7 and a best of 0.5 at that step over the 3 trials "
        "finished by then"
    )
    assert pruning_decision(log, later) is None, "only a PRUNED trial has a decision"


def test_trial_details_and_the_tail_of_a_large_log(tmp_path):
    t = trial(7, value=0.25, attrs={"retry_of": 3, "attempt": 1, "resources": {"gpus": "1"}, "resumed_from": 6})
    assert trial_details(t, ["loss"]) == {
        "state": "COMPLETE",
        "loss": 0.25,
        "duration (s)": 8.0,
        "retry of": 3,
        "attempt": 1,
        "gpus": "1",
        "resumed from": 6,
    }
    log = tmp_path / "7.log"
    log.write_text("".join(f"line {i}\n" for i in range(100_000)))
    assert log_tail(log, lines=3) == "line 99997\nline 99998\nline 99999"
    assert log_tail(tmp_path / "missing.log") == ""
