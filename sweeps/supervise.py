"""Supervising one trial's child from the work: its output as it is printed, its deadline, pruning.

The script cannot be trusted with the process it runs in: ``os._exit``, ``os.abort``, a segfault
or the OOM killer would take that process with it, and a hang would hold it forever. So it runs
in a child of the fork server (``sweeps.forkserver``, ``sweeps.child``), and the work reads its
output, enforces the deadline, kills it when the pruner says so, and learns how it ended from its
wait status. Only the work survives to report.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psutil

from sweeps.child import ScriptRun
from sweeps.forkserver import ForkServer, ServerLost

#: How often the work wakes up with nothing to read, to check the deadline and prune requests.
POLL_SECONDS = 0.05
#: How often a trial with a memory cap has its memory measured (a few ms for a tree of processes).
MEMORY_SECONDS = 0.1


@dataclass
class ProcessEnd:
    """How the script's process ended."""

    exit_code: int | None = 0  # None when a signal ended it
    signal: int | None = None
    error: str | None = None  # an exception the script raised: "ValueError: msg (at train.py:12)"
    timed_out: bool = False
    pruned: bool = False  # ``should_prune`` said so
    memory_cap: int | None = None  # the memory cap (bytes) it went over, and was killed for
    script_globals: dict[str, float] | None = None  # the numeric globals the script left
    used: dict[str, str] | None = None  # where it ran, when only known once it ran: a cluster's node, its GPUs


def run_trial(
    server: ForkServer,
    run: ScriptRun,
    stdout: Callable[[str], Any],
    stderr: Callable[[str], Any],
    timeout: float | None = None,
    should_prune: Callable[[], bool] = lambda: False,
    prune_grace: Callable[[], float] = lambda: 0.0,
    memory_cap: int | None = None,
) -> ProcessEnd:
    """Run ``run`` in a child of ``server``; feed its output to ``stdout``/``stderr`` as it comes.

    ``should_prune`` is called on every pass (also while the child winds down); once it says True,
    the child is killed after ``prune_grace()`` seconds (asked then) unless it has exited by itself.
    A child whose processes' resident memory (RSS, as ``ps`` shows it) exceeds ``memory_cap``
    bytes is killed.
    """
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
        sinks = {out_r: stdout, err_r: stderr}
        status, end = _supervise(pid, server, sinks, timeout, should_prune, prune_grace, memory_cap)
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


def _supervise(
    pid: int,
    server: ForkServer,
    sinks: dict[int, Callable[[str], Any]],
    timeout: float | None,
    should_prune: Callable[[], bool],
    prune_grace: Callable[[], float],
    memory_cap: int | None,
) -> tuple[int, ProcessEnd]:
    """Relay the child's output until it exits; kill it at the deadline, over its memory cap, or
    when it is pruned and its grace period is over."""
    deadline = None if timeout is None else time.monotonic() + timeout
    kill_at = math.inf  # set when the trial is pruned
    measure_at = 0.0  # when to measure its memory next
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
            prune = should_prune()
            now = time.monotonic()
            if memory_cap is not None and now >= measure_at:
                measure_at = now + MEMORY_SECONDS
                end.memory_cap = memory_cap if memory_of(pid) > memory_cap else None
            if end.memory_cap is not None:
                pass
            elif deadline is not None and now > deadline and not end.pruned:
                end.timed_out = True
            elif prune and not end.pruned:
                end.pruned = True  # and stays so: a deadline within the grace kills it, PRUNED all the same
                kill_at = min(now + prune_grace(), math.inf if deadline is None else deadline)
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


def memory_of(pid: int) -> int:
    """The resident memory of a process and all its descendants, in bytes (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:  # ended meanwhile
            pass
    return total


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
