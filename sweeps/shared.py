"""Workers sharing one sweep through a PostgreSQL storage: the ask lock and the heartbeats.

Optuna's own way to distribute a study is that every worker talks to one database; Sweeps adds
what that way lacks (``sweeps.sweep`` uses both):

- an exact ``run_cap``: "count the trials, then ask for one more" runs under a PostgreSQL advisory
  lock, so two workers cannot both take the last place (``MaxTrialsCallback`` overshoots:
  optuna#1883);
- heartbeats: each running trial's worker records Optuna's heartbeat for it from a thread, so
  that the other workers find a trial whose worker died (``sweeps.recovery``).
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Iterator

import optuna
import sqlalchemy

from sweeps import optuna_internals

#: Advisory locks are keyed by two integers: this one says "a Sweeps ask", the other is the study.
_LOCK_CLASS = 0x5EE9


@contextlib.contextmanager
def ask_lock(study: optuna.Study) -> Iterator[None]:
    """Hold the study's ask lock, on PostgreSQL, while the caller counts trials and asks for one.

    A session-level advisory lock on a connection of its own: the count and the new trial are
    committed by Optuna's sessions inside it, and the server releases it if the worker dies.
    On SQLite one process writes (``sweeps.storage`` claims the file): there is nothing to lock.
    """
    rdb = optuna_internals.rdb(study)
    if rdb is None or rdb.engine.dialect.name != "postgresql":
        yield
        return
    key = {"c": _LOCK_CLASS, "o": optuna_internals.study_id(study)}
    with rdb.engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:c, :o)"), key)
        try:
            yield
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:c, :o)"), key)


def ask_study(study: optuna.Study) -> optuna.Trial:
    """``study.ask()``, which warns that heartbeats are meant for ``optimize`` (which Sweeps replaces)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


class Heartbeats:
    """Optuna's heartbeat for each trial this worker runs, from ask to tell, recorded by one thread.

    Optuna's own ``HeartbeatThread`` (one per trial, as ``optimize`` uses it) is not a daemon: a
    worker stopped with trials still running would wait for ever at exit. Here one daemon thread
    records the heartbeat of every running trial each ``heartbeat_interval``.
    """

    def __init__(self, study: optuna.Study) -> None:
        self._storage = optuna_internals.storage(study)
        self._interval = optuna_internals.heartbeat_interval(study)
        self._trial_ids: dict[int, int] = {}  # trial number -> storage id
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, trial: optuna.Trial) -> None:
        if self._interval is None:
            return
        trial_id = optuna_internals.trial_id(trial)
        self._storage.record_heartbeat(trial_id)  # at once: no running trial without one
        with self._lock:
            self._trial_ids[trial.number] = trial_id
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
