"""Every use of Optuna's private API in Sweeps, in one place, checked against the Optuna it was written for.

Sweeps drives a study with its own loop (several processes, several machines) instead of
``study.optimize``, and needs a few things Optuna keeps private: the storage under a study, the
storage ids of trials, heartbeats outside ``optimize``, and failing a trial with its reason written
first. Importing this module on an Optuna outside :data:`WRITTEN_FOR` raises :class:`ImportError`
with one line, before any of these can misbehave.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence

import optuna
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
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
