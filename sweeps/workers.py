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
import threading
import time
import warnings
from collections.abc import Iterator

import optuna
import sqlalchemy
from optuna.storages import BaseStorage, RDBStorage
from optuna.storages._heartbeat import is_heartbeat_enabled

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
    """Optuna's heartbeat for each trial this worker runs, from ask to tell, recorded by one thread.

    Optuna's own ``HeartbeatThread`` (one per trial, as ``optimize`` uses it) is not a daemon: a
    worker stopped with trials still running would wait for ever at exit. Here one daemon thread
    records ``storage.record_heartbeat`` for every running trial each ``heartbeat_interval``.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._storage = study._storage
        self._interval = self._storage.get_heartbeat_interval() if is_heartbeat_enabled(self._storage) else None
        self._trial_ids: dict[int, int] = {}  # trial number -> storage id
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, trial: optuna.Trial) -> None:
        if self._interval is None:
            return
        self._storage.record_heartbeat(trial._trial_id)  # at once: no running trial without one
        with self._lock:
            self._trial_ids[trial.number] = trial._trial_id
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="sweeps-heartbeats", daemon=True)
            self._thread.start()

    def stop(self, number: int) -> None:
        with self._lock:
            self._trial_ids.pop(number, None)

    def _beat(self) -> None:
        while True:
            time.sleep(self._interval)
            with self._lock:
                trial_ids = list(self._trial_ids.values())
            for trial_id in trial_ids:
                try:
                    self._storage.record_heartbeat(trial_id)
                except sqlalchemy.exc.SQLAlchemyError:
                    pass  # the server is out of reach for now: the next beat tries again


def ask_without_heartbeat_warning(study: optuna.Study) -> optuna.Trial:
    """``study.ask()``; Optuna warns that heartbeats are meant for ``optimize``, which we replace."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()
