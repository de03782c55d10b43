import optuna
import pytest
from optuna.trial import TrialState

from sweeps.config import parse_config
from sweeps.control import Request
from sweeps.record import PRUNED_AT_ATTR, REASON_ATTR
from sweeps.record import params as trial_params
from sweeps.result import COMPLETE, PRUNED, TrialResult
from sweeps.sweep import Sweep
from tests.conftest import SCRIPTS, report_config


def make_config(tmp_path, **overrides):
    return parse_config(report_config(tmp_path, **overrides), base_dir=SCRIPTS)


def test_tell_stores_values_and_reasons_in_the_storage(tmp_path):
    config = make_config(tmp_path)
    sweep = Sweep.open(config)
    first, second = sweep.ask(), sweep.ask()
    assert (first.number, second.number) == (0, 1)
    assert first.args == [f"--x={first.params['x']}"]
    sweep.tell(TrialResult(second.number, COMPLETE, value=0.0))
    sweep.tell(TrialResult.failed(first.number, "exit code 3"))

    stored = optuna.load_study(study_name="test", storage=config.storage).trials
    assert [(t.number, t.state, t.value) for t in stored] == [(0, TrialState.FAIL, None), (1, TrialState.COMPLETE, 0.0)]
    assert stored[0].user_attrs[REASON_ATTR] == "exit code 3"
    assert REASON_ATTR not in stored[1].user_attrs


def test_run_cap_counts_finished_trials_and_trials_in_flight(tmp_path):
    sweep = Sweep.open(make_config(tmp_path, method="random", run_cap=2, max_failures=10))
    first, second = sweep.ask(), sweep.ask()
    assert not sweep.wants_more() and sweep.ask() is None, "two running trials take run_cap"
    for request in (first, second):
        sweep.tell(TrialResult.failed(request.number, "boom"))  # failures do not count
    assert sweep.finished == 0 and not sweep.done and sweep.wants_more()
    for _ in range(2):
        sweep.tell(TrialResult(sweep.ask().number, COMPLETE, value=1.0))
    assert sweep.done and not sweep.wants_more()


def test_max_failures_ends_the_sweep(tmp_path):
    sweep = Sweep.open(make_config(tmp_path, method="random", run_cap=5, max_failures=2))
    sweep.tell(TrialResult.failed(sweep.ask().number, "boom"))
    assert not sweep.done
    sweep.tell(TrialResult.failed(sweep.ask().number, "boom"))
    assert sweep.done


@pytest.mark.parametrize("goal, values, best", [("minimize", [3, -1, 0], -1), ("maximize", [3, -1, 0], 3)])
def test_best_follows_the_goal(tmp_path, goal, values, best):
    sweep = Sweep.open(make_config(tmp_path, metric={"name": "loss", "goal": goal}))
    for value in values:
        sweep.tell(TrialResult(sweep.ask().number, COMPLETE, value=float(value)))
    assert sweep.best.value == best


@pytest.mark.parametrize(
    "goal, values, reached", [("minimize", [1.0, 0.5], [False, True]), ("maximize", [0.5, 0.9], [False, True])]
)
def test_target_ends_the_sweep_once_reached(tmp_path, goal, values, reached):
    sweep = Sweep.open(
        make_config(
            tmp_path,
            method="random",
            run_cap=10,
            metric={"name": "m", "goal": goal, "target": 0.6 if goal == "minimize" else 0.9},
        )
    )
    for value, expected in zip(values, reached, strict=True):
        sweep.tell(TrialResult(sweep.ask().number, COMPLETE, value=value))
        assert sweep.done is expected


def test_reopening_the_storage_picks_up_the_counts(tmp_path):
    config = make_config(tmp_path, method="random", run_cap=3)
    sweep = Sweep.open(config)
    sweep.tell(TrialResult(sweep.ask().number, COMPLETE, value=2.0))
    sweep.tell(TrialResult.failed(sweep.ask().number, "boom"))

    again = Sweep.open(config)
    assert (again.finished, again.tally.count(TrialState.FAIL), again.best.value) == (1, 1, 2.0)
    assert again.ask().number == 2


def test_same_seed_gives_same_parameters(tmp_path):
    def params(db):
        sweep = Sweep.open(
            make_config(tmp_path, method="random", run_cap=5, seed=7, storage=f"sqlite:///{tmp_path / db}")
        )
        return [sweep.ask().params for _ in range(5)]

    assert params("a.db") == params("b.db")


def test_quantile_parameters_are_recorded_as_the_values_the_script_gets(tmp_path):
    config = make_config(
        tmp_path,
        method="random",
        run_cap=3,
        parameters={"lr": {"distribution": "normal", "mu": 1, "sigma": 0.1}, "k": {"values": [1, 2]}},
    )
    sweep = Sweep.open(config)
    request = sweep.ask()
    sweep.tell(TrialResult(request.number, COMPLETE, value=1.0))
    (stored,) = optuna.load_study(study_name="test", storage=config.storage).trials
    assert set(stored.params) == {"lr:quantile", "k"}
    assert trial_params(stored) == request.params
    assert request.params["lr"] == stored.user_attrs["params"]["lr"] != stored.params["lr:quantile"]
    assert request.args == [f"--lr={request.params['lr']!r}", f"--k={request.params['k']}"]


@pytest.mark.parametrize("method", ["bayes", "random", "cmaes", "qmc", "nsga2"])
def test_parallel_trials_on_a_small_discrete_space_are_distinct(tmp_path, method):
    config = make_config(
        tmp_path,
        method=method,
        run_cap=6,
        seed=1,
        parameters={"a": {"values": ["x", "y"]}, "b": {"values": [1, 2, 3]}},
    )
    sweep = Sweep.open(config)
    running = [sweep.ask() for _ in range(4)]
    assert len({tuple(r.params.items()) for r in running}) == 4
    for r in running:
        sweep.tell(TrialResult(r.number, COMPLETE, value=float(r.params["b"])))
    later = [sweep.ask() for _ in range(2)]
    assert len({tuple(r.params.items()) for r in running + later}) == 6, "untried configurations first"


def test_failed_trials_are_retried_with_the_same_parameters_up_to_max_retries(tmp_path):
    config = make_config(
        tmp_path,
        method="random",
        run_cap=5,
        max_retries=2,
        max_failures=10,
        parameters={"lr": {"distribution": "normal"}, "k": {"min": 0, "max": 100}},
    )
    sweep = Sweep.open(config)
    first = sweep.ask()
    sweep.tell(TrialResult.failed(first.number, "boom"))
    retry = sweep.ask()
    assert retry.params == first.params and retry.number == first.number + 1
    sweep.tell(TrialResult.failed(retry.number, "boom"))
    second_retry = sweep.ask()
    assert second_retry.params == first.params
    sweep.tell(TrialResult.failed(second_retry.number, "boom"))
    fresh = sweep.ask()
    assert fresh.params != first.params, "two retries, then no more"
    stored = sweep.study.get_trials()
    assert [(t.user_attrs.get("retry_of"), t.user_attrs.get("attempt")) for t in stored] == [
        (None, None),
        (0, 1),
        (1, 2),
        (None, None),
    ]


def test_reopening_after_a_crash_fails_the_running_trials_and_tries_them_again(tmp_path):
    config = make_config(tmp_path, method="random", run_cap=3, parameters={"lr": {"distribution": "normal"}})
    crashed = Sweep.open(config)
    lost, done = crashed.ask(), crashed.ask()
    crashed.tell(TrialResult(done.number, COMPLETE, value=1.0))
    # the process dies here: `lost` stays RUNNING in the storage

    resumed = Sweep.open(config)
    stored = resumed.study.get_trials()
    assert stored[lost.number].state == TrialState.FAIL
    assert stored[lost.number].user_attrs[REASON_ATTR] == "interrupted"
    assert (resumed.finished, resumed.tally.failures) == (1, 0), "an interruption is not the trial's failure"
    again = resumed.ask()
    assert again.params == lost.params and again.number == 2
    assert resumed.study.get_trials()[2].user_attrs == {
        "retry_of": lost.number,
        "attempt": 0,
        "first_trial": lost.number,
        "resume": True,
        "params": again.params,
    }
    assert (again.first_trial, again.resume) == (lost.number, True), "it continues in the lost trial's directory"

    resumed.tell(TrialResult(again.number, COMPLETE, value=2.0))
    reopened = Sweep.open(config)  # queues nothing more: the interrupted trial has its retry
    assert len(reopened.study.get_trials()) == 3 and reopened.finished == 2


def retrying_sweep(tmp_path) -> Sweep:
    """A sweep whose failed trials are retried three times, and which gives up only after nine."""
    config = make_config(
        tmp_path,
        method="random",
        run_cap=3,
        max_retries=3,
        max_failures=9,
        parameters={"lr": {"distribution": "normal"}},
    )
    return Sweep.open(config)


def test_retries_share_the_first_trials_directory_and_continue_it_only_after_an_interruption(tmp_path):
    sweep = retrying_sweep(tmp_path)
    first = sweep.ask()
    assert (first.first_trial, first.resume) == (first.number, False)
    sweep.tell(TrialResult.failed(first.number, "ValueError: boom (at train.py:3)"))
    again = sweep.ask()
    assert (again.first_trial, again.resume) == (first.number, False), "its own failure: it starts over"
    sweep.tell(TrialResult.failed(again.number, "work lost"))
    continued = sweep.ask()
    assert (continued.first_trial, continued.resume) == (first.number, True), "a dead work: it continues"
    sweep.tell(TrialResult.failed(continued.number, "timeout after 9 s\n--- last output ---\nx"))
    last = sweep.ask()
    assert (last.first_trial, last.resume, last.params) == (first.number, False, first.params)


def test_a_run_that_continued_an_interrupted_trial_gets_the_steps_it_did_not_run(tmp_path):
    sweep = retrying_sweep(tmp_path)
    first = sweep.ask()
    sweep.report(first.number, [(0, 5.0), (1, 4.0), (2, 3.0)])
    sweep.tell(TrialResult.failed(first.number, "work lost"))
    continued = sweep.ask()
    sweep.report(continued.number, [(2, 3.0), (3, 2.0), (4, 1.0)])  # from its checkpoint of step 2
    sweep.tell(TrialResult(continued.number, COMPLETE, value=1.0, user_attrs={"resumed_from": 2}))
    stored = sweep.study.get_trials()[continued.number]
    assert stored.intermediate_values == {0: 5.0, 1: 4.0, 2: 3.0, 3: 2.0, 4: 1.0}
    assert stored.user_attrs["resumed_from"] == 2


def test_stop_lets_running_trials_be_told_and_asks_for_no_more(tmp_path):
    sweep = Sweep.open(make_config(tmp_path, method="random", run_cap=10))
    running = [sweep.ask(), sweep.ask()]
    sweep.request(Request.STOP)
    assert sweep.done and not sweep.wants_more()
    for request in running:
        sweep.tell(TrialResult(request.number, COMPLETE, value=1.0))
    assert sweep.finished == 2


def test_a_trial_killed_before_its_parameters_were_drawn_is_not_retried(tmp_path):
    config = make_config(tmp_path, method="random", run_cap=3)
    Sweep.open(config).study.ask()  # the process dies before the trial's parameters are drawn
    resumed = Sweep.open(config)
    (stored,) = resumed.study.get_trials()
    assert stored.state == TrialState.FAIL and stored.user_attrs[REASON_ATTR] == "interrupted"
    assert resumed.ask().number == 1 and len(resumed.study.get_trials()) == 2, "no retry queued"


def test_tell_keeps_the_results_user_attributes(tmp_path):
    config = make_config(tmp_path)
    sweep = Sweep.open(config)
    number = sweep.ask().number
    sweep.tell(TrialResult(number, COMPLETE, value=1.0, user_attrs={"checkpoint": "/runs/0/best.ckpt"}))
    stored = optuna.load_study(study_name="test", storage=config.storage).trials[0]
    assert stored.user_attrs["checkpoint"] == "/runs/0/best.ckpt"


def test_values_reported_while_a_pruned_trial_stops_do_not_move_the_step_it_was_pruned_at(tmp_path):
    config = make_config(tmp_path, method="random", run_cap=2, early_terminate={"type": "threshold", "upper": 1.0})
    sweep = Sweep.open(config)
    number = sweep.ask().number
    assert not sweep.report(number, [(0, 0.5)])
    assert sweep.report(number, [(0, 0.5), (1, 2.0)])
    assert sweep.report(number, [(0, 0.5), (1, 2.0), (2, 3.0)]), "still to be stopped"
    frozen = sweep.tell(TrialResult(number, PRUNED, value=3.0))
    assert frozen.user_attrs[PRUNED_AT_ATTR] == 1
    assert frozen.intermediate_values == {0: 0.5, 1: 2.0, 2: 3.0}


def test_an_ended_trials_values_are_kept_as_a_curve_unless_it_printed_its_metric_once(tmp_path):
    sweep = Sweep.open(make_config(tmp_path, early_terminate={"type": "threshold", "upper": 0.0}))
    once, curve = sweep.ask().number, sweep.ask().number
    assert not sweep.report(once, [(0, 0.5)], ended=True)
    assert not sweep.report(curve, [(0, 0.5), (1, 0.4)], ended=True), "an ended trial is not pruned"
    assert sweep.tell(TrialResult(once, COMPLETE, value=0.5)).intermediate_values == {}, "its value is its result"
    assert sweep.tell(TrialResult(curve, COMPLETE, value=0.4)).intermediate_values == {0: 0.5, 1: 0.4}


TWO = [{"name": "loss", "goal": "minimize"}, {"name": "acc", "goal": "maximize"}]
X_RANGE = {"x": {"min": 0.0, "max": 1.0}}


@pytest.mark.parametrize("method", ["tpe", "nsga2", "random", "qmc"])
def test_several_objectives_are_told_to_a_study_of_as_many_directions(tmp_path, method):
    config = make_config(tmp_path, method=method, metric=None, metrics=TWO, run_cap=12, parameters=X_RANGE)
    sweep = Sweep.open(config)
    while (request := sweep.ask()) is not None:
        x = request.params["x"]
        assert not sweep.report(request.number, [(0, x), (1, x)], ended=False), "no curve: pruners follow one"
        sweep.tell(TrialResult(request.number, COMPLETE, values=[x, x**0.5]))  # every trial on the front
    study = optuna.load_study(study_name="test", storage=config.storage)
    assert study.metric_names == ["loss", "acc"], "named, for optuna-dashboard and the next start"
    assert len(study.trials) == 12 and len(study.best_trials) == 12
    assert sweep.best is None and sweep.done, "no one best trial: the Pareto set is the storage's"
    assert all(t.intermediate_values == {} for t in study.trials)


@pytest.mark.parametrize(
    "first, then, words",
    [
        ({"metrics": TWO}, {"metrics": TWO[::-1]}, "optimises minimize loss, maximize acc, not maximize acc, minimize"),
        ({"metrics": TWO}, {"metrics": TWO[:1]}, "not minimize loss: keep its metrics, or give the sweep a new name"),
        ({"metrics": TWO}, {"metric": None}, "not no metric"),
        ({"metric": TWO[0]}, {"metric": {"name": "loss", "goal": "maximize"}}, "minimize loss, not maximize loss"),
        ({}, {"metric": TWO[0]}, "optimises no metric, not minimize loss"),
    ],
)
def test_resuming_a_sweep_on_other_objectives_is_refused_in_one_line(tmp_path, first, then, words):
    from sweeps.errors import ConfigError
    from sweeps.sweep import check_objectives

    def config(change):
        return make_config(tmp_path, method="random", run_cap=3, parameters=X_RANGE, **{"metric": None, **change})

    check_objectives(config(first))  # no stored sweep yet
    Sweep.open(config(first))
    check_objectives(config(first))
    with pytest.raises(ConfigError) as caught:
        check_objectives(config(then))
    assert words in str(caught.value) and "\n" not in str(caught.value)
