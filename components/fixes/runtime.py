"""Fixes to how lightning-app 2.3.2's runtime starts its API server, and how it ends.

The CLI chooses the server's port before it loads the app (7501, unless something answers there),
and the server binds it seconds later, in a process of its own. Apps started at the same moment on
one machine (a job array's workers) all choose 7501; all but one fail to bind, and then wait for
ever for a server that never started. Here the main process binds the port as the runtime starts
(7501, or a free one if 7501 is taken: binding is the claim, so no two apps get one port), before
the server's process is forked from it, and the server serves on that socket. A server that
cannot serve stops the app with one line (``components.fixes.shutdown``).

An app stopped by a signal (``components.fixes.shutdown``) ends as soon as the runtime has
terminated it, with the exit code the signal gives, rather than through the CLI's "Aborted!". An
app that ends by itself waits at most ``shutdown.GRACE_SECONDS`` for its processes to end.

The page (``/view``) asks nothing of the internet, so that it shows whole on a machine without it:
the API server serves Lightning's page files edited by :data:`PAGE_EDITS` (its footer's logo from
the copy the bundle ships, no web fonts), and the page's Streamlit frame does not fetch Streamlit's
usage-statistics config (:data:`PAGE_ENV`). The server's process is forked from the main one, so
patches made here, at import, are the server's too.

The API's layout (``/api/v1/layout``) asked before the app has published its first state answers 503
"starting" (with ``Retry-After``) rather than a 500 whose traceback lands in the app's terminal.
"""

from __future__ import annotations

import asyncio
import functools
import mimetypes
import os
import socket
from pathlib import Path
from typing import Any

from fastapi.staticfiles import StaticFiles
from lightning_app.core import api, constants
from lightning_app.core.api import LightningUvicornServer
from lightning_app.runners.multiprocess import MultiProcessRuntime
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from components.fixes import Fix, shutdown


def _static_mount() -> Mount:
    """The API server's mount of Lightning's page files (``/static``)."""
    return next(route for route in api.fastapi_service.routes if isinstance(route, Mount) and route.name == "static")


def _layout_route() -> Route:
    """The API server's route of the app's layout (``/api/v1/layout``)."""
    return next(r for r in api.fastapi_service.routes if isinstance(r, Route) and r.path == "/api/v1/layout")


ORIGINAL = {
    "dispatch": MultiProcessRuntime.dispatch,
    "run": LightningUvicornServer.run,
    "static": _static_mount().app,
    "layout": _layout_route().app,
}

#: Edits of Lightning's page files (paths under its static dir), each a text found exactly once in its
#: file -> its replacement. A file that does not hold each of its texts exactly once is served as it is.
#: - The footer's "Running on" logo is loaded from storage.googleapis.com, although the bundle ships
#:   the same SVG (its "App is not running" page shows that copy): offline, a broken image.
#: - The stylesheet imports four web fonts from fonts.googleapis.com (four failed requests offline);
#:   without them the page uses its own fallbacks (``font-family: Inter, Roboto, ..., sans-serif``), as
#:   it does offline anyway. Its icons are SVGs, not the Material Icons font.
PAGE_EDITS = {
    "js/main.c1f02aeb.js": {
        '"https://storage.googleapis.com/grid-static/lightning-logo-with-text.svg"': (
            '"/static/media/lightning-logo-with-text.b964c8fbf221c97eb8ce52bb6e3a30d6.svg"'
        ),
    },
    "css/main.fb7060be.css": {
        "@import url(https://fonts.googleapis.com/css2?family=Roboto&family=Roboto+Mono&display=swap);": "",
        "@import url(https://fonts.googleapis.com/icon?family=Material+Icons);": "",
        "@import url(https://fonts.googleapis.com/css2?family=Inter:wght@100;200;300;400;500;600;700;800;900"
        "&display=swap);": "",
        "@import url(https://fonts.googleapis.com/css2?family=Source+Code+Pro&display=swap);": "",
    },
}

#: Set (unless already set) in the main process's environment as the runtime starts, before Lightning
#: starts the page's Streamlit server (which reads it) and after it has restored the environment the
#: app file was loaded in. With usage statistics on (Streamlit's default), the page's frame fetches
#: https://data.streamlit.io/metrics.json as it loads: offline, a failed request.
PAGE_ENV: dict[str, str] = {}

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
    for name, value in PAGE_ENV.items():
        os.environ.setdefault(name, value)  # the user's own choice stands
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
        shutdown.end_children()  # the app ended by itself: none of its processes may keep it from exiting


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


@functools.cache
def edited_page_file(path: str) -> bytes | None:
    """The content of Lightning's page file ``path`` (a key of :data:`PAGE_EDITS`) with its edits, read
    once per process; None if the file does not hold each edited text exactly once."""
    edits = PAGE_EDITS[path]
    text = (Path(api.frontend_static_dir) / path).read_text(encoding="utf-8")
    if any(text.count(old) != 1 for old in edits):
        return None
    for old, new in edits.items():
        text = text.replace(old, new)
    return text.encode()


class PageFiles(StaticFiles):
    """Lightning's page files, as its ``StaticFiles`` serves them, with :data:`PAGE_EDITS` applied."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        edited = edited_page_file(path) if path in PAGE_EDITS and scope["method"] in ("GET", "HEAD") else None
        if edited is None:
            return await super().get_response(path, scope)
        return Response(edited, media_type=mimetypes.guess_type(path)[0])


def _serve_the_page_offline() -> None:
    mount = _static_mount()
    if not isinstance(mount.app, PageFiles):
        original = ORIGINAL["static"]
        mount.app = mount._base_app = PageFiles(directory=original.directory, check_dir=False)


async def _layout_once_published(scope: Scope, receive: Receive, send: Send) -> None:
    """The layout, once the app has published a state to take it from; 503 until then."""
    if "vars" in api.global_app_state_store.get_app_state(api.TEST_SESSION_UUID):
        await ORIGINAL["layout"](scope, receive, send)
        return
    starting = JSONResponse({"status": "starting"}, status_code=503, headers={"Retry-After": "1"})
    await starting(scope, receive, send)


def _answer_the_layout_once_published() -> None:
    _layout_route().app = _layout_once_published


def _no_usage_stats() -> None:
    PAGE_ENV["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "false"


FIXES = (
    Fix(
        "lightning-app",
        "2.3.2",
        "apps started together all choose port 7501; all but one fail to bind their server and hang",
        _claim_the_port,
    ),
    Fix(
        "lightning-app",
        "2.3.2",
        "the page loads its footer's logo from storage.googleapis.com and its fonts from fonts.googleapis.com: "
        "offline, a broken image and failed requests",
        _serve_the_page_offline,
    ),
    Fix(
        "lightning-app",
        "2.3.2",
        "the API's layout asked before the app's first state is a 500, its KeyError traceback in the app's terminal",
        _answer_the_layout_once_published,
    ),
    Fix(
        "streamlit",
        "1.56.0",
        "the page's Streamlit frame fetches its usage-statistics config from data.streamlit.io as it loads: "
        "offline, a failed request",
        _no_usage_stats,
    ),
)
