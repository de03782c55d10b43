"""Every use of Optuna's private API in Sweeps, in one place, checked against the Optuna it was written for.

Sweeps drives a study with its own loop (several processes, several machines) instead of
``study.optimize``, and needs a few things Optuna keeps private: the storage under a study, the
storage ids of trials, heartbeats outside ``optimize``, and failing a trial with its reason written
first. Importing this module on an Optuna outside :data:`WRITTEN_FOR` raises :class:`ImportError`
with one line, before any of these can misbehave.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import defaultdict
from collections.abc import Collection, Container, Sequence

import optuna
import sqlalchemy
from optuna.distributions import json_to_distribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.storages._rdb import models
from optuna.storages._rdb.storage import _create_scoped_session
from optuna.study import StudyDirection
from optuna.study._multi_objective import _get_pareto_front_trials_by_trials
from optuna.trial import FrozenTrial, TrialState
from packaging.specifiers import SpecifierSet

#: The Optuna releases whose internals this module was checked against (requirements.txt allows the same).
WRITTEN_FOR = SpecifierSet(">=5.0,<6")


def check_version(version: str = optuna.__version__) -> None:
    if version not in WRITTEN_FOR:
        raise ImportError(
            f"Sweeps uses Optuna internals written for optuna{WRITTEN_FOR}; found optuna {version}: "
            "pip install -r requirements.txt"
        )


check_version()


class BulkReadRDBStorage(RDBStorage):
    """Optuna's relational storage, reading many trials at once ~5x faster, and holding them in less memory.

    Optuna builds each trial it reads from ORM objects (one per trial, parameter, value and
    attribute): 3 s for 10,000 trials of five parameters, paid by the page's first visit, a flow
    resuming a sweep, and each worker joining one. This reads the same six tables with one plain
    query each and builds the same ``FrozenTrial`` objects. Their distributions are shared (Optuna
    parses one per parameter of each trial): Optuna's cache holds every trial a process has read,
    and a trial of five parameters takes ~40 % less memory.
    """

    def _get_trials(
        self,
        study_id: int,
        states: Container[TrialState] | None,
        included_trial_ids: set[int],
        trial_id_greater_than: int,
    ) -> list[FrozenTrial]:
        trials_table = models.TrialModel.__table__
        chosen = trials_table.c.study_id == study_id
        if states is not None:
            chosen &= trials_table.c.state.in_(list(states))
        if trial_id_greater_than > -1:  # the trials after that id, and the included ones
            newer = trials_table.c.trial_id > trial_id_greater_than
            included = trials_table.c.trial_id.in_(included_trial_ids)
            chosen &= sqlalchemy.or_(newer, included) if included_trial_ids else newer
        with _create_scoped_session(self.scoped_session) as session:
            models.StudyModel.find_or_raise_by_id(study_id, session)  # KeyError for a study that is not there
            rows = session.execute(sqlalchemy.select(trials_table).where(chosen).order_by(trials_table.c.trial_id))
            trials = rows.mappings().all()
            ids = [row["trial_id"] for row in trials]
            children = {
                name: _rows_by_trial(session, model, ids)
                for name, model in (
                    ("params", models.TrialParamModel),
                    ("values", models.TrialValueModel),
                    ("user_attrs", models.TrialUserAttributeModel),
                    ("system_attrs", models.TrialSystemAttributeModel),
                    ("intermediate", models.TrialIntermediateValueModel),
                )
            }
        return [_frozen_trial(row, children) for row in trials]


#: Trials whose rows one query reads (as SQLAlchemy's ``selectinload``: the ids are bound variables,
#: which SQLite limits, and a few is the common case: the trials still running).
_IDS_PER_QUERY = 500


def _rows_by_trial(session: object, model: type, ids: list[int]) -> dict[int, list[object]]:
    table = model.__table__
    by_trial: dict[int, list[object]] = defaultdict(list)
    for start in range(0, len(ids), _IDS_PER_QUERY):
        # In the order of their ids, as Optuna's (it sorts a trial's parameters by id: their order in ``params``).
        chunk = table.c.trial_id.in_(ids[start : start + _IDS_PER_QUERY])
        for row in session.execute(sqlalchemy.select(table).where(chunk).order_by(*table.primary_key)):
            by_trial[row.trial_id].append(row)
    return by_trial


#: A distribution read from the storage, shared by every trial that holds it (nothing changes one).
_distribution = functools.lru_cache(maxsize=4096)(json_to_distribution)


def _frozen_trial(trial: object, children: dict[str, dict[int, list[object]]]) -> FrozenTrial:
    """The trial as Optuna's ``RDBStorage._build_frozen_trial_from_trial_model`` builds it."""
    trial_id = trial["trial_id"]
    values = None
    if value_rows := children["values"].get(trial_id):
        values = [0.0] * len(value_rows)
        for v in value_rows:
            values[v.objective] = models.TrialValueModel.stored_repr_to_value(v.value, v.value_type)
    distributions = {}
    params = {}
    for p in children["params"].get(trial_id, ()):
        distribution = _distribution(p.distribution_json)
        distributions[p.param_name] = distribution
        params[p.param_name] = distribution.to_external_repr(p.param_value)
    return FrozenTrial(
        number=trial["number"],
        state=trial["state"],
        value=None,
        values=values,
        datetime_start=trial["datetime_start"],
        datetime_complete=trial["datetime_complete"],
        params=params,
        distributions=distributions,
        user_attrs={a.key: json.loads(a.value_json) for a in children["user_attrs"].get(trial_id, ())},
        system_attrs={a.key: json.loads(a.value_json) for a in children["system_attrs"].get(trial_id, ())},
        intermediate_values={
            v.step: models.TrialIntermediateValueModel.stored_repr_to_intermediate_value(
                v.intermediate_value, v.intermediate_value_type
            )
            for v in children["intermediate"].get(trial_id, ())
        },
        trial_id=trial_id,
    )


def storage(study: optuna.Study) -> BaseStorage:
    """The storage under the study (Optuna's cache around the database)."""
    return study._storage


def study_id(study: optuna.Study) -> int:
    """The study's id in its storage (several studies may share one database)."""
    return study._study_id


def trial_id(trial: FrozenTrial | optuna.Trial) -> int:
    """The trial's id in the storage, which differs from its number once a storage holds several studies."""
    return trial._trial_id


def create_trial(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` for a study the caller knows holds no queued (WAITING) trial.

    ``ask`` first looks for a queued trial: a query (a round trip through the gRPC proxy), and a
    pass over every trial of the study, on each ask. The caller's tally knows when there is none.
    """
    study._thread_local.cached_all_trials = None  # as ask() does: samplers read the trials afresh
    return optuna.Trial(study, study._storage.create_new_trial(study._study_id))


def trials_changed_since(
    study: optuna.Study, mark: int, open_numbers: Collection[int]
) -> tuple[list[FrozenTrial], int]:
    """The study's trials, read afresh, that may have changed since the read that returned ``mark``
    (0: none yet): those created since, by any worker, and those numbered in ``open_numbers`` (not
    ended then). With the mark for the next read. Every other trial had ended, and never changes.

    Optuna's cached storage fetches only such trials from the database, but ``study.get_trials``
    then sorts and returns every trial: a pass over all of them on each read, which grows with the
    sweep. A trial the cache has not held before is added at the end of its dict, by its first read
    or by its creation here. Without that cache (the gRPC proxy's client): every trial, mark 0.
    """
    cache = study._storage
    if not isinstance(cache, _CachedStorage):
        return study.get_trials(deepcopy=False), 0
    cache._read_trials_from_remote_storage(study._study_id)
    with cache._lock:
        held = cache._studies[study._study_id].trials
        new = list(itertools.islice(reversed(held.values()), len(held) - mark))
        changed = {t.number: t for t in new} | {n: held[n] for n in open_numbers if n in held}
        return sorted(changed.values(), key=lambda t: t.number), len(held)


def stored_trial(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
    """The trial as the storage holds it now (from Optuna's cache once it has ended)."""
    return study._storage.get_trial(trial._trial_id)


def trial_by_number(study: optuna.Study, number: int) -> FrozenTrial:
    """The stored trial of that number, without reading every trial of the study."""
    storage = study._storage
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))


def as_created(trial: optuna.Trial) -> FrozenTrial:
    """The trial as the storage held it when ``trial`` was made (RUNNING), without another query."""
    return trial._cached_frozen_trial


def fail_trial(study: optuna.Study, trial_id: int, reason_attr: str, reason: str) -> FrozenTrial | None:
    """Fail a running trial that no ``optuna.Trial`` of this process holds, its reason written first
    (a trial cannot be changed once failed); None if it ended meanwhile (told, or failed by another)."""
    try:
        study._storage.set_trial_user_attr(trial_id, reason_attr, reason)
        study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return None
    return study._storage.get_trial(trial_id)


def heartbeat_interval(study: optuna.Study) -> int | None:
    """Seconds between heartbeats when the study's storage records them, else None."""
    return study._storage.get_heartbeat_interval() if is_heartbeat_enabled(study._storage) else None


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """Running trials (storage ids) whose worker has not recorded a heartbeat within the grace period."""
    if not is_heartbeat_enabled(study._storage):
        return []
    return study._storage._get_stale_trial_ids(study._study_id)


def unbeaten_trial_ids(study: optuna.Study) -> list[int]:
    """Running trials (storage ids) that have no heartbeat at all. Optuna's stale check passes these
    over for ever; a worker killed between creating a trial and recording its first beat leaves one."""
    storage = rdb(study)
    if storage is None:
        return []
    trials = models.TrialModel
    with _create_scoped_session(storage.scoped_session) as session:
        query = session.query(trials.trial_id).filter(
            trials.study_id == study._study_id, trials.state == TrialState.RUNNING, ~trials.heartbeats.any()
        )
        return [trial_id for (trial_id,) in query]


def rdb(study: optuna.Study) -> RDBStorage | None:
    """The relational database under Optuna's cache, if the study is in one."""
    backend = getattr(study._storage, "_backend", study._storage)
    return backend if isinstance(backend, RDBStorage) else None


def pareto_front(trials: Sequence[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """The COMPLETE trials no other trial dominates (``study.best_trials``, without a study to hold them)."""
    return _get_pareto_front_trials_by_trials(list(trials), [StudyDirection[d.upper()] for d in directions])


def grpc_proxy_server(storage: BaseStorage, host: str, port: int, threads: int) -> object:
    """Optuna's gRPC storage proxy, not started: ``run_grpc_proxy_server`` without its blocking wait,
    so that the caller says where it serves only once it does (a port in use raises RuntimeError)."""
    from concurrent.futures import ThreadPoolExecutor

    from optuna.storages._grpc.server import make_server

    return make_server(storage, host, port, ThreadPoolExecutor(max_workers=threads, thread_name_prefix="proxy"))
