"""sweeps.optuna_internals: Optuna's private API as Sweeps uses it, on a real SQLite storage."""

import optuna
import pytest
from optuna.trial import TrialState

from sweeps import optuna_internals, record
from sweeps.storage import open_storage


@pytest.fixture
def study(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 's.db'}"), study_name="s")


def test_another_optuna_release_is_refused_in_one_line():
    optuna_internals.check_version(optuna.__version__)
    with pytest.raises(ImportError) as refused:
        optuna_internals.check_version("4.5.0")
    assert str(refused.value) == (
        "Sweeps uses Optuna internals written for optuna<6,>=5.0; found optuna 4.5.0: pip install -r requirements.txt"
    )


def test_a_trial_created_without_looking_for_queued_ones_is_an_ordinary_trial(study):
    trial = optuna_internals.create_trial(study)
    x = trial.suggest_float("x", 0, 1)
    assert optuna_internals.as_created(trial).state == TrialState.RUNNING
    frozen = study.tell(trial, x)
    assert (frozen.number, frozen.state, frozen.params) == (0, TrialState.COMPLETE, {"x": x})
    assert optuna_internals.stored_trial(study, trial).value == x


def test_a_lost_trial_is_failed_with_its_reason_once(study):
    trial = study.ask()
    trial_id = optuna_internals.trial_id(trial)
    failed = optuna_internals.fail_trial(study, trial_id, record.REASON_ATTR, record.WORKER_LOST)
    assert failed.state == TrialState.FAIL and failed.user_attrs[record.REASON_ATTR] == record.WORKER_LOST
    again = optuna_internals.fail_trial(study, trial_id, record.REASON_ATTR, record.INTERRUPTED)
    assert again is None, "it ended: nothing more to do"
    assert study.trials[0].user_attrs[record.REASON_ATTR] == record.WORKER_LOST


def test_sqlite_takes_no_heartbeats_and_is_its_own_database(study):
    assert optuna_internals.heartbeat_interval(study) is None and optuna_internals.stale_trial_ids(study) == []
    assert optuna_internals.rdb(study).engine.dialect.name == "sqlite"


def test_a_read_returns_the_trials_changed_since_the_last_one_and_a_tally_of_them_matches_a_full_read(tmp_path):
    """Two workers on one storage: this one reads incrementally, the other creates, tells and queues."""
    import random

    from sweeps.tally import Tally

    url = f"sqlite:///{tmp_path / 's.db'}"
    ours = optuna.create_study(storage=open_storage(url), study_name="s")
    theirs = optuna.load_study(storage=url, study_name="s")  # another process's cache
    tally, mark, rng, running = Tally(["minimize"]), 0, random.Random(7), []

    def tally_of_every_trial() -> Tally:
        full = Tally(["minimize"])
        full.update(optuna.load_study(storage=url, study_name="s").get_trials(deepcopy=False))
        return full

    for step in range(300):
        action = rng.random()
        if action < 0.4:
            running.append(rng.choice([ours, theirs]).ask())
        elif action < 0.8 and running:
            trial = running.pop(rng.randrange(len(running)))
            state = rng.choice([TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
            value = rng.random() if state == TrialState.COMPLETE else None
            trial.study.tell(trial, value, state=state)
        elif action < 0.85:
            theirs.enqueue_trial({})
        else:
            trials, mark = optuna_internals.trials_changed_since(ours, mark, tally.open_numbers)
            tally.update(trials)
            full = tally_of_every_trial()
            assert (tally.counts(), tally.trials_seen) == (full.counts(), full.trials_seen), step
            assert tally.best is full.best or tally.best.number == full.best.number

    ended = tally.ended
    trials, _ = optuna_internals.trials_changed_since(ours, mark, tally.open_numbers)
    assert ended > 50 and sorted(t.number for t in trials) == sorted(tally.open_numbers), "nothing new: the open ones"
