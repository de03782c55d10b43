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
