"""Several worker processes, on one or many machines, running one sweep through a shared storage.

Optuna's own way to distribute a study is that every worker talks to one database; Sweeps adds
the three things that way lacks:

- an exact budget: "count the trials, then ask for one more" runs under a PostgreSQL advisory
  lock, so two workers cannot both take the last place (``MaxTrialsCallback`` overshoots:
  optuna#1883);
- heartbeats: each running trial's worker records Optuna's heartbeat for it from a thread; a
  trial whose heartbeat stopped (its worker was killed, or its machine lost) is found by the
  other workers, which fail it as ``worker lost`` and try its parameters again;
- one Run/Stop for all: a study attribute every worker reads.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import BaseHeartbeatThread, get_heartbeat_thread, is_heartbeat_enabled

#: The study attribute every worker obeys: RUN or STOP, set by the last worker started or UI click.
CONTROL_ATTR = "sweeps:control"
RUN, STOP = "run", "stop"

#: Advisory locks are keyed by two integers: this one says "a Sweeps budget", the other is the study.
_LOCK_CLASS = 0x5EE9


def rdb_backend(storage: BaseStorage) -> RDBStorage | None:
    """The RDBStorage under Optuna's cache, if the study is in a relational database."""
    storage = getattr(storage, "_backend", storage)
    return storage if isinstance(storage, RDBStorage) else None


@contextlib.contextmanager
def budget_lock(study: optuna.Study) -> Iterator[None]:
    """Hold the study's budget lock, on PostgreSQL, while the caller counts trials and asks for one.

    A session-level advisory lock on a connection of its own: the count and the new trial are
    committed by Optuna's sessions inside it, and the server releases it if the worker dies.
    """
    backend = rdb_backend(study._storage)
    if backend is None or backend.engine.dialect.name != "postgresql":
        yield  # SQLite and memory: one process writes (sweeps.storage claims the file)
        return
    key = {"c": _LOCK_CLASS, "o": study._study_id}
    with backend.engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:c, :o)"), key)
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:c, :o)"), key)


def stale_trial_ids(study: optuna.Study) -> list[int]:
    """Running trials (storage ids) whose worker has not recorded a heartbeat within the grace period."""
    if not is_heartbeat_enabled(study._storage):
        return []
    return study._storage._get_stale_trial_ids(study._study_id)  # type: ignore[attr-defined]


class Heartbeats:
    """Optuna's heartbeat threads, one per trial this worker runs, from ask to tell."""

    def __init__(self, study: optuna.Study) -> None:
        self._study = study
        self._threads: dict[int, BaseHeartbeatThread] = {}

    def start(self, trial: optuna.Trial) -> None:
        thread = get_heartbeat_thread(trial._trial_id, self._study._storage)
        thread.start()  # records one heartbeat at once, then one every heartbeat_interval
        self._threads[trial.number] = thread

    def stop(self, number: int) -> None:
        thread = self._threads.pop(number, None)
        if thread is not None:
            thread.join()


def ask_without_heartbeat_warning(study: optuna.Study) -> optuna.Trial:
    """``study.ask()``; Optuna warns that heartbeats are meant for ``optimize``, which we replace."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()
