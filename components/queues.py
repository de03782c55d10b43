"""A fix for lightning-app 2.3.2's idle flow loop burning a whole core.

``MultiProcessQueue.get`` and ``batch_get`` pass ``block=(timeout is None)``: given a timeout,
they never block, and the flow's loop polls its queues as fast as the CPU allows even when
nothing happens. Blocking for the timeout the caller asked for is what the API promises; it
returns as soon as an item arrives, so no latency is added. Idle CPU of the app: ~100 % -> see
the README's figures.
"""

from __future__ import annotations

from typing import Any

from lightning_app.core.queues import MultiProcessQueue


def _get(self: MultiProcessQueue, timeout: float | None = None) -> Any:
    if timeout == 0:
        timeout = self.default_timeout
    return self.queue.get(block=True, timeout=timeout)


def _batch_get(self: MultiProcessQueue, timeout: float | None = None, count: int | None = None) -> list[Any]:
    return [_get(self, timeout)]


def block_on_queue_timeouts() -> None:
    MultiProcessQueue.get = _get
    MultiProcessQueue.batch_get = _batch_get
