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


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_bulk_read_builds_the_trials_optunas_own_read_builds(backend, tmp_path, request):
    """Every kind of parameter, value, attribute and state, two studies in one database (trial ids are not
    numbers), and each way Optuna's cache asks: all trials, by state, and new plus still-open ones."""
    import math

    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    url, name = (
        (f"sqlite:///{tmp_path / 's.db'}", "bulk") if backend == "sqlite" else request.getfixturevalue("shared_storage")
    )
    storage = open_storage(url)
    assert type(storage) is optuna_internals.BulkReadRDBStorage
    other = optuna.create_study(storage=storage, study_name=f"{name}-other")
    study = optuna.create_study(
        storage=storage, study_name=name, directions=["minimize", "maximize"], sampler=optuna.samplers.RandomSampler(0)
    )
    space = {
        "lr": FloatDistribution(1e-5, 1.0, log=True),
        "dropout": FloatDistribution(0.0, 0.5, step=0.1),
        "layers": IntDistribution(1, 8),
        "width": IntDistribution(16, 1024, log=True),
        "act": CategoricalDistribution(["relu", None, 3, 2.5, True]),
    }
    values = [(0.5, 1.0), (math.inf, -math.inf), (-math.inf, 2.0)]
    for n in range(30):
        other.enqueue_trial({"x": n / 30}) if n % 7 == 0 else other.ask({"x": FloatDistribution(0, 1)})
        trial = study.ask({k: d for i, (k, d) in enumerate(space.items()) if (n + i) % 4})  # params vary per trial
        trial.set_user_attr("metrics", {"acc": n / 30, "tags": ["a", n]})
        storage.set_trial_system_attr(trial._trial_id, "fixed_params", {"n": n})
        for step in range(n % 4):  # (Trial.report refuses several objectives; Sweeps reports the first)
            storage.set_trial_intermediate_value(trial._trial_id, step, [0.1, math.nan, math.inf, -math.inf][step])
        kind = n % 5
        if kind in (0, 1):
            study.tell(trial, values[n % 3])
        elif kind == 2:
            study.tell(trial, state=TrialState.FAIL)
        elif kind == 3:
            study.tell(trial, state=TrialState.PRUNED)
    study.enqueue_trial({"layers": 3})  # WAITING

    plain = optuna.storages.RDBStorage(url)  # Optuna's own read
    request.addfinalizer(plain.engine.dispose)  # (a later test forks: no connection of this one may be left)
    study_id = plain.get_study_id_from_name(name)
    ids = sorted(t._trial_id for t in study.get_trials(deepcopy=False))
    asks = [
        (None, set(), -1),
        ((TrialState.RUNNING, TrialState.WAITING), set(), -1),
        ((TrialState.COMPLETE,), set(), -1),
        (None, set(ids[3:12:2]), ids[15]),  # what the cache asks: the trials after one, and the open ones before
        (None, set(), ids[-3]),
    ]

    def as_read(trials):  # every field, in order (repr: a NaN intermediate value equals itself)
        return [repr(vars(t)) for t in trials]

    for ask in asks:
        expected = plain._get_trials(study_id, *ask)
        assert expected, ask
        assert as_read(storage._get_trials(study_id, *ask)) == as_read(expected), ask
    assert {t.state for t in storage._get_trials(study_id, None, set(), -1)} == set(TrialState)
    with pytest.raises(KeyError):
        storage._get_trials(study_id + 1000, None, set(), -1)
