"""Fixes to lightning-app 2.3.2's flow loop, applied when ``components`` is imported.

1. An idle app burned a whole core. ``MultiProcessQueue.get`` and ``batch_get`` pass
   ``block=(timeout is None)``: given a timeout, they never block, so the loop polled its queues as
   fast as the CPU allows. Here they block for up to the timeout, returning as soon as an item
   arrives.
2. Every pass of the loop took at least 0.15 s. It collects the works' and the UI's state changes
   for ``STATE_ACCUMULATE_WAIT`` seconds, and its early exit (``if len(received_deltas) == []``)
   can never be true, so it always waits out the window: a trial that ended waited that long
   before the flow saw it. Here the loop first waits, blocked, for the first change (up to
   ``IDLE_WAIT``, so an idle app wakes ~10 times a second), and then collects for only
   ``ACCUMULATE_SECONDS`` more: the flow reacts within a few milliseconds.
3. The UI lagged further and further behind the sweep: the API server takes one published state
   per 0.1 s, and a flow that publishes faster (as it does once 2. is fixed) piles them up in the
   queue (and in the flow's memory). Here the API server catches up to the latest state at once.
4. An app could hang at exit: a queue whose reader process is already gone keeps the exiting
   process waiting for its feeder thread to flush into a full pipe. State messages left unsent at
   exit are worth nothing, so the process does not wait for them (``cancel_join_thread``).
5. A headless app hung at exit, about one run in four under load (py-spy: the main process
   joining a work that never ends). Stopping sends SIGTERM to the works; a work whose last
   state change of its run was still being diffed, under ``_state_observer_lock``, runs the
   SIGTERM handler on top of it, which takes the same (non-reentrant) lock and waits for ever.
   A reentrant lock lets the handler through; the change it interrupts is not needed any more.

6. Every pass of the loop computed the whole app state twice: once to send works the changes the
   flow made to their state, and once to apply the works' changes. Only a work's state observer
   reads the former, and Sweeps' works run without one (``components.objective``), so nothing
   read them. Here the state is computed once, after the changes are collected.

7. Every assignment to a work's attribute inside its ``run`` deep-copied and diffed the work's whole
   state to send the flow one change (~1.5 ms for a trial's result). Here only the assigned
   attribute is diffed: an assignment changes nothing else in the state.

8. A change put on a queue waited up to 5 ms before it left the process: the queue's feeder
   thread, which sends it, needs the GIL, and the thread that put it goes on computing (the flow
   tells the study of the trial that ended; the work diffs its state once more). Python hands
   the GIL over every 5 ms by default; here every 0.5 ms.

9. The flow's memory grew by ~5 KB per trial. DeepDiff caches every delta path it parses, up to
   131,072 of them, and Lightning's deltas name each work call by its own hash, so every trial
   added paths that never come back. Here the cache keeps the 4,096 latest.

Figures before and after are in the README (``benchmarks/idle_cpu.py``, ``benchmarks/overhead.py``).
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
from lightning_app.storage import Drive, Path
from lightning_app.utilities.component import _sanitize_state
from lightning_app.utilities.proxies import ComponentDelta, LightningWorkSetAttrProxy
from lightning_utilities.core.apply_func import apply_to_collection

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

_original_init = MultiProcessQueue.__init__
_original_collect = LightningApp._collect_deltas_from_ui_and_work_queues
_original_refresh = UIRefresher.run_once


def _init(self: MultiProcessQueue, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.queue.cancel_join_thread()
    self._waited_for: list[Any] = []  # an item taken while waiting for the first change


def _get(self: MultiProcessQueue, timeout: float | None = None) -> Any:
    if getattr(self, "_waited_for", None):
        return self._waited_for.pop()
    if timeout == 0:
        timeout = self.default_timeout
    return self.queue.get(block=True, timeout=timeout)


def _batch_get(self: MultiProcessQueue, timeout: float | None = None, count: int | None = None) -> list[Any]:
    return [_get(self, timeout)]


def _collect(self: LightningApp) -> list[Any]:
    deltas = self.delta_queue
    if isinstance(deltas, MultiProcessQueue) and not deltas._waited_for:
        try:
            deltas._waited_for.append(deltas.queue.get(block=True, timeout=IDLE_WAIT))
        except queue.Empty:
            pass
    return _original_collect(self)


def _apply_changes(self: LightningApp) -> bool | None:
    """``LightningApp.maybe_apply_changes``, computing the state once, sending works nothing."""
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


def _refresh(self: UIRefresher) -> None:
    _original_refresh(self)
    for _ in range(CATCH_UP):  # each call stores the next state over the previous one
        if self.api_publish_state_queue.queue.empty():
            return
        _original_refresh(self)


def apply() -> None:
    sys.setswitchinterval(SWITCH_SECONDS)
    MultiProcessQueue.__init__ = _init
    MultiProcessQueue.get = _get
    MultiProcessQueue.batch_get = _batch_get
    LightningApp._collect_deltas_from_ui_and_work_queues = _collect
    LightningApp.maybe_apply_changes = _apply_changes
    LightningWorkSetAttrProxy.__call__ = _setattr
    if not hasattr(deepdiff.path._path_to_elements, "sweeps_bounded"):
        paths = functools.lru_cache(maxsize=PATH_CACHE)(deepdiff.path._path_to_elements.__wrapped__)
        paths.sweeps_bounded = True
        deepdiff.path._path_to_elements = deepdiff.delta._path_to_elements = paths
    UIRefresher.run_once = _refresh
    lightning_app.utilities.proxies._state_observer_lock = threading.RLock()
    # Read by LightningApp.__init__, so this must run before the app file creates the app.
    lightning_app.core.app.STATE_ACCUMULATE_WAIT = ACCUMULATE_SECONDS
