"""Running one trial's script in a child process that the caller supervises.

The script cannot be trusted with the process it runs in: ``os._exit``, ``os.abort``, a segfault
or the OOM killer would take that process with it, and a hang would hold it forever. So it runs
in a child forked by a process warm with its imports (``sweeps.forkserver``); the caller reads
its output as it is printed, enforces the deadline, stops it on request, and learns how it ended
from its wait status. Only the caller survives to report.
"""

from __future__ import annotations

import faulthandler
import io
import json
import math
import os
import runpy
import selectors
import signal
import sys
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweeps.forkserver import ForkServer

#: How often the parent wakes up with nothing to read, to check the deadline and stop requests.
POLL_SECONDS = 0.05


@dataclass
class ProcessEnd:
    """How the script's process ended."""

    exit_code: int | None = 0  # None when a signal ended it
    signal: int | None = None
    error: str | None = None  # an exception the script raised: "ValueError: msg (at train.py:12)"
    timed_out: bool = False
    stopped: bool = False  # ``should_stop`` asked for it (the pruner)
    script_globals: dict[str, float] | None = None  # the numeric globals the script left


@dataclass
class ScriptRun:
    """What one trial's child runs: the program as ``__main__`` with ``args`` (as ``python program
    args`` would, and as Lightning's ``TracerPythonScript`` does), or ``command`` through ``exec``."""

    program: str
    args: list[str] = field(default_factory=list)
    command: list[str] | None = None  # the sweep's own command line, run instead of the program
    hooks: dict[str, str] | None = None  # ``sweeps.trainer.TrialHooks``, for the callback of a Lightning Trainer

    def __call__(self, trainer_packages: Sequence[str] = ()) -> dict[str, Any] | None:
        """In the child. ``trainer_packages``: the Lightning packages whose Trainer to trace."""
        if self.command is not None:
            os.execvp(self.command[0], self.command)
        if self.hooks is not None and trainer_packages:
            from sweeps.trainer import TrialHooks, trace_trainers

            trace_trainers(trainer_packages, TrialHooks(**self.hooks))
        sys.argv = [self.program, *self.args]
        sys.path.insert(0, os.path.dirname(os.path.abspath(self.program)))
        return runpy.run_path(self.program, run_name="__main__")


def run_trial(
    server: ForkServer,
    run: ScriptRun,
    stdout: Callable[[str], Any],
    stderr: Callable[[str], Any],
    timeout: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    stop_grace: Callable[[], float] = lambda: 0.0,
) -> ProcessEnd:
    """Run ``run`` in a child of ``server``; feed its output to ``stdout``/``stderr`` as it comes.

    The script's numeric globals travel back too. ``should_stop`` is called on every pass (also
    while the child stops); once it says True, the child is killed after ``stop_grace()`` seconds
    (asked then) unless it has exited by itself.
    """
    from sweeps.forkserver import ServerLost

    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    try:
        pid = server.spawn(run, out_w, err_w, res_w)
    except ServerLost as lost:
        os.close(out_r), os.close(err_r), os.close(res_r)
        return ProcessEnd(exit_code=None, error=f"{lost} (killed, or out of memory)")
    finally:
        os.close(out_w), os.close(err_w), os.close(res_w)  # the child has its own copies
    try:
        status, end = _supervise(pid, server, {out_r: stdout, err_r: stderr}, timeout, should_stop, stop_grace)
    except ServerLost as lost:
        status, end = None, ProcessEnd(error=f"{lost} (killed, or out of memory)")
    finally:
        _kill_group(pid)  # whatever the script started and left behind
        os.close(out_r), os.close(err_r)
    with open(res_r) as channel:
        text = channel.read()
    result = json.loads(text) if text else {}
    end.error, end.script_globals = result.get("error", end.error), result.get("globals")
    if status is None:
        end.exit_code = None
    elif os.WIFSIGNALED(status):
        end.exit_code, end.signal = None, os.WTERMSIG(status)
    else:
        end.exit_code = os.WEXITSTATUS(status)
    return end


def child_main(target: Callable[[], Mapping[str, Any] | None], out_w: int, err_w: int, res_w: int) -> None:
    """In the forked child: run ``target`` with its output on those pipes, and its result on ``res_w``."""
    # A group of its own, so that everything the script starts can be killed with it; and death
    # with the parent, so that a killed app leaves no script running.
    os.setpgid(0, 0)
    die_with_parent()
    # The parent's handlers (Lightning's SIGTERM handler) must not run here.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w), os.close(err_w)
    # Line-buffered, so that each line reaches the parent (and a pruner) when it is printed.
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
    faulthandler.enable(file=sys.stderr)  # a segfault's Python traceback goes to the trial's log
    code, result = 0, {}
    try:
        result["globals"] = _numbers(target() or {})
    except SystemExit as exc:
        code = _exit_code(exc)
    except BaseException as exc:  # the script's failure is what the parent reports
        traceback.print_exc()
        result["error"] = _describe(exc)
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        with open(res_w, "w") as channel:
            json.dump(result, channel)
    finally:
        os._exit(code)


def _supervise(
    pid: int,
    server: ForkServer,
    sinks: dict[int, Callable[[str], Any]],
    timeout: float | None,
    should_stop: Callable[[], bool],
    stop_grace: Callable[[], float],
) -> tuple[int, ProcessEnd]:
    """Relay the child's output until it exits; kill it at the deadline, or when asked to stop
    and its grace period is over."""
    deadline = None if timeout is None else time.monotonic() + timeout
    kill_at = math.inf  # set when a stop is asked for
    end = ProcessEnd()
    with selectors.DefaultSelector() as selector:
        for fd, sink in sinks.items():
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ, sink)
        selector.register(server.fileno(), selectors.EVENT_READ, None)  # wakes the select at the child's exit
        while True:
            for key, _ in selector.select(POLL_SECONDS):
                if key.data is not None and not _relay(key.fd, key.data):
                    selector.unregister(key.fd)
            status = server.poll()
            if status is not None:
                break
            stop = should_stop()
            now = time.monotonic()
            if deadline is not None and now > deadline and not end.stopped:
                end.timed_out = True
            elif stop and not end.stopped:
                end.stopped = True  # and stays so: a deadline within the grace kills it, PRUNED all the same
                kill_at = min(now + stop_grace(), math.inf if deadline is None else deadline)
                if now < kill_at:
                    continue
            elif now < kill_at:
                continue
            _kill_group(pid)
            status = server.wait()
            break
        for key in list(selector.get_map().values()):  # what it printed last
            while key.data is not None and _relay(key.fd, key.data):
                pass
    return status, end


def _relay(fd: int, sink: Callable[[str], Any]) -> bool:
    """Pass on what can be read now; False at end of file or when nothing is left."""
    try:
        chunk = os.read(fd, 65536)
    except BlockingIOError:
        return False
    if chunk:
        sink(chunk.decode("utf-8", errors="replace"))
    return bool(chunk)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: a killed app may leave a script running
        pass


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
    return 1


def _describe(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _numbers(script_globals: Mapping[str, Any]) -> dict[str, float]:
    """The globals that are numbers (numpy and torch scalars included), as floats."""
    found = {}
    for name, value in script_globals.items():
        if name.startswith("__") or isinstance(value, (bool, str, bytes)):
            continue
        try:
            found[name] = float(value)
        except (TypeError, ValueError, RuntimeError):
            continue
    return found
