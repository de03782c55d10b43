"""A lean process, warm with the script's imports, that forks each trial's child.

A trial's child must start warm (the script's imports loaded once, not per trial) but must not be a
fork of the work: a Lightning work holds ~300 MB (Lightning, Optuna, SQLAlchemy and, when
installed, torch), and the kernel copies its page tables at every fork, copies every page either
side writes while the child runs, and tears it all down at the child's exit, costing a short trial
more than everything else it does. The fork server is a fresh interpreter that imports only what
the script imports, so its children start and end cheaply.

One server per work, one trial at a time: the work sends what to run, with the three pipes the
child writes to (its output, its errors, its result), over a Unix socket; the server forks the
child and answers with its pid, then with its wait status once it has ended. The work reads the
pipes, enforces deadlines and prunes (``sweeps.supervise``), killing the child's process group
directly. The server dies with the work (``PR_SET_PDEATHSIG``) and its children with it.

The server's process imports this module and what a trial's child needs, nothing of the app's config
(pydantic, PyYAML: ~0.2 s of a server's start, on the way to every slot's first trial).
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeps.child import ScriptRun, child_main, die_with_parent
from sweeps.trainer import trainer_packages

if TYPE_CHECKING:
    from sweeps.resources import Share

#: The directory holding the ``sweeps`` package, for the server's interpreter to import it from.
_ROOT = str(Path(__file__).resolve().parent.parent)
_BUFFER = 1 << 16


class ServerLost(RuntimeError):
    """The fork server ended (killed, or out of memory): its running trial went with it."""


class ForkServer:
    """The work's handle on its fork server, started on first use and again if it was lost."""

    def __init__(self, program: str, share: Share | None = None) -> None:
        from sweeps.resources import UNMANAGED  # here: the server's process never needs it

        self.program = program  # whose imports the server loads once
        self.share = UNMANAGED if share is None else share  # the slot's devices and cores, the server's from its start
        self._socket: socket.socket | None = None
        self._process: subprocess.Popen | None = None
        self._pending = b""
        self._loads_wandb = False

    def spawn(self, run: ScriptRun, out_w: int, err_w: int, res_w: int) -> int:
        """Start ``run`` in a new child writing to those pipes; its pid.

        A server found gone (it died between trials) is replaced once; :class:`ServerLost` if
        the new one fails too.
        """
        request = _message(asdict(run))
        for _ in range(2):
            if self._socket is None:
                self._start()
            assert self._socket is not None
            try:
                socket.send_fds(self._socket, [request], [out_w, err_w, res_w])
                return int(self._receive()["pid"])
            except (OSError, ServerLost):
                self.close()
        raise ServerLost(f"the fork server of {self.program} ended")

    @property
    def loads_wandb(self) -> bool:
        """Whether the script's imports, loaded by the server, include wandb (maybe through a module of its own)."""
        if self._socket is None:
            self._start()
        return self._loads_wandb

    def fileno(self) -> int:
        """Readable once the running child has ended (its status is waiting), or the server has."""
        assert self._socket is not None
        return self._socket.fileno()

    def poll(self) -> int | None:
        """The running child's wait status if it has ended, else None."""
        if b"\n" not in self._pending and not select.select([self.fileno()], [], [], 0)[0]:
            return None
        return self.wait()

    def wait(self) -> int:
        """Block until the running child has ended; its wait status (as ``os.waitpid`` gives it).

        Raises :class:`ServerLost` if the server ended first: its child went with it.
        """
        try:
            return int(self._receive()["status"])
        except ServerLost:
            self.close()
            raise

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()  # the server reads the end of its input and exits
            self._socket = None
        if self._process is not None:
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        self._pending = b""

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        code = f"import sys; sys.path.insert(0, {_ROOT!r}); from sweeps.forkserver import serve; serve()"
        cpus = json.dumps(self.share.cpus)
        argv = [sys.executable, "-c", code, str(theirs.fileno()), self.program, cpus, str(os.getpid())]
        env = {**os.environ, **self.share.environment()}
        self._process = subprocess.Popen(argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env)
        theirs.close()
        self._socket = ours
        self._loads_wandb = bool(self._receive()["wandb"])  # once its imports are loaded: it is ready

    def _receive(self) -> dict[str, Any]:
        assert self._socket is not None
        message, self._pending, _ = _read_message(self._socket, self._pending)
        if message is None:
            raise ServerLost(f"the fork server of {self.program} ended")
        return message


def _message(content: dict[str, Any]) -> bytes:
    """One message on the socket: a line of JSON."""
    return json.dumps(content).encode() + b"\n"


def _read_message(connection: socket.socket, pending: bytes) -> tuple[dict[str, Any] | None, bytes, list[int]]:
    """The next message (None once the other end is closed), what was read past it, and the
    descriptors that came with it. ``pending``: what the last call read past its message."""
    fds: list[int] = []
    while b"\n" not in pending:
        chunk, received, _, _ = socket.recv_fds(connection, _BUFFER, 3)
        fds += received
        if not chunk:
            return None, pending, fds
        pending += chunk
    line, pending = pending.split(b"\n", 1)
    return json.loads(line), pending, fds


def serve() -> None:
    """The server's main loop (``argv``: the socket's descriptor, the program whose imports to load, the
    cores it and its children may use as JSON, ``null`` for all, the work's pid)."""
    die_with_parent(int(sys.argv[4]))
    cpus = json.loads(sys.argv[3])
    if cpus is not None:  # first: a library's threads started by an import take the affinity they find
        os.sched_setaffinity(0, cpus)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C in the terminal is for the app to handle
    connection = socket.socket(fileno=int(sys.argv[1]))
    program = sys.argv[2]
    if program:
        import_dependencies(program)
    packages = trainer_packages(program) if program else []  # once the imports are loaded
    connection.sendall(_message({"wandb": "wandb" in sys.modules}))  # a module of the script's may import it
    pending = b""
    while True:
        request, pending, fds = _read_message(connection, pending)
        if request is None:
            return  # the work closed its end, or is gone
        run = ScriptRun(**request)
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            connection.close()
            child_main(partial(run, packages), *fds, parent=server)  # never returns
        try:
            os.setpgid(pid, pid)  # the child does so too: whichever comes first, the work can kill the group
        except OSError:
            pass
        for fd in fds:
            os.close(fd)
        connection.sendall(_message({"pid": pid}))
        _, status = os.waitpid(pid, 0)
        connection.sendall(_message({"status": status}))


def import_dependencies(program: str) -> None:
    """Import what the script imports at its top level, so that every forked trial starts warm.

    A module that fails to import here is left for the script to fail on, with its own error.
    """
    import ast
    import importlib

    try:
        tree = ast.parse(open(program).read(), program)
    except (OSError, SyntaxError, ValueError):
        return
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.append(node.module)
    script_dir = os.path.dirname(os.path.abspath(program))
    sys.path.insert(0, script_dir)
    try:
        for name in names:
            try:
                importlib.import_module(name)
            except BaseException:  # noqa: BLE001 - any failure is the script's to report
                continue
    finally:
        sys.path.remove(script_dir)
