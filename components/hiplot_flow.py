"""HiPlotFlow: the sweep's page (``components.page``) and the small state it reads from the app.

Its state is the sweep's status, its start and end in this app, the user's Run/Stop request and
what the page needs to read the storage and write command lines; nothing that grows with the
trials. ``HPOFlow`` sets the status and takes the request.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error
import urllib.request

from deepdiff import DeepDiff, Delta
from lightning_app import LightningFlow
from lightning_app.api.request_types import _DeltaRequest
from lightning_app.frontend import StreamlitFrontend
from lightning_app.utilities.app_helpers import _LightningAppRef
from lightning_app.utilities.log import get_logfile

from components.fixes.shutdown import stop_app
from components.page import render_fn
from sweeps.config import SweepConfig
from sweeps.console import at_once_text
from sweeps.control import Status
from sweeps.dashboard import config_view, objectives_text
from sweeps.storage import redacted


class HiPlotFlow(LightningFlow):
    def __init__(self, config: SweepConfig) -> None:
        super().__init__()
        self.sweep_name = config.name
        self.storage = config.storage
        self.metrics = config.metric_names  # the objectives: none, one or several
        self.directions = config.directions
        self.run_cap = config.run_cap
        method = config.method if config.sampler == config.method else f"{config.method} ({config.sampler})"
        self.description = (
            f"{config.program.name} · method {method} · {objectives_text(config)} · "
            f"{at_once_text(config)} · {redacted(config.storage)}"
        )
        self.config = config_view(config)  # shown read-only
        self.launch = config.launch.to_dict()  # to write the best trial's command line
        self.status = Status.WAITING.value
        self.started_at = 0.0  # when the sweep started in this app (epoch s; 0: not yet)
        self.ended_at = 0.0  # when it ended
        self.request = ""  # the page's Run or Stop, until HPOFlow takes it

    def show(self, status: Status, started_at: float, ended_at: float) -> None:
        self.status, self.started_at, self.ended_at = status.value, started_at, ended_at

    def configure_layout(self) -> StreamlitFrontend:
        return PageFrontend(render_fn=render_fn)


class PageFrontend(StreamlitFrontend):
    """Lightning's Streamlit frontend, serving the page as a tool rather than a Streamlit app, warm.

    No "Deploy" button and no top bar (its "Stop", of the page's script, next to the sweep's own
    Stop would confuse); no watcher of the page's code (with torch installed, lightning-app imports
    it in the page's process too, and the watcher would scan ~2,800 modules on every rerun). Once
    the server listens, the page is run once (Streamlit's script health check): its imports are
    done and the trials read before anyone opens it.

    Lightning's page (``/view``) frames the server as soon as the app's own server answers, and
    Lightning opens it in the browser then: seconds before Streamlit listens. A frame on another
    port that failed to load is never loaded again, so the page stayed an error until reloaded.
    Here the frame's address (the layout's ``target``) is empty, which Lightning's page shows as a
    spinner, until the server answers; then it is the page's own address, ending in ``/`` as
    Streamlit serves it. That address differs from the one Lightning set, so a page that framed
    Lightning's early loads the frame again.
    """

    #: How long the page's server may take to answer once started (it imports Streamlit, Lightning, Optuna).
    START_SECONDS = 120.0

    SETTINGS = {
        "STREAMLIT_CLIENT_TOOLBAR_MODE": "viewer",
        "STREAMLIT_UI_HIDE_TOP_BAR": "true",
        "STREAMLIT_SERVER_SCRIPT_HEALTH_CHECK_ENABLED": "true",
        "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
        # Streamlit collects every generation of garbage after each run of the page, and each second's
        # poll is a run: with 10,000 trials in memory that walk took ~0.25 s a run, a third of a core
        # for an idle page (4 % without it). Python's own collector still runs as memory is allocated.
        "STREAMLIT_RUNNER_POST_SCRIPT_GC": "false",
    }

    def start_server(self, host: str, port: int) -> None:
        saved = {name: os.environ.get(name) for name in self.SETTINGS}
        os.environ.update(self.SETTINGS)
        try:
            super().start_server(host, port)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', 'localhost') else host}:{port}/{self.flow.name}"
        # Lightning sets the target to http://localhost:<port>/<flow> once this returns (on its cloud,
        # an address of its own: left as it is).
        target = f"http://localhost:{port}/{self.flow.name}/" if host == "localhost" else None
        if target is not None:
            _set_frame_target(self.flow.name, "")
        threading.Thread(target=self._see_it_start, args=(url, target), name="sweeps-page-start", daemon=True).start()

    def _see_it_start(self, url: str, target: str | None) -> None:
        """Run the page once in Streamlit's process, as soon as it listens, and show it in Lightning's
        page (``target``); stop the app if the server died first.

        The warm-up is best effort (the page works without it, only slower); a page's server that ended
        before it ever answered leaves the app without its page, which is no app to keep running.
        """
        deadline = time.monotonic() + self.START_SECONDS
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                stop_app(f"the page's server (Streamlit) ended as it started; its errors: {get_logfile('error.log')}")
                return
            try:
                with urllib.request.urlopen(f"{url}/_stcore/script-health-check", timeout=self.START_SECONDS):
                    break
            except urllib.error.HTTPError:  # the page's run ended with an error: the server is up
                break
            except (urllib.error.URLError, OSError):  # not listening yet
                time.sleep(0.2)
        if target is not None:
            _set_frame_target(self.flow.name, target)


def _set_frame_target(flow_name: str, target: str) -> None:
    """Set the address Lightning's page frames for the flow ``flow_name``, as a change of the app's state
    (applied by Lightning's loop, which publishes it to every open page)."""
    app = _LightningAppRef.get_current()
    if app is None:
        return  # not inside a running Lightning app

    def state(value: str) -> dict:
        nested = {"vars": {"_layout": {"target": value}}}
        for name in reversed(flow_name.split(".")[1:]):  # "root.hiplot": the root's flow "hiplot"
            nested = {"flows": {name: nested}}
        return nested

    # Lightning's loop sets the new value whatever the old one: any other value makes the difference.
    app.delta_queue.put(_DeltaRequest(delta=Delta(DeepDiff(state(f"not {target}"), state(target)))))
