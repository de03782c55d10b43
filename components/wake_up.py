"""Waking the flow at a steady pace, for news that changes nothing in the app's state.

Lightning runs the root flow only when the app's state changed (a work reported, the UI
clicked). A worker must also act on what the state does not show: a work's process died (it can
no longer report), and, on a shared sweep, what only the storage shows: another worker's trial
ended (run_cap may be met, or a place freed), a worker was lost, Run/Stop was clicked elsewhere.
So a thread of the flow's process hands Lightning's loop an empty change every ``seconds``; the
loop applies it (nothing changes) and runs the flow, which looks.
"""

from __future__ import annotations

import threading
import time

from deepdiff import DeepDiff, Delta
from lightning_app.api.request_types import _DeltaRequest
from lightning_app.utilities.app_helpers import _LightningAppRef


def wake_flow_every(seconds: float) -> None:
    """Start the waking thread (a daemon: it ends with the flow's process)."""
    app = _LightningAppRef.get_current()
    if app is None:
        return  # not inside a running Lightning app (tests that call the flow directly)
    queue = app.delta_queue

    def wake() -> None:
        while True:
            time.sleep(seconds)
            queue.put(_DeltaRequest(delta=Delta(DeepDiff({}, {}))))

    threading.Thread(target=wake, name="sweeps-wake-up", daemon=True).start()
