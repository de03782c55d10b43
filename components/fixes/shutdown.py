"""A fix to how a lightning-app 2.3.2 app stops: whatever signal ends it, every process of the app ends.

Lightning stops an app on Ctrl-C: the KeyboardInterrupt in the main process runs the runtime's
``terminate``, which kills the works, the page's server and the API server (a work caught in its
own SIGTERM handler may outlive it). SIGTERM and SIGHUP instead end the main process at once: sent
to it alone they leave every other process running, and sent to the whole group they leave the
API server (uvicorn waits for the page's websocket to close, which a browser never does) and
multiprocessing's resource tracker. Here the main process takes Ctrl-C's way on all three, then
kills whatever of the app is left, and a watchdog ends it all :data:`GRACE_SECONDS` later if that
hangs: an app always ends within seconds, and a process manager (systemd, ``docker stop``,
``scancel``, Kubernetes) can start the next one at once.

An app that ends by itself (its sweep over) ends its works with one SIGTERM each, and Python's
exit then waits, without a limit, for each process multiprocessing started. A work that misses
that SIGTERM (``py-spy record --subprocesses`` can take it as it samples the work) or ignores it
kept the finished app, and its job, running for ever. Here each gets :data:`GRACE_SECONDS` to
end, and is then killed with what it started (:func:`end_children`).

A part of the app that cannot start (its server cannot listen, its page's server died) stops the
app the same way, with one line on stderr and exit code 1 (:func:`stop_app`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time

import psutil

from components.fixes import Fix
from sweeps.startup import in_main_process

#: How long Lightning's own terminate may take before every remaining process is killed.
GRACE_SECONDS = 5.0
#: The exit code of an app that a part of it could not start.
FAILED = 1

_main_pid: int | None = None
_exit_code: int | None = None


def stop_app(reason: str) -> None:
    """From any process of the app: say why in one line on stderr, and stop the whole app (exit code 1)."""
    print(f"sweeps: {reason}", file=sys.stderr, flush=True)
    os.kill(_main_pid or os.getppid(), signal.SIGUSR1)


def stopping() -> bool:
    """Whether a signal (or :func:`stop_app`) is stopping the app."""
    return _exit_code is not None


def finish() -> None:
    """Once Lightning has terminated the app: kill what is left of it, and exit with the code that says why."""
    kill_descendants(os.getpid())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_code if _exit_code is not None else FAILED)


def end_children() -> None:
    """Once the runtime has terminated the app: wait up to :data:`GRACE_SECONDS` for the processes
    multiprocessing started (the works, the API server) to end, then kill those left, and theirs."""
    deadline = time.monotonic() + GRACE_SECONDS
    for child in multiprocessing.active_children():
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            kill_descendants(child.pid)
            child.kill()
            child.join()


def kill_descendants(pid: int) -> None:
    """SIGKILL every process below ``pid`` (they may have left its group, or ignore SIGTERM)."""
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for child in children:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(children, timeout=GRACE_SECONDS)


def _on_signal(signum: int, frame: object) -> None:
    global _exit_code
    if os.getpid() != _main_pid:  # a forked child (the API server) inherited this handler
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _exit_code is not None:
        return  # already stopping
    _exit_code = FAILED if signum == signal.SIGUSR1 else 128 + signum
    threading.Thread(target=_watchdog, name="sweeps-stop-watchdog", daemon=True).start()
    raise KeyboardInterrupt  # Lightning's runtime terminates the app on it (components.fixes.runtime then finishes)


def _watchdog() -> None:
    time.sleep(GRACE_SECONDS)
    finish()


def _stop_on_signals() -> None:
    """In the app's main process, as it loads the app file in its main thread (a work's process is
    Lightning's to stop; the page's process loads the components in a thread of Streamlit's)."""
    global _main_pid
    if not in_main_process() or threading.current_thread() is not threading.main_thread():
        return
    _main_pid = os.getpid()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
        signal.signal(signum, _on_signal)


FIXES = (
    Fix(
        "lightning-app",
        "2.3.2",
        "SIGTERM or SIGHUP ends the main process alone, leaving the works, the page's server and (with a page "
        "open) the API server running; after Ctrl-C a work can outlive the app",
        _stop_on_signals,
    ),
    Fix(
        "lightning-app",
        "2.3.2",
        "an app that ends by itself waits at exit, for ever, for a work that did not end on its SIGTERM",
        None,  # components.fixes.runtime calls end_children once the runtime has terminated the app
    ),
)
