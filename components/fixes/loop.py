"""Fixes to lightning-app 2.3.2's loop: its queues, its state diffs and its works' calls.

Applied in every app process (the flow's, each work's) when ``components`` is imported, before
the app file creates the app. Without them an idle app burns a core, every trial's end reaches
the flow 0.15 s late, the app's memory and state grow with every trial, and an app can hang at
exit. ``benchmarks/idle_cpu.py`` and ``benchmarks/overhead.py`` measure what they are for.
"""

from __future__ import annotations

import functools
import queue
import sys
import threading
from copy import deepcopy
from typing import Any

import deepdiff.delta
import deepdiff.path
import lightning_app.core.app
import lightning_app.utilities.proxies
from deepdiff import DeepDiff, Delta
from lightning_app.core.api import UIRefresher
from lightning_app.core.app import LightningApp
from lightning_app.core.queues import MultiProcessQueue
from lightning_app.core.work import LightningWork
from lightning_app.storage import Drive, Path
from lightning_app.utilities.app_helpers import _LightningAppRef
from lightning_app.utilities.component import _sanitize_state
from lightning_app.utilities.enum import CacheCallsKeys
from lightning_app.utilities.proxies import ComponentDelta, LightningWorkSetAttrProxy, ProxyWorkRun, WorkRunExecutor
from lightning_utilities.core.apply_func import apply_to_collection

from components.fixes import Fix

LIGHTNING_APP = "lightning-app", "2.3.2"

#: How long the loop collects more changes once one has arrived (Lightning: 0.15 s).
ACCUMULATE_SECONDS = 0.002
#: How long an idle loop waits for a change before it runs anyway.
IDLE_WAIT = 0.1
#: How long a thread may hold the GIL while another waits for it (Python: 5 ms).
SWITCH_SECONDS = 0.0005
#: How many parsed delta paths DeepDiff keeps (DeepDiff: 131,072).
PATH_CACHE = 4096
#: At most this many queued states are read (and all but the last dropped) per refresh.
CATCH_UP = 10_000

ORIGINAL = {
    "init": MultiProcessQueue.__init__,
    "get": MultiProcessQueue.get,
    "batch_get": MultiProcessQueue.batch_get,
    "collect": LightningApp._collect_deltas_from_ui_and_work_queues,
    "apply_changes": LightningApp.maybe_apply_changes,
    "refresh": UIRefresher.run_once,
    "setattr": LightningWorkSetAttrProxy.__call__,
    "paths": deepdiff.path._path_to_elements,
    "lock": lightning_app.utilities.proxies._state_observer_lock,
}


def _get(self: MultiProcessQueue, timeout: float | None = None) -> Any:
    """Block for up to ``timeout`` (Lightning passes ``block=(timeout is None)``: never, given one)."""
    waited_for = self.__dict__.get("_waited_for")
    if waited_for:
        return waited_for.pop()
    if timeout == 0:
        timeout = self.default_timeout
    return self.queue.get(block=True, timeout=timeout)


def _batch_get(self: MultiProcessQueue, timeout: float | None = None, count: int | None = None) -> list[Any]:
    return [_get(self, timeout)]


def _block_on_queues() -> None:
    MultiProcessQueue.get = _get
    MultiProcessQueue.batch_get = _batch_get


def _collect(self: LightningApp) -> list[Any]:
    """Wait, blocked, for the first change (up to ``IDLE_WAIT``), then collect for ``ACCUMULATE_SECONDS``."""
    deltas = self.delta_queue
    if isinstance(deltas, MultiProcessQueue):
        waited_for = deltas.__dict__.setdefault("_waited_for", [])
        if not waited_for:
            try:
                waited_for.append(deltas.queue.get(block=True, timeout=IDLE_WAIT))
            except queue.Empty:
                pass
    return ORIGINAL["collect"](self)


def _react_at_once() -> None:
    LightningApp._collect_deltas_from_ui_and_work_queues = _collect
    # Read by LightningApp.__init__, so this must run before the app file creates the app.
    lightning_app.core.app.STATE_ACCUMULATE_WAIT = ACCUMULATE_SECONDS


def _refresh(self: UIRefresher) -> None:
    ORIGINAL["refresh"](self)
    for _ in range(CATCH_UP):  # each call stores the next state over the previous one
        if self.api_publish_state_queue.queue.empty():
            return
        ORIGINAL["refresh"](self)


def _catch_up() -> None:
    UIRefresher.run_once = _refresh


def _init(self: MultiProcessQueue, *args: Any, **kwargs: Any) -> None:
    ORIGINAL["init"](self, *args, **kwargs)
    self.queue.cancel_join_thread()  # state messages left unsent at exit are worth nothing


def _exit_without_flushing() -> None:
    MultiProcessQueue.__init__ = _init


def _reentrant_state_lock() -> None:
    if not isinstance(lightning_app.utilities.proxies._state_observer_lock, type(threading.RLock())):
        lightning_app.utilities.proxies._state_observer_lock = threading.RLock()


def _apply_changes(self: LightningApp) -> bool | None:
    """``LightningApp.maybe_apply_changes``, computing the state once and sending works nothing.

    Only a work's state observer reads what the original sends works, and Sweeps' works run
    without one (:func:`_no_state_observer`).
    """
    if not self.collect_changes:
        return None
    deltas = self._collect_deltas_from_ui_and_work_queues()
    state = self.state
    if not deltas:  # did the flow change its own state?
        last = apply_to_collection(self.last_state, (Path, Drive), lambda x: x.to_dict())
        if DeepDiff(last, apply_to_collection(state, (Path, Drive), lambda x: x.to_dict()), verbose_level=2):
            self.set_last_state(state)
            self._has_updated = True
        return False
    for delta in deltas:
        try:
            state += delta
        except Exception as ex:
            raise Exception(f"Current State {state}, {delta.to_dict()}") from ex
    self.set_state(state)
    self._has_updated = True
    return None


def _state_once() -> None:
    LightningApp.maybe_apply_changes = _apply_changes


def _setattr(self: LightningWorkSetAttrProxy, name: str, value: Any) -> None:
    """``LightningWorkSetAttrProxy.__call__``, diffing the assigned attribute only."""
    work = self.work
    with lightning_app.utilities.proxies._state_observer_lock:
        if name not in work._state:  # not part of the state (or not allowed: Lightning says so)
            work._default_setattr(name, value)
            return
        before = {"vars": _sanitize_state({name: deepcopy(getattr(work, name))})}
        work._default_setattr(name, value)
        delta = Delta(DeepDiff(before, {"vars": _sanitize_state({name: getattr(work, name)})}, verbose_level=2))
        if not delta.to_dict():
            return
        self.delta_queue.put(ComponentDelta(id=self.work_name, delta=delta))
        if self.state_observer:  # it must not send this change again
            self.state_observer._delta_memory.append(delta)


def _diff_one_attribute() -> None:
    LightningWorkSetAttrProxy.__call__ = _setattr


def _switch_threads_often() -> None:
    sys.setswitchinterval(SWITCH_SECONDS)


def _bound_path_cache() -> None:
    if not hasattr(deepdiff.path._path_to_elements, "sweeps_bounded"):
        paths = functools.lru_cache(maxsize=PATH_CACHE)(ORIGINAL["paths"].__wrapped__)
        paths.sweeps_bounded = True
        deepdiff.path._path_to_elements = deepdiff.delta._path_to_elements = paths


def _no_state_observer() -> None:
    """Sweeps' works change their state only by assignment, which Lightning sends to the flow at once
    (:func:`_setattr`): the observer thread would find nothing left to send."""
    WorkRunExecutor.enable_start_observer = False


def work_process_alive(work: LightningWork) -> bool:
    """Whether the work's process runs (or has not been started yet); Lightning never looks."""
    app = _LightningAppRef.get_current()
    manager = app.processes.get(work.name) if app is not None else None
    return manager is None or manager._process is None or manager.is_alive()


def restart_work_process(work: LightningWork) -> None:
    """Start a new process for a work whose process died, on a fresh queue of calls.

    Lightning's own ``restart`` fails (the new process asks the work for a ``load_state_dict`` it
    does not have), so the work is started as at first, unwrapped from its proxy. The dead process
    may have died holding the read lock of its queue of calls (a work waits for its next call inside
    ``get``), which would leave the new one waiting for ever: it gets a fresh queue.
    """
    app = _LightningAppRef.get_current()
    backend = app.backend
    fresh = backend.queues.get_caller_queue(queue_id=backend.queue_id, work_name=work.name)
    app.caller_queues[work.name] = fresh
    proxy = work.run if isinstance(work.run, ProxyWorkRun) else None
    if proxy is not None:
        proxy.caller_queue = fresh
        work.run = proxy.work_run  # what the new process runs, as when it was first started
    try:
        app.processes[work.name].start()
    finally:
        if proxy is not None:
            work.run = proxy


def forget_ended_calls(work: LightningWork) -> None:
    """Keep only the latest call in a work's record of calls, before it is called again.

    Lightning keeps every distinct call of a work in its state, and a call per trial would make the
    app's state (sent to every process on every change) grow with the number of trials.
    """
    latest = work._calls[CacheCallsKeys.LATEST_CALL_HASH]
    for key in list(work._calls):
        if key not in (CacheCallsKeys.LATEST_CALL_HASH, latest):
            del work._calls[key]


FIXES = (
    Fix(
        *LIGHTNING_APP, "an idle app burns a whole core: its queues never block when given a timeout", _block_on_queues
    ),
    Fix(
        *LIGHTNING_APP,
        "every pass of the loop waits 0.15 s for more changes (an early exit that can never trigger), "
        "so every trial's end reaches the flow that late",
        _react_at_once,
    ),
    Fix(
        *LIGHTNING_APP,
        "the API server takes one published state per 0.1 s: a flow that publishes faster piles them up "
        "and the page lags further and further behind",
        _catch_up,
    ),
    Fix(*LIGHTNING_APP, "a process can hang at exit on a queue whose reader is gone", _exit_without_flushing),
    Fix(
        *LIGHTNING_APP,
        "a work stopped (SIGTERM) while it sends a state change deadlocks in its SIGTERM handler, "
        "which takes the same non-reentrant lock",
        _reentrant_state_lock,
    ),
    Fix(*LIGHTNING_APP, "every pass of the loop computes the whole app state twice", _state_once),
    Fix(
        *LIGHTNING_APP,
        "each assignment in a work deep-copies and diffs the work's whole state to send one change",
        _diff_one_attribute,
    ),
    Fix(
        *LIGHTNING_APP,
        "a change put on a queue waits up to 5 ms for the GIL before its feeder thread sends it",
        _switch_threads_often,
    ),
    Fix(
        "deepdiff",
        "6.7.1",
        "DeepDiff caches 131,072 parsed delta paths, and Lightning's name each work call by its own hash: "
        "the flow's memory grows with every trial",
        _bound_path_cache,
    ),
    Fix(
        *LIGHTNING_APP,
        "every call of a work starts a thread that diffs the work's state each second and outlives the call",
        _no_state_observer,
    ),
    Fix(*LIGHTNING_APP, "a work's record of calls (in the app's state) grows by one per trial: forget_ended_calls"),
    Fix(
        *LIGHTNING_APP,
        "a work whose process dies is never noticed (its status stays running): work_process_alive, "
        "restart_work_process",
    ),
)
