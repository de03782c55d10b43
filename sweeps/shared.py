"""Workers sharing one sweep through a PostgreSQL storage or Optuna's gRPC proxy: asks and heartbeats.

Optuna's own way to distribute a study is that every worker talks to one database; Sweeps adds
what that way lacks (``sweeps.sweep`` uses both):

- an exact ``run_cap``: on PostgreSQL "count the trials, then ask for one more" runs under an
  advisory lock, so two workers cannot both take the last place (``MaxTrialsCallback`` overshoots:
  optuna#1883). Through the gRPC proxy there is no lock: a worker checks its new trial's place
  once the trial exists (``Tally.places_taken_below``), and gives it back if it came too late;
- heartbeats: each running trial's worker records a heartbeat for it from a thread, so that the
  other workers find a trial whose worker died (``sweeps.recovery``): Optuna's own on PostgreSQL,
  a trial attribute through the proxy (which does not carry Optuna's), whose silence each worker
  times with its own clock.
"""

from __future__ import annotations

import contextlib
import threading
import time
import warnings
from collections.abc import Iterator

import optuna
import sqlalchemy
from optuna.trial import FrozenTrial, TrialState

from sweeps import optuna_internals

#: Advisory locks are keyed by two integers: this one says "a Sweeps ask", the other is the study.
_LOCK_CLASS = 0x5EE9
#: Through the gRPC proxy: the trial attribute a running trial's worker rewrites every heartbeat interval.
HEARTBEAT_ATTR = "sweeps:heartbeat"


@contextlib.contextmanager
def ask_lock(study: optuna.Study) -> Iterator[bool]:
    """Hold the study's ask lock while the caller counts trials and asks for one; whether asks are
    serialised by it. If not (the gRPC proxy), the caller checks the new trial's place.

    On PostgreSQL, a session-level advisory lock on a connection of its own: the count and the
    new trial are committed by Optuna's sessions inside it, and the server releases it if the
    worker dies. On SQLite one process writes (``sweeps.storage`` claims the file): there is
    nothing to lock.
    """
    rdb = optuna_internals.rdb(study)
    if rdb is None or rdb.engine.dialect.name != "postgresql":
        yield rdb is not None
        return
    key = {"c": _LOCK_CLASS, "o": optuna_internals.study_id(study)}
    with rdb.engine.connect() as connection:
        connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:c, :o)"), key)
        try:
            yield True
        finally:
            connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:c, :o)"), key)


def ask_study(study: optuna.Study) -> optuna.Trial:
    """``study.ask()``, which warns that heartbeats are meant for ``optimize`` (which Sweeps replaces)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
        return study.ask()


class Heartbeats:
    """A heartbeat for each trial this worker runs, from ask to tell, recorded by one thread.

    Optuna's own ``HeartbeatThread`` (one per trial, as ``optimize`` uses it) is not a daemon: a
    worker stopped with trials still running would wait for ever at exit. Here one daemon thread
    records the heartbeat of every running trial each ``interval``: Optuna's where the storage
    takes them (PostgreSQL), else (the gRPC proxy) :data:`HEARTBEAT_ATTR`; none without ``interval``.
    """

    def __init__(self, study: optuna.Study, interval: int | None) -> None:
        self._storage = optuna_internals.storage(study)
        optunas = optuna_internals.heartbeat_interval(study)
        self._optuna = optunas is not None
        self._interval = optunas or interval
        self._beats = 0
        self._trial_ids: dict[int, int] = {}  # trial number -> storage id
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self, trial: optuna.Trial) -> None:
        if self._interval is None:
            return
        trial_id = optuna_internals.trial_id(trial)
        # At once on PostgreSQL: Optuna never takes a trial without a heartbeat for lost. Through the
        # proxy, LostTrials times a trial's silence from when it first sees it, with or without one.
        if self._optuna:
            self._record(trial_id)
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
            self._beats += 1
            for trial_id in trial_ids:
                try:
                    self._record(trial_id)
                except Exception:  # the server out of reach for now (SQLAlchemy's, gRPC's), the trial just told:
                    pass  # the next beat tries again; the thread outlives any of them

    def _record(self, trial_id: int) -> None:
        if self._optuna:
            self._storage.record_heartbeat(trial_id)
        else:  # any new value will do: other workers watch it change, each by its own clock
            self._storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, self._beats)


class LostTrials:
    """Which running trials lost their worker: no heartbeat within ``grace`` seconds.

    On PostgreSQL Optuna compares each trial's last heartbeat with the database's clock; a trial
    with none yet (its worker died right after creating it) is lost once this worker has seen it so
    for ``grace`` seconds. Through the proxy a worker sees each running trial's
    :data:`HEARTBEAT_ATTR` at every read of the study (:meth:`watch`), and a trial is lost once its
    value has not changed for ``grace`` seconds of this worker's own clock: no two machines' clocks
    are compared.
    """

    def __init__(self, study: optuna.Study, grace: float) -> None:
        self._study = study
        self._grace = grace
        self._optuna = optuna_internals.heartbeat_interval(study) is not None
        self._seen: dict[int, tuple[object, float]] = {}  # trial id -> (its last heartbeat, since when)
        self._unbeaten: dict[int, float] = {}  # trial id -> since when it has had no heartbeat (PostgreSQL)

    def watch(self, trials: list[FrozenTrial]) -> None:
        if self._optuna:
            return
        now, seen = time.monotonic(), {}
        for trial in trials:
            if trial.state != TrialState.RUNNING:
                continue
            trial_id, beat = optuna_internals.trial_id(trial), trial.system_attrs.get(HEARTBEAT_ATTR)
            last = self._seen.get(trial_id)
            seen[trial_id] = last if last is not None and last[0] == beat else (beat, now)
        self._seen = seen

    def find(self) -> list[int]:
        """The lost trials' storage ids."""
        now = time.monotonic()
        if self._optuna:
            unbeaten = optuna_internals.unbeaten_trial_ids(self._study)
            self._unbeaten = {trial_id: self._unbeaten.get(trial_id, now) for trial_id in unbeaten}
            silent = [trial_id for trial_id, since in self._unbeaten.items() if now - since > self._grace]
            return optuna_internals.stale_trial_ids(self._study) + silent
        return [trial_id for trial_id, (_, since) in self._seen.items() if now - since > self._grace]
