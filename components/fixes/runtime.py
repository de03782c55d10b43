"""Fixes to how lightning-app 2.3.2's runtime starts its API server, and ends after a signal.

The CLI chooses the server's port before it loads the app (7501, unless something answers there),
and the server binds it seconds later, in a process of its own. Apps started at the same moment on
one machine (a job array's workers) all choose 7501; all but one fail to bind, and then wait for
ever for a server that never started. Here the main process binds the port as the runtime starts
(7501, or a free one if 7501 is taken: binding is the claim, so no two apps get one port), before
the server's process is forked from it, and the server serves on that socket. A server that
cannot serve stops the app with one line (``components.fixes.shutdown``).

An app stopped by a signal (``components.fixes.shutdown``) ends as soon as the runtime has
terminated it, with the exit code the signal gives, rather than through the CLI's "Aborted!".
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from lightning_app.core import constants
from lightning_app.core.api import LightningUvicornServer
from lightning_app.runners.multiprocess import MultiProcessRuntime

from components.fixes import Fix, shutdown

ORIGINAL = {"dispatch": MultiProcessRuntime.dispatch, "run": LightningUvicornServer.run}

_claimed: list[socket.socket] = []  # the API server's socket, bound in the main process


def claim_port(host: str, preferred: int) -> socket.socket:
    """A socket listening on ``host:preferred``, or on a free port of ``host`` if that one is taken.

    Listening is what makes the port this app's: sockets that reuse an address may all bind one
    port, but only one of them may listen on it.
    """
    for port in (preferred, 0):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a port a stopped app left in TIME_WAIT
        try:
            sock.bind((host, port))
            sock.listen(2048)  # uvicorn's backlog
            return sock
        except OSError:
            sock.close()
    raise OSError(f"no free port on {host}")


def _dispatch(self: MultiProcessRuntime, *args: Any, **kwargs: Any) -> Any:
    if self.start_server and not _claimed:
        host = self.host.split("//")[-1]
        _claimed.append(claim_port(host, self.port))
        self.port = constants.APP_SERVER_PORT = _claimed[0].getsockname()[1]
        os.environ["APP_SERVER_HOST"] = f"http://{host}:{self.port}/view"  # the page Lightning opens
    try:
        return ORIGINAL["dispatch"](self, *args, **kwargs)
    finally:
        if shutdown.stopping():  # a signal stopped the app, and the runtime has terminated it
            shutdown.finish()


def _run(self: LightningUvicornServer, sockets: list[socket.socket] | None = None) -> None:
    """``LightningUvicornServer.run`` on the claimed socket; the app stops if the server never started."""
    sockets = sockets or list(_claimed) or None
    self.config.setup_event_loop()
    loop = asyncio.get_event_loop()

    async def serve() -> None:
        try:
            await self.serve(sockets=sockets)
        finally:
            if not self.started:
                shutdown.stop_app(f"the app's server could not start on {self.config.host}:{self.config.port}")

    asyncio.ensure_future(serve())
    if self.has_started_queue:
        asyncio.ensure_future(self.check_is_started(self.has_started_queue))
    loop.run_forever()


def _claim_the_port() -> None:
    MultiProcessRuntime.dispatch = _dispatch
    LightningUvicornServer.run = _run


FIXES = (
    Fix(
        "lightning-app",
        "2.3.2",
        "apps started together all choose port 7501; all but one fail to bind their server and hang",
        _claim_the_port,
    ),
)
