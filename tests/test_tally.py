"""sweeps.tally: the counts every decision and view reads, built from stored trials only."""

import pytest
from optuna.trial import TrialState, create_trial

from sweeps import record
from sweeps.tally import Tally


def trial(number, state=TrialState.COMPLETE, value=None, **user_attrs):
    t = create_trial(state=state, value=value if state == TrialState.COMPLETE else None, user_attrs=user_attrs)
    t.number = number
    return t


def test_counts_by_state_finished_failures_and_best():
    tally = Tally(["minimize"])
    assert tally.update(
        [
            trial(0, value=0.5),
            trial(1, TrialState.PRUNED),
            trial(2, TrialState.FAIL, fail_reason="exit code 3"),
            trial(3, TrialState.FAIL, fail_reason=record.INTERRUPTED),
            trial(4, TrialState.RUNNING),
            trial(5, TrialState.WAITING),
            trial(6, value=0.25),
        ]
    )
    assert tally.counts() == {"COMPLETE": 2, "PRUNED": 1, "FAIL": 2, "RUNNING": 1, "WAITING": 1}
    assert (tally.finished, tally.ended, tally.running, tally.waiting) == (3, 5, 1, 1)
    assert tally.failures == 1, "an interrupted trial is not a failure of its own"
    assert tally.best.number == 6


def test_an_update_with_only_the_trials_just_written_moves_only_those():
    tally = Tally(["maximize"])
    tally.update([trial(0, TrialState.RUNNING), trial(1, TrialState.RUNNING), trial(2, TrialState.WAITING)])
    assert tally.update([trial(1, value=2.0)]), "trial 1 ended"
    assert (tally.running, tally.finished, tally.waiting, tally.best.number) == (1, 1, 1, 1)
    assert tally.update([trial(2, TrialState.RUNNING)]), "the queued trial was taken"
    assert (tally.running, tally.waiting) == (2, 0)
    assert not tally.update([trial(1, value=2.0), trial(2, TrialState.RUNNING)]), "nothing new"


def test_an_ended_trial_counts_once_whatever_is_read_later():
    tally = Tally(["minimize"])
    tally.update([trial(0, value=1.0)])
    assert not tally.update([trial(0, TrialState.FAIL)]) and tally.counts() == {"COMPLETE": 1}


@pytest.mark.parametrize(
    "goal, target, values, reached",
    [
        ("minimize", 0.6, [1.0, 0.6], [False, True]),
        ("maximize", 0.9, [0.5, 0.95], [False, True]),
    ],
)
def test_the_target_is_reached_by_a_value_at_least_as_good(goal, target, values, reached):
    tally = Tally([goal], target)
    for number, (value, expected) in enumerate(zip(values, reached, strict=True)):
        tally.update([trial(number, value=value)])
        assert tally.target_reached is expected


def test_places_under_run_cap_are_held_by_finished_running_and_queued_trials_before_a_number():
    tally = Tally(["minimize"])
    tally.update(
        [
            trial(0, value=0.5),
            trial(1, TrialState.PRUNED),
            trial(2, TrialState.FAIL, fail_reason="exit code 3"),
            trial(3, TrialState.RUNNING),
            trial(4, TrialState.WAITING),
            trial(5, TrialState.FAIL, fail_reason=record.NOT_RUN),
            trial(6, TrialState.RUNNING),
        ]
    )
    assert [tally.places_taken_below(n) for n in range(8)] == [0, 1, 2, 2, 3, 4, 4, 5]
    assert [tally.places_free_below(n) for n in range(8)] == [0, 0, 0, 1, 1, 1, 2, 2]
    assert tally.trials_seen == 7
    assert tally.failures == 1, "a trial given back unrun is not a failure"


def test_the_bound_on_places_holds_however_stale_the_tally():
    """What a worker last read bounds the places taken before a trial numbered later: the trials
    below it are exactly that many, and a FAIL it saw is FAIL still."""
    stale = Tally(["minimize"])
    stale.update([trial(0, TrialState.FAIL, fail_reason="exit code 3"), trial(1, TrialState.RUNNING)])
    fresh = Tally(["minimize"])
    fresh.update(
        [
            trial(0, TrialState.FAIL, fail_reason="exit code 3"),
            trial(1, value=0.1),
            trial(2, TrialState.FAIL, fail_reason="exit code 1"),
            trial(3, TrialState.RUNNING),
            trial(4, TrialState.WAITING),
        ]
    )
    for number in range(6):
        assert fresh.places_taken_below(number) <= number - stale.places_free_below(number)
