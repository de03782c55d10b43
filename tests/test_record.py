"""sweeps.record: a stored trial as every reader reads it."""

import math

import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeps import record


def trial(number, state=TrialState.COMPLETE, value=1.0, params=None, **user_attrs):
    params = params if params is not None else {"lr": 0.1}
    t = create_trial(
        state=state,
        value=value if state == TrialState.COMPLETE else None,
        params=params,
        distributions={name: FloatDistribution(0, 1) for name in params},
        user_attrs=user_attrs,
    )
    t.number = number
    return t


def test_params_are_what_the_script_received_quantiles_mapped_back():
    stored = trial(0, value=1.0, params={"lr:quantile": 0.3, "k": 0.5})
    stored.user_attrs[record.PARAMS_ATTR] = {"lr": 7.0}
    assert record.params(stored) == {"k": 0.5, "lr": 7.0}


@pytest.mark.parametrize(
    "state, finished, ended",
    [
        (TrialState.COMPLETE, True, True),
        (TrialState.PRUNED, True, True),
        (TrialState.FAIL, False, True),
        (TrialState.RUNNING, False, False),
        (TrialState.WAITING, False, False),
    ],
)
def test_finished_counts_towards_run_cap_ended_is_any_final_state(state, finished, ended):
    t = trial(0, state, value=1.0)
    assert (record.is_finished(t), record.has_ended(t)) == (finished, ended)


def test_only_a_trials_own_failures_count():
    assert record.counts_as_failure(trial(0, TrialState.FAIL, fail_reason="exit code 3"))
    assert not record.counts_as_failure(trial(1, TrialState.FAIL, fail_reason=record.INTERRUPTED))
    assert not record.counts_as_failure(trial(2, TrialState.FAIL, fail_reason=record.WORKER_LOST))
    assert not record.counts_as_failure(trial(3, value=1.0))


def test_attempt_and_reason_headline():
    assert record.attempt(trial(0)) == 0 and record.attempt(trial(1, attempt=2)) == 2
    failed = trial(2, TrialState.FAIL, fail_reason="ValueError: x (at t.py:3)\n--- last output ---\nboom")
    assert record.reason_headline(failed) == "ValueError: x (at t.py:3)"
    assert record.reason_headline(trial(3, TrialState.FAIL)) == "no reason"


@pytest.mark.parametrize("goal, best", [("minimize", 1), ("maximize", 2)])
def test_best_trial_follows_the_goal_and_skips_what_cannot_be_best(goal, best):
    trials = [
        trial(0, value=0.5),
        trial(1, value=-1.0),
        trial(2, value=3.0),
        trial(3, TrialState.PRUNED),
        trial(4, TrialState.FAIL),
        trial(5, value=-math.inf if goal == "minimize" else math.inf),  # the work fails such a trial
        trial(6, value=-1.0 if goal == "minimize" else 3.0),  # a tie: the earlier trial stays best
    ]
    assert record.best_trial(trials, goal).number == best
    assert record.best_trial(trials[3:5], goal) is None
