"""Fixes to lightning-app 2.3.2's flow loop, applied when ``components`` is imported.

1. An idle app burned a whole core. ``MultiProcessQueue.get`` and ``batch_get`` pass
   ``block=(timeout is None)``: given a timeout, they never block, so the loop polled its queues as
   fast as the CPU allows. Here they block for up to the timeout (at least ``MIN_WAIT``) and return
   as soon as an item arrives.
2. Every pass of the loop took at least 0.15 s. It collects the works' and the UI's state changes
   for ``STATE_ACCUMULATE_WAIT`` seconds; its early exit (``if len(received_deltas) == []``) can
   never be true, so it always waits the full window, and a trial that ended waited that long
   before the flow saw it. A shorter window, with the blocking get above, lets the flow react
   within a few tens of milliseconds without spinning when idle.

3. An app could hang at exit: a queue whose reader process is already gone keeps the exiting
   process waiting for its feeder thread to flush into a full pipe. State messages left unsent at
   exit are worth nothing, so the flow's process does not wait for them (``cancel_join_thread``).

Figures before and after are in the README (``benchmarks/idle_cpu.py``, ``benchmarks/overhead.py``).
"""

from __future__ import annotations

from typing import Any

import lightning_app.core.app
from lightning_app.core.queues import MultiProcessQueue

#: The flow's collection window, down from Lightning's 0.15 s.
ACCUMULATE_SECONDS = 0.02
#: The shortest wait of a get: an idle loop wakes up ~1/MIN_WAIT times a second.
MIN_WAIT = 0.05


def _get(self: MultiProcessQueue, timeout: float | None = None) -> Any:
    if timeout is not None:
        timeout = max(timeout, MIN_WAIT)
    return self.queue.get(block=True, timeout=timeout)


def _batch_get(self: MultiProcessQueue, timeout: float | None = None, count: int | None = None) -> list[Any]:
    return [_get(self, timeout)]


_original_init = MultiProcessQueue.__init__


def _init(self: MultiProcessQueue, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    self.queue.cancel_join_thread()


def apply() -> None:
    MultiProcessQueue.get = _get
    MultiProcessQueue.batch_get = _batch_get
    MultiProcessQueue.__init__ = _init
    # Read by LightningApp.__init__, so this must run before the app file creates the app.
    lightning_app.core.app.STATE_ACCUMULATE_WAIT = ACCUMULATE_SECONDS
