"""Fixes to how lightning-app 2.3.2 serves a Streamlit page, and to the page's own process.

``IN_APP`` is applied in the app's processes (where Lightning starts the page's server),
``IN_PAGE`` in the page's process (Streamlit's, where ``render_fn`` runs).
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from copy import deepcopy
from dataclasses import replace
from pathlib import Path
from typing import Any

from lightning_app.core import constants
from lightning_app.frontend import StreamlitFrontend
from lightning_app.utilities.log import get_logfile
from lightning_app.utilities.state import AppState

from components.fixes import Fix

LIGHTNING_APP = "lightning-app", "2.3.2"
STREAMLIT = "streamlit", "1.56.0"

#: What the fixes replace; Streamlit's (imported by the page's process alone) once patched.
ORIGINAL = {"start_server": StreamlitFrontend.start_server, "request_state": AppState._request_state}


def _start_server(self: StreamlitFrontend, host: str, port: int) -> None:
    """Lightning's ``start_server`` (its command, environment and log files), with two changes.

    - ``LIGHTNING_APP_STATE_URL`` names the app's actual port: the page reads the app's state from
      port 7501 unless that variable says otherwise, and Lightning restores the environment after
      loading the app file (setting it there is undone).
    - Streamlit runs :mod:`components.fixes.page_main` rather than Lightning's ``streamlit_base.py``,
      which imports lightning_app, and so PyTorch, before any fix can be applied.
    """
    env = {
        **os.environ,
        "LIGHTNING_FLOW_NAME": self.flow.name,
        "LIGHTNING_RENDER_FUNCTION": self.render_fn.__name__,
        "LIGHTNING_RENDER_MODULE_FILE": inspect.getmodule(self.render_fn).__file__,
    }
    if constants.APP_SERVER_PORT != 7501:
        env.setdefault("LIGHTNING_APP_STATE_URL", f"http://127.0.0.1:{constants.APP_SERVER_PORT}")
    command = [sys.executable, "-m", "streamlit", "run", str(Path(__file__).with_name("page_main.py"))]
    command += ["--server.address", str(host), "--server.port", str(port), "--server.baseUrlPath", self.flow.name]
    command += ["--server.headless", "true", "--server.enableXsrfProtection", "false"]  # (true on Lightning's cloud)
    with open(get_logfile("error.log"), "wb") as stderr, open(get_logfile("output.log"), "wb") as stdout:
        self._process = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr)


def _page_follows_the_port() -> None:
    StreamlitFrontend.start_server = _start_server


def _request_state(self: Any) -> None:
    """``AppState._request_state`` without its 0.5 s sleep before every fetch.

    Lightning sleeps before each request in case the app's state is still empty at start-up; the
    page fetches the state on every run and every poll. Here it sleeps only while the state is
    indeed still empty.
    """
    from lightning_app.utilities.state import headers_for
    from requests.exceptions import ConnectionError

    if self._state is not None:
        return
    headers = headers_for(self._plugin.get_context()) if self._plugin else {}
    while True:
        try:
            response = self._session.get(f"{self._url}/api/v1/state", headers=headers, timeout=1)
        except ConnectionError as ex:
            raise AttributeError("Failed to connect and fetch the app state. Is the app running?") from ex
        self._authorized = response.status_code
        if self._authorized != 200:
            return
        state = response.json()
        if state != {}:
            self._store_state(state)
            return
        time.sleep(0.5)


def _fetch_without_sleep() -> None:
    AppState._request_state = _request_state


def _request_rerun(self: Any, new_data: Any) -> bool:
    """``ScriptRequests.request_rerun``, where a fragment's rerun joins a pending rerun of the whole page.

    Streamlit 1.56 coalesces a fragment's request (its timer: the page's live parts poll every
    second) into a pending whole-page request (a widget changed, such as the sweep chooser) by
    turning the latter into a run of that fragment alone: the widget's new value is stored, but
    nothing outside the fragment is drawn again until some later whole-page run. The whole page
    runs every fragment anyway. (Streamlit's newer code coalesces this way itself.)

    The pending request is read without the lock that the original takes (it is not reentrant).
    The browser's requests arrive on one thread, so only a request from the page's own script
    (``st.rerun``) can come in between: had the pending run been taken meanwhile, the fragment's
    request becomes a whole-page run of its own, which costs a run and loses nothing.
    """
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequestType

    pending = self._rerun_data if self._state == ScriptRequestType.RERUN else None
    if pending is not None and not pending.fragment_id_queue and (new_data.fragment_id or new_data.fragment_id_queue):
        new_data = replace(
            new_data, fragment_id=None, fragment_id_queue=[], is_fragment_scoped_rerun=False, is_auto_rerun=False
        )
    return ORIGINAL["request_rerun"](self, new_data)


def _whole_page_reruns_stay_whole() -> None:
    from streamlit.runtime.scriptrunner_utils.script_requests import ScriptRequests

    ORIGINAL.setdefault("request_rerun", ScriptRequests.request_rerun)
    ScriptRequests.request_rerun = _request_rerun


#: How long the file a download click built stays served once nothing on the page refers to it.
DOWNLOAD_SECONDS = 60.0


def _mark_for_delete(self: Any) -> None:
    if not self._is_marked_for_delete:
        self._is_marked_for_delete, self._marked_at = True, time.monotonic()


def _is_marked_for_delete(self: Any) -> bool:
    """Streamlit deletes a downloadable file at the second run of the page after it was marked,
    and the page's status runs every second: a browser that asked for the file later than that
    (a busy machine, a slow link) got a cancelled download. Deleted ``DOWNLOAD_SECONDS`` after."""
    return self._is_marked_for_delete and time.monotonic() - self._marked_at >= DOWNLOAD_SECONDS


def _downloads_outlive_the_next_runs() -> None:
    from streamlit.runtime.media_file_manager import MediaFileMetadata

    ORIGINAL.setdefault("mark_for_delete", MediaFileMetadata.mark_for_delete)
    ORIGINAL.setdefault("is_marked_for_delete", MediaFileMetadata.is_marked_for_delete)
    MediaFileMetadata.mark_for_delete = _mark_for_delete
    MediaFileMetadata.is_marked_for_delete = property(_is_marked_for_delete)


def send_to_flow(flow_name: str, **values: Any) -> None:
    """Set variables of a flow's state from the page, as ``setattr`` on its ``AppState`` would.

    ``AppState.__setattr__`` sends the difference between two module globals that every
    ``AppState`` of the page's process replaces when it fetches the state (each run, each poll,
    each browser tab). Set through any but the newest one, a change is sent as no change at all:
    a click on Run was lost about one time in three on a page still loading. Here the state is
    fetched and changed, and the difference computed, on a copy of this call's own.
    """
    from deepdiff import DeepDiff
    from lightning_app.utilities.state import headers_for

    app = AppState()
    app._request_state()
    before = deepcopy(app._state)
    after = deepcopy(app._state)
    flow = after
    for name in flow_name.split(".")[1:]:  # "root.hiplot": the root's flow "hiplot"
        flow = flow["flows"][name]
    flow["vars"].update(values)
    delta = DeepDiff(before, after, verbose_level=2)
    headers = headers_for(app._plugin.get_context())
    response = app._session.post(
        f"{app._url}/api/v1/delta", json={"delta": json.loads(delta.to_json())}, headers=headers
    )
    response.raise_for_status()


IN_APP = (
    Fix(
        *LIGHTNING_APP,
        "a page whose app moved off port 7501 (taken by another program) reads its state from 7501; the page's "
        "process imports PyTorch where it is installed (~3 s and ~170 MB before the page's first run)",
        _page_follows_the_port,
    ),
    Fix(
        *LIGHTNING_APP,
        "the page opened as the app starts frames the page's server before it listens, and never loads that frame "
        "again: components.hiplot_flow.PageFrontend",
    ),
)

IN_PAGE = (
    Fix(*LIGHTNING_APP, "every fetch of the app's state by the page sleeps 0.5 s first", _fetch_without_sleep),
    Fix(
        *LIGHTNING_APP,
        "a change set through any but the newest AppState of the page's process is sent as no change: send_to_flow",
    ),
    Fix(
        *STREAMLIT,
        "a widget changed while a fragment's timer fires runs that fragment alone: the page does not follow the change",
        _whole_page_reruns_stay_whole,
    ),
    Fix(
        *STREAMLIT,
        "the file a download button's click built is deleted two runs of the page later (2 s): a download asked "
        "for later is cancelled",
        _downloads_outlive_the_next_runs,
    ),
)
