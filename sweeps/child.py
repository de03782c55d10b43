"""What runs inside a trial's child process: the script, its output on pipes, its result on a third.

The child is forked by the fork server (``sweeps.forkserver``) and watched from the work
(``sweeps.supervise``). Whatever the script does to its process (``os._exit``, ``os.abort``, a
segfault, a hang), only the child goes with it; what the script raised and the numeric globals it
left travel back as one JSON object on the result pipe.
"""

from __future__ import annotations

import atexit
import faulthandler
import io
import json
import os
import runpy
import signal
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sweeps import wandb_runs


@dataclass
class ScriptRun:
    """What one trial's child runs: the program as ``__main__`` with ``args`` (as ``python program
    args`` would, and as Lightning's ``TracerPythonScript`` does), or ``command`` through ``exec``."""

    program: str
    args: list[str] = field(default_factory=list)
    command: list[str] | None = None  # the sweep's own command line, run instead of the program
    hooks: dict[str, str] | None = None  # ``sweeps.trainer.TrialHooks``, for the callback of a Lightning Trainer
    env: dict[str, str] = field(default_factory=dict)  # set in the child's environment (W&B's, say)
    wandb: bool = False  # trace the script's W&B run (``sweeps.wandb_runs``)

    def __call__(self, trainer_packages: Sequence[str] = ()) -> dict[str, Any] | None:
        """In the child. ``trainer_packages``: the Lightning packages whose Trainer to trace."""
        os.environ.update(self.env)
        if self.command is not None:
            if self.wandb:  # a Python program exec'd into this process traces its run itself (sweeps/site)
                wandb_runs.trace_after_exec()
            os.execvp(self.command[0], self.command)
        if self.hooks is not None and trainer_packages:
            from sweeps.trainer import TrialHooks, trace_trainers

            trace_trainers(trainer_packages, TrialHooks(**self.hooks))
        if self.wandb:
            wandb_runs.trace()
        sys.argv = [self.program, *self.args]
        sys.path.insert(0, os.path.dirname(os.path.abspath(self.program)))
        return runpy.run_path(self.program, run_name="__main__")


def child_main(target: Callable[[], Mapping[str, Any] | None], out_w: int, err_w: int, res_w: int, parent: int) -> None:
    """Run ``target`` with its output on those pipes, and its result on ``res_w``; never returns.
    ``parent``: the pid of the process that forked this one."""
    # A group of its own, so that everything the script starts can be killed with it; and death
    # with the parent, so that a killed app leaves no script running.
    os.setpgid(0, 0)
    die_with_parent(parent)
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
    try:  # as the interpreter does at exit: a W&B run, say, finishes and writes its files
        atexit._run_exitfuncs()
    except BaseException:  # noqa: BLE001 - an exit handler's failure is reported, not raised
        traceback.print_exc()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        with open(res_w, "w") as channel:
            json.dump(result, channel)
    finally:
        os._exit(code)


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent (pid ``parent``) dies (Linux; elsewhere a no-op);
    at once if it died before this was asked for."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux: a killed app may leave a script running
        return
    if os.getppid() != parent:  # it died between the fork and the prctl: no signal will come
        os.kill(os.getpid(), signal.SIGKILL)


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)  # as the interpreter does with sys.exit("message")
    return 1


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ModuleNotFoundError) and exc.name == "wandb":
        return f"the script imports wandb, which is not installed: {wandb_runs.INSTALL}"
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
