"""components.fixes: each defect shown on the unpatched code, and gone once patched.

Importing ``components`` applies the app's fixes to this process, as in every app process; the
unpatched code is kept in each module's ``ORIGINAL``. A fix that the pinned release no longer
needs shows here as a defect that cannot be reproduced.
"""

import asyncio
import http.server
import importlib.util
import json
import os
import queue
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import deepdiff.delta
import deepdiff.path
import httpx
import lightning_app.utilities.proxies
import pytest
from deepdiff import DeepDiff, Delta
from lightning_app import LightningApp, LightningFlow, LightningWork
from lightning_app.api.request_types import _DeltaRequest
from lightning_app.core import api
from lightning_app.core.queues import MultiProcessQueue
from lightning_app.utilities.proxies import LightningWorkSetAttrProxy, WorkRunExecutor
from lightning_app.utilities.state import AppState
from starlette.applications import Starlette
from starlette.routing import Mount

import components  # noqa: F401  (applies the app's fixes, as the app files do)
from components import fixes
from components.fixes import command, hiplot_component, lean_imports, loop, runtime, shutdown, streamlit_page
from tests.conftest import PROJECT

ALL = (
    *command.FIXES,
    *lean_imports.FIXES,
    *loop.FIXES,
    *runtime.FIXES,
    *shutdown.FIXES,
    *streamlit_page.IN_APP,
    *streamlit_page.IN_PAGE,
    *hiplot_component.FIXES,
)


def test_every_fix_names_the_release_it_was_written_for_and_refuses_another():
    for fix in ALL:
        fixes.check_version(fix.package, fix.version)  # the installed one
        with pytest.raises(SystemExit) as stopped:
            fixes.check_version(fix.package, "0.0.1")
        message = str(stopped.value.code)
        assert message.startswith(f"sweeps: {fix.package} {fix.version} is installed") and "==0.0.1" in message
        assert "\n" not in message


class Root(LightningFlow):
    def __init__(self):
        super().__init__()
        self.counter = 0

    def run(self):
        pass


def one_change() -> _DeltaRequest:
    return _DeltaRequest(delta=Delta(DeepDiff({"vars": {"counter": 0}}, {"vars": {"counter": 1}})))


def put(q: MultiProcessQueue, item) -> None:
    q.put(item)
    deadline = time.monotonic() + 5
    while q.queue.empty() and time.monotonic() < deadline:  # the feeder thread has sent it
        time.sleep(0.001)


def seconds(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_queues_block_for_their_timeout_instead_of_spinning():
    q = MultiProcessQueue("q", default_timeout=0.1)

    def empty_get(get):
        with pytest.raises(queue.Empty):
            get(q, timeout=0.6)

    assert seconds(lambda: empty_get(loop.ORIGINAL["get"])) < 0.3, "unpatched: returns at once (the loop spins)"
    assert seconds(lambda: empty_get(MultiProcessQueue.get)) >= 0.55, "patched: waits for an item"
    put(q, "item")
    assert MultiProcessQueue.get(q, timeout=5) == "item"


def test_the_loop_takes_a_change_at_once_instead_of_waiting_out_its_window():
    app = LightningApp(Root())
    app.delta_queue = MultiProcessQueue("deltas", default_timeout=0.005)
    put(app.delta_queue, one_change())
    assert app.state_accumulate_wait == loop.ACCUMULATE_SECONDS
    assert seconds(lambda: app._collect_deltas_from_ui_and_work_queues()) < 0.25
    app.state_accumulate_wait = 0.5  # lightning-app's own is 0.15 s: longer here, to tell them apart on a busy machine
    put(app.delta_queue, one_change())
    assert seconds(lambda: loop.ORIGINAL["collect"](app)) >= 0.5, "unpatched: the whole window, every pass"


def test_the_api_server_catches_up_with_the_latest_published_state():
    def refresher():
        published = MultiProcessQueue("published", default_timeout=0.001)
        for n in range(3):
            put(published, ({"n": n}, None))
        return api.UIRefresher(published, MultiProcessQueue("responses", default_timeout=0.001))

    loop.ORIGINAL["refresh"](refresher())
    assert api.global_app_state_store.get_app_state(api.TEST_SESSION_UUID) == {"n": 0}, "unpatched: one per 0.1 s"
    refresher().run_once()
    assert api.global_app_state_store.get_app_state(api.TEST_SESSION_UUID) == {"n": 2}


EXITS_WITH_AN_UNREAD_QUEUE = """
import sys
sys.path.insert(0, {project!r})
from lightning_app.core.queues import MultiProcessQueue
if {patched}:
    from components.fixes import loop
    loop.FIXES[3].patch()
queue = MultiProcessQueue("q", 1)
queue.put(b"x" * 10_000_000)  # more than the pipe holds, and nobody reads it
"""


def test_a_process_exits_although_a_queue_it_wrote_is_not_read():
    def exits(patched: bool, timeout: float) -> bool:
        script = EXITS_WITH_AN_UNREAD_QUEUE.format(project=str(PROJECT), patched=patched)
        try:
            subprocess.run([sys.executable, "-c", script], timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            return False
        return True

    assert loop.FIXES[3].patch is loop._exit_without_flushing
    assert exits(patched=True, timeout=30)
    assert not exits(patched=False, timeout=8), "unpatched: waits for ever to flush the queue at exit"


def test_the_state_lock_lets_a_sigterm_handler_in_while_a_change_is_being_sent():
    held = loop.ORIGINAL["lock"]
    with held:  # the work's thread is sending a change; the SIGTERM handler runs on top of it
        assert not held.acquire(timeout=0.1), "unpatched: the handler waits for ever"
    lock = lightning_app.utilities.proxies._state_observer_lock
    with lock:
        assert lock.acquire(timeout=0.1)
        lock.release()


def count_states(monkeypatch, cls) -> list:
    calls = []
    state = cls.state

    monkeypatch.setattr(cls, "state", property(lambda self: (calls.append(1), state.fget(self))[1]))
    return calls


def test_a_pass_of_the_loop_computes_the_apps_state_once(monkeypatch):
    app = LightningApp(Root())
    app.delta_queue = MultiProcessQueue("deltas", default_timeout=0.005)
    calls = count_states(monkeypatch, LightningApp)
    put(app.delta_queue, one_change())
    loop.ORIGINAL["apply_changes"](app)
    unpatched, calls[:] = len(calls), []
    put(app.delta_queue, one_change())
    app.maybe_apply_changes()
    assert (unpatched, len(calls)) == (2, 1)
    assert app.root.counter == 1


class Work(LightningWork):
    def __init__(self):
        super().__init__()
        self.history = list(range(10_000))  # a large attribute the assignment does not touch
        self.result = None

    def run(self):
        pass


def test_an_assignment_in_a_work_diffs_that_attribute_only(monkeypatch):
    sent = queue.Queue()
    work = Work()
    calls = count_states(monkeypatch, LightningWork)
    proxy = LightningWorkSetAttrProxy("root.work", work, sent, None)
    loop.ORIGINAL["setattr"](proxy, "result", 1)
    unpatched, calls[:] = len(calls), []
    proxy("result", 2)
    assert (unpatched, len(calls)) == (2, 0), "unpatched: the whole state, copied and diffed"
    deltas = [sent.get_nowait().delta.to_dict() for _ in range(2)]
    assert deltas[1] == {"values_changed": {"root['vars']['result']": {"new_value": 2}}}
    assert work.result == 2


def test_threads_hand_over_the_gil_every_half_millisecond():
    assert sys.getswitchinterval() == loop.SWITCH_SECONDS < 0.005  # Python's own: 5 ms


def test_deepdiffs_cache_of_parsed_paths_is_bounded():
    for paths in (deepdiff.path._path_to_elements, deepdiff.delta._path_to_elements):
        assert paths.cache_info().maxsize == loop.PATH_CACHE
    assert loop.ORIGINAL["paths"].cache_info().maxsize > 100_000
    for n in range(loop.PATH_CACHE + 100):  # a path per trial, as Lightning names each work call
        deepdiff.path._path_to_elements(f"root['calls']['run:{n}']")
    assert deepdiff.path._path_to_elements.cache_info().currsize == loop.PATH_CACHE


def test_work_calls_start_no_state_observer_thread():
    assert WorkRunExecutor.enable_start_observer is False


def test_a_works_record_of_calls_keeps_only_the_latest():
    work = Work()
    work._calls.update({"run:a": {}, "run:b": {}, "latest_call_hash": "run:b"})
    loop.forget_ended_calls(work)
    assert work._calls == {"latest_call_hash": "run:b", "run:b": {}}


def test_a_page_whose_app_moved_off_7501_reads_the_state_from_where_the_app_is(monkeypatch):
    from lightning_app.core import constants
    from lightning_app.frontend import stream_lit

    started = []
    monkeypatch.setattr(stream_lit.subprocess, "Popen", lambda command, **kw: started.append((command, kw["env"])))
    monkeypatch.setattr(constants, "APP_SERVER_PORT", 7642)
    monkeypatch.delenv("LIGHTNING_APP_STATE_URL", raising=False)
    frontend = stream_lit.StreamlitFrontend(render_fn=hiplot_page)
    frontend.flow = Root()
    streamlit_page.ORIGINAL["start_server"](frontend, "127.0.0.1", 8000)
    frontend.start_server("127.0.0.1", 8000)
    assert [env.get("LIGHTNING_APP_STATE_URL") for _, env in started] == [None, "http://127.0.0.1:7642"]
    assert "LIGHTNING_APP_STATE_URL" not in __import__("os").environ, "only around the page's start"
    (lightnings, _), (ours, _) = started
    assert [Path(arg).name for arg in (lightnings[4], ours[4])] == ["streamlit_base.py", "page_main.py"]
    assert lightnings[5:] == ours[5:], "the same server options"


@pytest.fixture
def state_server(monkeypatch):
    """A stand-in for the app's state API: the state of a root flow with a child ``hiplot``; the deltas posted."""
    import lightning_app.utilities.state

    posted = []

    class State(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hiplot = {
                "vars": {"status": "waiting", "request": ""},
                "calls": {},
                "flows": {},
                "works": {},
                "structures": {},
            }
            body = {
                "vars": {"status": "running"},
                "calls": {},
                "flows": {"hiplot": hiplot},
                "works": {},
                "structures": {},
            }
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def do_POST(self):
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), State)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(lightning_app.utilities.state, "APP_SERVER_PORT", server.server_address[1])
    monkeypatch.delenv("LIGHTNING_APP_STATE_URL", raising=False)
    yield server.server_address[1], posted
    server.shutdown()


def test_the_page_fetches_the_apps_state_without_sleeping_first(state_server, monkeypatch):
    def fetch() -> float:
        state = AppState()
        return seconds(lambda: state.status)

    monkeypatch.setattr(AppState, "_request_state", streamlit_page.ORIGINAL["request_state"])
    assert fetch() >= 0.5, "unpatched: half a second on every run and poll of the page"
    streamlit_page.IN_PAGE[0].patch()
    assert fetch() < 0.4


def test_a_click_reaches_the_flow_whichever_page_state_was_fetched_last(state_server):
    _, posted = state_server
    clicked = AppState().hiplot  # the state the Run button was drawn from
    assert clicked.status == "waiting"
    assert AppState().status == "running"  # the next poll of the page (or another tab) fetches the state again
    clicked.request = "run"
    assert posted == [], "unpatched: sent as no change at all, the click is lost"
    streamlit_page.send_to_flow("root.hiplot", request="run")
    (delta,) = posted
    assert delta["delta"]["values_changed"] == {
        "root['flows']['hiplot']['vars']['request']": {"new_value": "run", "old_value": ""}
    }


def test_a_widget_changed_while_a_fragments_timer_fires_reruns_the_whole_page(monkeypatch):
    from streamlit.proto.WidgetStates_pb2 import WidgetStates
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests

    def run_after_the_running_one(rerun: Callable[[ScriptRequests, RerunData], bool]) -> RerunData:
        monkeypatch.setattr(ScriptRequests, "request_rerun", rerun)
        requests = ScriptRequests()  # the page's run in progress
        chosen = WidgetStates()
        chosen.widgets.add(id="sweep", string_value="earlier")
        assert requests.request_rerun(RerunData(widget_states=chosen))  # the sweep chooser: the whole page
        assert requests.request_rerun(RerunData(fragment_id="status", is_auto_rerun=True))  # the live status' timer
        return requests.on_scriptrunner_ready().rerun_data

    streamlit_page.IN_PAGE[2].patch()
    unpatched = run_after_the_running_one(streamlit_page.ORIGINAL["request_rerun"])
    assert unpatched.fragment_id_queue == ["status"], "unpatched: the status alone runs, the page ignores the choice"
    run = run_after_the_running_one(streamlit_page._request_rerun)
    assert run.fragment_id_queue == [] and not run.is_fragment_scoped_rerun, "the whole page runs"
    assert [(w.id, w.string_value) for w in run.widget_states.widgets] == [("sweep", "earlier")]


def test_the_file_a_download_click_built_is_served_after_the_pages_next_runs(monkeypatch):
    from streamlit.runtime.media_file_manager import MediaFileManager, MediaFileMetadata
    from streamlit.runtime.media_file_storage import MediaFileStorageError
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

    def served_after_two_runs() -> bool:
        storage = MemoryMediaFileStorage("/media")
        manager = MediaFileManager(storage)
        button = manager.add_deferred(lambda: "number,value\n0,1.0\n", "text/csv", "trials.csv button", "trials.csv")
        url = manager.execute_deferred(button)  # the click: the browser asks for this address next
        for _ in range(2):  # the page's status runs, once a second
            manager.remove_orphaned_files()
        try:
            return storage.get_file(url.rsplit("/", 1)[1]).content == b"number,value\n0,1.0\n"  # what the page serves
        except MediaFileStorageError:
            return False

    monkeypatch.setattr(
        MediaFileMetadata,
        "mark_for_delete",
        streamlit_page.ORIGINAL.get("mark_for_delete", MediaFileMetadata.mark_for_delete),
    )
    monkeypatch.setattr(
        MediaFileMetadata,
        "is_marked_for_delete",
        streamlit_page.ORIGINAL.get("is_marked_for_delete", MediaFileMetadata.is_marked_for_delete),
    )
    assert not served_after_two_runs(), "unpatched: deleted 2 s after the click, whenever the browser asks"
    streamlit_page.IN_PAGE[3].patch()
    assert served_after_two_runs()
    monkeypatch.setattr(streamlit_page, "DOWNLOAD_SECONDS", 0.0)
    assert not served_after_two_runs(), "deleted once DOWNLOAD_SECONDS have passed"


def hiplot_page():
    import hiplot as hip

    hip.Experiment.from_iterable([{"lr": 0.1, "loss": 1.0}]).to_streamlit(key="hiplot").display()


def test_hiplot_draws_in_streamlit_once_its_check_is_passed(monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    monkeypatch.delattr(st, "_is_running_with_streamlit", raising=False)
    page = AppTest.from_function(hiplot_page)
    page.run(timeout=30)
    assert "_is_running_with_streamlit" in page.exception[0].message, "unpatched: HiPlot refuses Streamlit >= 1.14"
    hiplot_component.FIXES[0].patch()
    page.run(timeout=30)
    assert not page.exception


def test_the_served_hiplot_bundle_holds_every_edit():
    original = (hiplot_component.built_component() / hiplot_component.BUNDLE).read_text()
    fixed = (hiplot_component.fixed_component() / hiplot_component.BUNDLE).read_text()
    for old, new in hiplot_component.BUNDLE_FIXES.items():
        assert original.count(old) == 1 and new not in original
        assert fixed.count(new) == 1 and old not in fixed
    assert len(fixed) - len(original) == sum(len(new) - len(old) for old, new in hiplot_component.BUNDLE_FIXES.items())


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed here")
def test_lightning_app_imported_after_the_components_leaves_pytorch_unimported():
    def imports_torch(first: str) -> bool:
        code = f"import sys; import {first}; import lightning_app.components; print('torch' in sys.modules)"
        done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
        return done.stdout.strip() == "True"

    assert imports_torch("lightning_app"), "the defect: lightning_app alone imports PyTorch"
    assert not imports_torch("components")
    code = "import components, lightning_app.utilities.imports as i, inspect; print(inspect.getsource(i)[:6])"
    done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "# Copy", "the module's source is still found (tracebacks show it)"


@pytest.mark.slow
def test_the_cloud_clients_modules_load_only_when_one_of_their_names_is_used():
    """lightning-app's modules import names of Lightning's cloud client; only the names' modules load, and each
    name, once used, is what the client's own ``__init__`` gives it."""

    def run(first: str, code: str) -> str:
        code = f"import sys, importlib; import {first}; import lightning_app.runners.cloud; {code}"
        done = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
        return done.stdout

    count = "print(sum(m.startswith('lightning_cloud.openapi.') for m in sys.modules))"
    assert int(run("lightning_app", count)) > 500, "the defect: every module of the client"
    assert int(run("components", count)) < 100  # those whose names lightning-app uses at import
    names = (
        f"packages = [importlib.import_module(p) for p in {lean_imports.CLOUD_CLIENT!r}]; "
        "print(sorted((p.__name__, n, v.__module__, v.__qualname__) for p in packages "
        "for n in getattr(p, '__all__', None) or [n for n, v in vars(p).items() if isinstance(v, type)] "
        "for v in [getattr(p, n)]))"
    )
    eager, lazy = run("lightning_app", names), run("components", names)
    assert lazy == eager and eager.count("lightning_cloud.openapi.models") > 1000


def test_lightning_apps_components_load_only_the_one_sweeps_uses():
    """lightning-app's ``__init__`` asks whether one of its components exists, which imported them all."""
    code = (
        "import sys; import {first}; import lightning_app; from lightning_app.components import TracerPythonScript; "
        "print(sorted({{m.split('.')[2] for m in sys.modules if m.startswith('lightning_app.components.')}}))"
    )

    def loaded(first: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", code.format(first=first)], cwd=PROJECT, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    assert loaded("lightning_app") == "['database', 'multi_node', 'python', 'serve', 'training']", "the defect"
    assert loaded("components") == "['python']"


def test_a_lazy_init_is_made_only_of_imports_of_names_else_it_loads_as_it_is():
    source = (
        '"""Doc."""\nfrom __future__ import annotations\nfrom a.b import C, D as E\nfrom a.f import (\n    G,\n)\n'
        '__all__ = ["C", "G"]\n'
    )
    names = {"C": ("a.b", "C"), "E": ("a.b", "D"), "G": ("a.f", "G")}
    assert lean_imports._names_imported(source) == (names, ["C", "G"])
    assert lean_imports._names_imported(source.replace('__all__ = ["C", "G"]\n', "")) == (names, None)
    others = ("import os\n", "from a import *\n", "from . import b\n", "x = 1\n", "__all__ = [n for n in 'CG']\n")
    for other in (*others, "if True:\n    pass\n"):
        assert lean_imports._names_imported(source + other) is None, other


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="PyTorch is not installed here")
def test_no_process_of_the_app_loads_pytorch(tmp_path, write_config):
    """The app's, its works', their fork servers' and trials', and the page's (Streamlit's)."""
    import psutil

    from tests.conftest import report_config
    from tests.harness import kill_group, running_trials, start_ui_app

    def loads_torch(process: psutil.Process) -> bool:
        try:
            return any("libtorch" in m.path for m in process.memory_maps())
        except psutil.Error:  # ended meanwhile
            return False

    sleepy = {"x": {"min": 0, "max": 1}, "sleep": {"value": 5}}
    config = report_config(tmp_path, method="random", run_cap=4, autostart=True, parameters=sleepy)
    app, _ = start_ui_app(write_config(config), tmp_path, tmp_path / "app.log")  # once the page answers
    try:
        processes = running_trials(app, slots=2)
        (page,) = [process.cmdline() for command, process in processes if "streamlit run" in command]
        option = dict(zip(page, page[1:], strict=False))
        page_url = f"http://127.0.0.1:{option['--server.port']}/{option['--server.baseUrlPath']}"
        urllib.request.urlopen(f"{page_url}/_stcore/script-health-check", timeout=60).close()  # after a run of it
        assert not [command for command, process in processes if loads_torch(process)], "PyTorch loaded"
    finally:
        kill_group(app)


def version_command(
    command: str, python_on_path: str, bin_dir: Path, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess:
    """``<command> --version`` as a process manager starts it: no terminal, ``python_on_path`` first on PATH."""
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(python_on_path)
    environment = {k: v for k, v in os.environ.items() if k != "LIGHTING_TESTING"}
    environment.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", **env)
    return subprocess.run(
        [str(Path(sys.executable).parent / command), "--version"],
        env=environment,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def blackhole():
    """An HTTPS proxy that takes each connection and never answers: a network that drops the packets."""
    server = socket.create_server(("127.0.0.1", 0))
    held = []

    def hold():
        while True:
            try:
                held.append(server.accept()[0])
            except OSError:
                return

    threading.Thread(target=hold, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    server.close()
    for connection in held:
        connection.close()


@pytest.mark.slow
def test_the_lightning_command_starts_without_asking_pypi(tmp_path, blackhole):
    proxied = {"HTTPS_PROXY": blackhole, "https_proxy": blackhole}
    done = version_command("lightning", sys.executable, tmp_path / "ours", **proxied)
    assert done.returncode == 0 and "version 2.3.2" in done.stdout
    with pytest.raises(subprocess.TimeoutExpired):  # the defect: it waits on PyPI
        version_command("lightning_app", sys.executable, tmp_path / "theirs", timeout=20, **proxied)


OTHER_PYTHON = Path("/usr/bin/python3")


@pytest.mark.skipif(
    not OTHER_PYTHON.exists() or OTHER_PYTHON.resolve() == Path(sys.executable).resolve(),
    reason="no other Python interpreter on this machine",
)
def test_the_lightning_command_asks_nothing_when_path_has_another_python(tmp_path):
    question = "Would you like to install it?"
    done = version_command("lightning", str(OTHER_PYTHON), tmp_path / "ours")
    assert done.returncode == 0 and "version 2.3.2" in done.stdout
    assert question not in done.stdout + done.stderr and "outside your current environment" not in done.stderr
    theirs = version_command("lightning_app", str(OTHER_PYTHON), tmp_path / "theirs")
    assert question in theirs.stdout + theirs.stderr, "the defect: a question on stdin"


def test_the_defects_read_as_one_line_each():
    for fix in ALL:
        assert fix.defect and "\n" not in fix.defect and textwrap.shorten(fix.defect, 300) == fix.defect


def test_the_api_servers_port_is_claimed_by_binding_it_not_guessed():
    from lightning_app.utilities.port import is_port_in_use

    from components.fixes.runtime import claim_port

    held = socket.socket()
    held.bind(("127.0.0.1", 0))  # another program's, bound (or about to listen), as at a job array's start
    port = held.getsockname()[1]
    assert not is_port_in_use(port), "unpatched: Lightning's check says it is free, and its server fails to bind"
    claimed = claim_port("127.0.0.1", port)
    assert claimed.getsockname()[1] not in (port, 0)
    again = claim_port("127.0.0.1", claimed.getsockname()[1])
    assert again.getsockname()[1] != claimed.getsockname()[1], "two apps never get one port"
    free = claimed.getsockname()[1]
    for sock in (held, claimed, again):
        sock.close()
    assert claim_port("127.0.0.1", free).getsockname()[1] == free, "the preferred port when it is free"


EXTERNAL_LOGO = "https://storage.googleapis.com/grid-static/lightning-logo-with-text.svg"
LOCAL_LOGO = "/static/media/lightning-logo-with-text.b964c8fbf221c97eb8ce52bb6e3a30d6.svg"
BUNDLE, STYLESHEET = "/static/js/main.c1f02aeb.js", "/static/css/main.fb7060be.css"


class Client:
    """GETs from an ASGI app, in this process (no server, no lifespan)."""

    def __init__(self, app) -> None:
        self.app = app

    def get(self, path: str) -> httpx.Response:
        async def get() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://app") as client:
                return await client.get(path)

        return asyncio.run(get())


def test_the_api_server_serves_a_page_that_asks_nothing_of_the_internet():
    unpatched = Client(Starlette(routes=[Mount("/static", app=runtime.ORIGINAL["static"])]))
    assert EXTERNAL_LOGO in unpatched.get(BUNDLE).text, "unpatched: the footer's logo from storage.googleapis.com"
    assert unpatched.get(STYLESHEET).text.count("@import url(https://fonts.googleapis.com/") == 4

    patched = Client(api.fastapi_service)  # the API server's app, as its process serves it
    bundle = patched.get(BUNDLE)
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("text/javascript")
    assert EXTERNAL_LOGO not in bundle.text and f'src:"{LOCAL_LOGO}"' in bundle.text
    assert not re.search(r'src:"https?://', bundle.text), "no other image, script or frame from elsewhere"
    stylesheet = patched.get(STYLESHEET)
    assert stylesheet.headers["content-type"].startswith("text/css") and "://" not in stylesheet.text
    assert stylesheet.text.startswith("html{"), "the rest of the stylesheet as it was"
    logo = patched.get(LOCAL_LOGO)
    assert logo.status_code == 200 and logo.headers["content-type"] == "image/svg+xml"
    assert logo.content.startswith(b"<svg")
    assert patched.get("/static/favicon.ico").status_code == 200, "other files as Lightning serves them"
    assert patched.get("/static/js/missing.js").status_code == 404


def test_the_layout_asked_before_the_apps_first_state_is_503_not_a_500s_traceback(monkeypatch):
    store = api.global_app_state_store
    kept = store.get_app_state(api.TEST_SESSION_UUID)
    patched = Client(api.fastapi_service)
    try:
        store.set_app_state(api.TEST_SESSION_UUID, {})  # the API server's store until the app publishes
        with monkeypatch.context() as unpatched, pytest.raises(KeyError, match="vars"):
            unpatched.setattr(runtime._layout_route(), "app", runtime.ORIGINAL["layout"])
            patched.get("/api/v1/layout")  # unpatched: raised in the server, a 500 and its traceback
        starting = patched.get("/api/v1/layout")
        assert (starting.status_code, starting.headers["retry-after"]) == (503, "1")
        assert starting.json() == {"status": "starting"}

        store.set_app_state(api.TEST_SESSION_UUID, {"vars": {"_layout": [{"name": "x", "content": "http://p"}]}})
        published = patched.get("/api/v1/layout")
        assert published.status_code == 200
        assert json.loads(published.json()) == [{"name": "x", "content": "http://p"}], "as Lightning answers it"
    finally:
        store.set_app_state(api.TEST_SESSION_UUID, kept)


def test_the_pages_streamlit_frame_fetches_no_usage_statistics_config(tmp_path, monkeypatch):
    def gathers(env: dict) -> str:
        shown = subprocess.run(
            [sys.executable, "-m", "streamlit", "config", "show"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        return re.search(r"^(?:# )?gatherUsageStats = (\w+)$", shown, re.MULTILINE).group(1)

    # No Streamlit variable or config file of this machine's: Streamlit's defaults.
    env = {name: value for name, value in os.environ.items() if not name.startswith("STREAMLIT_")}
    env["HOME"] = str(tmp_path)
    assert gathers(env) == "true", "unpatched: the frame fetches https://data.streamlit.io/metrics.json"
    assert gathers({**env, **runtime.PAGE_ENV}) == "false"

    seen = {}
    monkeypatch.setitem(runtime.ORIGINAL, "dispatch", lambda runtime_: seen.update(os.environ))
    try:
        os.environ.pop("STREAMLIT_BROWSER_GATHER_USAGE_STATS", None)
        runtime._dispatch(SimpleNamespace(start_server=False))  # as the runtime starts, before the page's server
        assert seen["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
        os.environ["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] = "true"
        runtime._dispatch(SimpleNamespace(start_server=False))
        assert seen["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "true", "the user's own choice stands"
    finally:
        os.environ.pop("STREAMLIT_BROWSER_GATHER_USAGE_STATS", None)
