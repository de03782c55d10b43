"""HiPlotFlow: the sweep's page — controls, status, the HiPlot plot, trials, history, importance, exports.

``HPOFlow`` sets this one's status; its state keeps the status, Run/Stop, the sweep's start and
end and its config, nothing that grows with the trials. The page reads the trials from the
Optuna storage itself (Optuna's cached storage fetches only new and running ones) and rebuilds
its heavy parts only when they changed (``sweeps.dashboard``). Lightning's own push to the page
is broken on Streamlit 1.56, hence the polling. Everything the page computes is in
``sweeps.dashboard``, ``sweeps.hiplot`` and ``sweeps.export``; this file only lays it out.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

# Streamlit loads this file by path in a process of its own: make ``sweeps`` importable there.
_PROJECT = str(Path(__file__).resolve().parent.parent)
if _PROJECT not in sys.path:
    sys.path.insert(0, _PROJECT)

from lightning_app import LightningFlow  # noqa: E402
from lightning_app.core import constants  # noqa: E402
from lightning_app.frontend import StreamlitFrontend  # noqa: E402

from sweeps.config import SweepConfig  # noqa: E402
from sweeps.dashboard import Launch, config_view  # noqa: E402
from sweeps.storage import redacted  # noqa: E402

#: How often the page asks the app for its state and the storage for new trials.
POLL_SECONDS = 1.0
#: The plot, table and charts are rebuilt at most once per this many seconds per 1,000 trials
#: (and at most once a second): at 10,000 trials, every 5 s while trials end.
REBUILD_SECONDS_PER_1000 = 0.5


class HiPlotFlow(LightningFlow):
    def __init__(self, config: SweepConfig) -> None:
        super().__init__()
        self.sweep_name = config.name
        self.storage = config.storage
        self.metric = config.metric.name
        self.goal = config.metric.goal
        self.run_cap = config.budget
        self.description = (
            f"{config.program.name} · method {config.method} · {config.metric.goal} {config.metric.name} · "
            f"{config.parallel} at once · {redacted(config.storage)}"
        )
        self.config = config_view(config)  # shown read-only
        launch = Launch.of(config)  # to write the best trial's command line
        self.launch = {**asdict(launch), "command": list(launch.command) if launch.command else None}
        self.status = "waiting"  # set by HPOFlow
        self.started_at = 0.0  # when the sweep started in this app (epoch s; 0: not yet)
        self.ended_at = 0.0  # when it ended
        self.run_requested = False  # set by the page's Run button
        self.stop_requested = False  # set by the page's Stop button

    def set_status(self, status: str, active: bool) -> None:
        """``active``: trials run or may start; the page's clock runs from the first such status to the next other."""
        now = time.time()
        if active and not self.started_at:
            self.started_at = now
        if not active and self.started_at and not self.ended_at:
            self.ended_at = now
        self.status = status

    def configure_layout(self) -> StreamlitFrontend:
        return _StreamlitFrontend(render_fn=render_fn)


def _request_state(self: Any) -> None:
    """Lightning's ``AppState._request_state``, without its 0.5 s sleep before every fetch.

    Lightning sleeps before each request, in case the app's state is still empty at start-up; the
    page fetches the state on every run and every poll, so each cost half a second. Here it sleeps
    only when the state is indeed still empty. (Applied in the page's process, when Streamlit
    first loads this file.)
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


class _StreamlitFrontend(StreamlitFrontend):
    """Lightning's Streamlit frontend, told where the app server is when it is not on 7501.

    The page reads the app's state from port 7501 unless ``LIGHTNING_APP_STATE_URL`` says
    otherwise, and Lightning restores the environment after loading the app file, so the
    variable is set only around the start of the Streamlit process.
    """

    def start_server(self, host: str, port: int) -> None:
        # No "Deploy" button on a local sweep, and no top bar: its "Stop" (the page's script) next to
        # the sweep's own Stop would confuse. The script health check lets _warm_up run the page once.
        extra = {
            "STREAMLIT_CLIENT_TOOLBAR_MODE": "viewer",
            "STREAMLIT_UI_HIDE_TOP_BAR": "true",
            "STREAMLIT_SERVER_SCRIPT_HEALTH_CHECK_ENABLED": "true",
        }
        if constants.APP_SERVER_PORT != 7501:
            extra["LIGHTNING_APP_STATE_URL"] = f"http://127.0.0.1:{constants.APP_SERVER_PORT}"
        # With torch installed (the Lightning extra), lightning-app imports it in the page's process
        # too: Streamlit's watcher (live reload of the page's code) would scan ~2,800 modules on every
        # rerun (0.15 s).
        extra["STREAMLIT_SERVER_FILE_WATCHER_TYPE"] = "none"
        saved = {name: os.environ.get(name) for name in extra}
        os.environ.update(extra)
        try:
            super().start_server(host, port)
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', 'localhost') else host}:{port}/{self.flow.name}"
        threading.Thread(target=_warm_up, args=(url,), name="sweeps-page-warm-up", daemon=True).start()


def _warm_up(url: str, deadline_seconds: float = 120.0) -> None:
    """Run the page once in Streamlit's process before anyone opens it (its script health check).

    A first visit otherwise waits for the page's imports (~2 s) and for every trial to be read from
    the storage (~3 s at 10,000 trials); this run leaves both done, the study cached for the
    sessions that follow. Best effort: whatever fails here, the page still works, only slower.
    """
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/script-health-check", timeout=deadline_seconds):
                return
        except urllib.error.HTTPError:  # the run ended with an error: nothing more to do here
            return
        except (urllib.error.URLError, OSError):  # Streamlit is not listening yet
            time.sleep(0.2)


def render_fn(state: Any) -> None:
    """The page's layout; what it shows is computed by ``sweeps.dashboard`` (see ``_Page``)."""
    import streamlit as st
    import yaml
    from lightning_app.utilities.state import AppState

    AppState._request_state = _request_state  # for the fetches that follow, in this page's process

    st.set_page_config(page_title=f"Sweep {state.sweep_name}", layout="wide")
    page = _Page.of_session(state)
    page.refresh()
    page.drawn, page.drawn_at = page.log.version, time.monotonic()  # what the plot, table and charts show
    title, config = st.columns([3, 2], vertical_alignment="bottom")
    title.markdown(f"### Sweep `{state.sweep_name}`")
    title.caption(state.description)
    with config.expander("Config (read-only)"):
        st.code(yaml.safe_dump(dict(state.config), sort_keys=False, allow_unicode=True), language="yaml")
    _live_status(page)
    _plot(page)
    trials, history, importance = st.tabs(["Trials", "Optimisation history", "Parameter importance"])
    with trials:
        _trials_table(page)
    with history:
        _history(page)
    with importance:
        _importance(page)


class _Page:
    """One browser session's view of the sweep: its trial log and what was derived from it, by version."""

    def __init__(self, state: Any) -> None:
        from sweeps.dashboard import Importance, TrialLog

        self.storage: str = state.storage
        self.study_name: str = state.sweep_name
        self.metric: str = state.metric
        self.run_cap: int = state.run_cap
        self.launch = Launch(**{**state.launch, "command": tuple(state.launch["command"] or ()) or None})
        self.log = TrialLog(state.goal)
        self.importance = Importance()
        self.drawn = -1  # the log's version the heavy parts were last drawn from
        self.drawn_at = 0.0
        self._derived: dict[str, tuple[int, Any]] = {}

    @classmethod
    def of_session(cls, state: Any) -> _Page:
        import streamlit as st

        if "sweeps_page" not in st.session_state:
            st.session_state["sweeps_page"] = cls(state)
        return st.session_state["sweeps_page"]

    def refresh(self) -> bool:
        """Read the storage's new and running trials; whether anything changed."""
        study = _study(self.storage, self.study_name)
        return study is not None and self.log.update(study.get_trials(deepcopy=False))

    def derived(self, name: str, build: Any) -> Any:
        """``build(log)``, recomputed only when the log's version moved."""
        version, value = self._derived.get(name, (-1, None))
        if version != self.log.version:
            value = build(self.log)
            self._derived[name] = (self.log.version, value)
        return value

    def rebuild_due(self) -> bool:
        """The log moved since the heavy parts were drawn, and they were not drawn too recently."""
        wait = max(POLL_SECONDS, REBUILD_SECONDS_PER_1000 * len(self.log.trials) / 1000)
        return self.log.version != self.drawn and time.monotonic() - self.drawn_at >= wait


def _study(storage: str, study_name: str) -> Any | None:
    import optuna
    import streamlit as st

    @st.cache_resource(show_spinner=False)
    def load(storage: str, study_name: str) -> optuna.Study:
        # One study object per page server: Optuna's cached storage then fetches only new trials.
        from sweeps.storage import open_storage

        return optuna.load_study(study_name=study_name, storage=open_storage(storage))

    try:
        return load(storage, study_name)
    except KeyError:  # the flow has not created the study yet
        return None


def _live_status(page: _Page) -> None:
    import streamlit as st

    @st.fragment(run_every=POLL_SECONDS)
    def status() -> None:
        flow = _fresh_flow_state()
        if flow is None:
            st.info("The app is not answering; it may have been stopped.")
            return
        _controls(flow)
        page.refresh()
        _progress(page, flow)
        _best(page)
        _failures(page)
        # The plot's line is written here, rewritten every poll: a run of the plot's fragment alone
        # (on a brush drawn or cleared) sometimes never reached the browser (Streamlit 1.56). Always
        # one line: a line that came and went would move the plot (HiPlot clears its brushes when
        # its frame is resized, and a click aimed at an axis would land elsewhere).
        st.caption(_plot_note(page))
        # Last, once the buttons are drawn: a click is only handled if its button was in the
        # previous run, and a run cut short by st.rerun would have lost it.
        if page.rebuild_due():
            st.rerun(scope="app")  # the plot, table and charts follow

    status()


def _controls(flow: Any) -> None:
    import streamlit as st

    # A click is sent from the button's callback, which Streamlit runs first thing in the next
    # run: before this fragment's fresh state fetch (Lightning sleeps 0.5 s in it).
    # Always one button, disabled when it cannot act: a button that came and went would move the
    # plot under the user's mouse (and a click aimed at it would land elsewhere).
    if flow.status == "waiting":
        st.button(
            "Run", type="primary", disabled=flow.run_requested,
            on_click=setattr, args=(flow, "run_requested", True),
        )
    else:
        st.button(
            "Stop", help="Start no new trial; the running ones finish",
            disabled=flow.status != "running" or flow.stop_requested,
            on_click=setattr, args=(flow, "stop_requested", True),
        )


def _progress(page: _Page, flow: Any) -> None:
    import streamlit as st

    from sweeps.dashboard import STATES, format_duration, progress

    done = progress(page.log, page.run_cap, flow.started_at, flow.ended_at)
    st.progress(done.fraction, text=f"{done.finished} of {done.run_cap} trials finished · {flow.status}")
    counts = page.derived("counts", lambda log: log.counts())
    columns = st.columns(len(STATES) + 2)
    for column, name in zip(columns, STATES):
        column.metric(name, counts.get(name, 0))
    columns[-2].metric("Elapsed", format_duration(done.elapsed))
    columns[-1].metric("Time left", format_duration(done.remaining))


def _best(page: _Page) -> None:
    import streamlit as st

    from sweeps.dashboard import command_line
    from sweeps.report import format_params
    from sweeps.sweep import trial_params

    best = page.derived("best", lambda log: log.best())
    if best is None:
        st.caption("Best: no trial has completed yet")
        return
    st.markdown(
        f"Best: trial **{best.number}**, {page.metric} = **{best.value:.6g}** · {format_params(trial_params(best))}"
    )
    st.code(command_line(page.launch, best), language="bash", wrap_lines=True)


def _failures(page: _Page) -> None:
    import streamlit as st

    from sweeps.dashboard import failures

    groups = page.derived("failures", failures)
    if not groups:
        return
    total = sum(g.count for g in groups)
    with st.expander(f"Failures: {total} trial{'s' * (total != 1)} failed", expanded=True):
        for g in groups:
            numbers = ", ".join(map(str, g.trials)) + (", …" if g.count > len(g.trials) else "")
            st.markdown(f"**{g.count}×** `{g.reason}` — trial {numbers}")


#: HiPlot 0.1.33's parallel plot reads its axis order with the rightmost axis first, but saves it (in
#: its persistent state) leftmost first, and only the axes drawn then: every reload of its data
#: reversed or scrambled the axes. The page serves HiPlot's component with a mount that keeps the
#: order it read (Sweeps' own, for every axis) and a drag that saves the order the way it is read.
#: A reload of its data clears the brushes, and the page learns of a brush only once it is drawn
#: (HiPlot tells it 400 ms later; here 50 ms): trials ending during a drag or in that window
#: cleared it. The component now holds new data while a brush is drawn on any axis, and loads the
#: newest it was sent once the brushes are cleared.
_HIPLOT_FIXES = {
    "dimensions:t,order:Array.from(t)}": "dimensions:t}",
    "setState({order:Array.from(t.state.dimensions)})": "setState({order:Array.from(t.state.dimensions).reverse()})",
    "e}.bind(this))}.bind(n),400)": "e}.bind(this))}.bind(n),50)",
    "newExp!=this.state.experimentJson&&this.setState(": (
        "newExp!=this.state.experimentJson&&!Array.from(document.querySelectorAll('.pplot-brush .selection'))"
        ".some(function(e){return e.style.display!=='none'})&&this.setState("
    ),
}


def _use_fixed_hiplot_component() -> None:
    """Have ``to_streamlit`` use HiPlot's component with :data:`_HIPLOT_FIXES` (once per process).

    The fixed copy lives in the temp dir; a HiPlot whose bundle differs keeps its own component.
    """
    import hashlib
    import shutil
    import tempfile

    import hiplot
    import streamlit.components.v1 as components
    from hiplot.streamlit_helpers import _StreamlitHelpers

    if _StreamlitHelpers.component is not None:
        return
    built = Path(hiplot.__file__).parent / "static" / "built" / "streamlit_component"
    fixes = hashlib.sha1(repr(sorted(_HIPLOT_FIXES.items())).encode()).hexdigest()[:8]  # a new copy per change
    fixed = Path(tempfile.gettempdir()) / f"sweeps-hiplot-{hiplot.__version__}-{fixes}"
    bundle = fixed / "hiplot_streamlit.bundle.js"
    if not bundle.exists():
        code = (built / bundle.name).read_text()
        if any(code.count(old) != 1 for old in _HIPLOT_FIXES):
            return
        for old, new in _HIPLOT_FIXES.items():
            code = code.replace(old, new)
        staging = Path(tempfile.mkdtemp(dir=tempfile.gettempdir()))
        shutil.copy(built / "index.html", staging / "index.html")
        (staging / bundle.name).write_text(code)
        try:
            staging.rename(fixed)  # atomic: pages starting at once see a whole copy or none
        except OSError:  # another page made it first
            shutil.rmtree(staging, ignore_errors=True)
    _StreamlitHelpers.component = components.declare_component("hiplot", path=str(fixed))


def _plot(page: _Page) -> None:
    import streamlit as st

    from sweeps.hiplot import experiment

    def component(log: Any) -> Any:
        # HiPlot 0.1.33 checks an attribute that Streamlit removed in 1.14; the component itself works.
        st._is_running_with_streamlit = True
        _use_fixed_hiplot_component()
        # One key for the page's life: the same component takes each new experiment, keeping what HiPlot
        # keeps across reloads (Keep/Exclude filters, colouring, axis order, hidden axes). HiPlot sends
        # its brushes back, for the plot's line.
        return experiment(log.trials, page.metric).to_streamlit(key="hiplot", ret="brush_extents")

    @st.fragment  # brushing reruns this, not the whole page
    def plot() -> None:
        # While brushed, the component itself holds the trials it shows (see _HIPLOT_FIXES) and
        # loads the newest it was sent once the brushes are cleared: it is sent every update.
        brushed = _brushed()
        if not brushed:
            st.session_state.pop("brushed_shows", None)
        elif "brushed_shows" not in st.session_state and "plot" in st.session_state:
            st.session_state["brushed_shows"] = st.session_state["plot"][1]
        if st.session_state.get("live_plot", True) or "plot" not in st.session_state:
            st.session_state["plot"] = page.derived("plot", component), page.log.ended
        st.session_state["plot"][0].display()  # (returns the brushes, which _brushed reads from the session)

    plot()
    _exports(page)


def _brushed() -> bool:
    """Whether an axis of the plot is brushed, as the plot last told the page."""
    import streamlit as st

    sent = st.session_state.get("hiplot")  # as HiPlot returns it: [brushes]
    return bool(sent and sent[0])


def _plot_note(page: _Page) -> str:
    """The line about the plot: how to brush, or why it is behind the trials."""
    import streamlit as st

    ended = page.log.ended
    if _brushed():
        shows = st.session_state.get("brushed_shows", ended)
        if shows != ended:
            return (f"Live updates paused while axes are brushed: the plot shows {shows} of {ended} ended trials. "
                    "Clear the brushes (click an axis outside them) to update it.")
    elif not st.session_state.get("live_plot", True) and "plot" in st.session_state:
        shows = st.session_state["plot"][1]
        if shows != ended:
            return f"Live plot is off: the plot shows {shows} of {ended} ended trials."
    return "Drag along an axis to brush; while brushed, the plot holds still as trials end."


def _exports(page: _Page) -> None:
    import streamlit as st

    from sweeps.export import best_json, trials_csv
    from sweeps.hiplot import standalone_html

    trials, metric, goal = page.log.trials, page.metric, page.log.goal
    live, csv, best, html = st.columns([3, 1, 1, 1])
    live.toggle(
        "Live plot", value=True, key="live_plot",
        help="Off: the plot stays as it is while trials end (a brushed plot holds still by itself)",
    )
    # Built when clicked (callables), not on every rerun: at 10,000 trials each is a few MB.
    csv.download_button("trials.csv", lambda: trials_csv(trials), file_name="trials.csv", mime="text/csv",
                        on_click="ignore", icon=":material/download:", width="stretch")
    best.download_button("best.json", lambda: best_json(trials, metric, goal) or "{}\n", file_name="best.json",
                         mime="application/json", on_click="ignore", icon=":material/download:", width="stretch",
                         disabled=page.log.best() is None)
    html.download_button("plot.html", lambda: standalone_html(trials, metric), file_name=f"{page.study_name}-hiplot.html",
                         mime="text/html", on_click="ignore", icon=":material/download:", width="stretch")


def _trials_table(page: _Page) -> None:
    import streamlit as st

    @st.fragment
    def table() -> None:
        from sweeps.dashboard import SHOWN_STATES, trial_rows

        rows = page.derived("rows", lambda log: trial_rows(log, page.metric))
        shown = st.pills("State", SHOWN_STATES, selection_mode="multi", default=SHOWN_STATES, key="states")
        rows = rows[rows["state"].isin(shown)].sort_values("trial", ascending=False)
        st.caption(f"{len(rows)} trials · click a column's header to sort")
        st.dataframe(
            rows, hide_index=True, height=420,
            column_config={
                "trial": st.column_config.NumberColumn(format="%d", width="small"),
                "failure reason": st.column_config.TextColumn(width="large"),
            },
        )

    table()


def _history(page: _Page) -> None:
    import altair as alt
    import streamlit as st

    from sweeps.dashboard import history

    frame = page.derived("history", lambda log: history(log, page.metric))
    if frame.empty:
        st.caption("No trial has completed yet.")
        return
    base = alt.Chart(frame).encode(x=alt.X("trial:Q", title="trial", axis=alt.Axis(format="d", tickMinStep=1)))
    points = base.mark_circle(size=50, opacity=0.7, color="#1f77b4").encode(
        y=alt.Y(f"{_field(page.metric)}:Q", title=page.metric, scale=alt.Scale(zero=False)),
        tooltip=["trial", alt.Tooltip(f"{_field(page.metric)}:Q", title=page.metric)],
    )
    best = base.mark_line(interpolate="step-after", color="#d62728", strokeWidth=2).encode(y="best so far:Q")
    st.altair_chart((points + best).properties(height=360), width="stretch")
    st.caption("Dots: each COMPLETE trial's value; red line: the best so far.")


def _importance(page: _Page) -> None:
    import streamlit as st

    importance = page.importance
    importance.update(page.log)
    if not importance.values:
        st.caption(f"Shown once {importance.MIN_TRIALS} trials have completed (Optuna's get_param_importances).")
        return
    import altair as alt
    import pandas as pd

    frame = pd.DataFrame({"parameter": list(importance.values), "importance": list(importance.values.values())})
    bars = alt.Chart(frame).mark_bar(color="#1f77b4").encode(
        x=alt.X("importance:Q", axis=alt.Axis(format=".0%")),
        y=alt.Y("parameter:N", sort="-x", title=None),
        tooltip=["parameter", alt.Tooltip("importance:Q", format=".1%")],
    )
    st.altair_chart(bars.properties(height=40 + 32 * len(frame)), width="stretch")
    st.caption(
        f"Optuna's importance (get_param_importances) over {min(importance.based_on, importance.SAMPLE)} of {importance.based_on} "
        f"COMPLETE trials ({importance.seconds:.1f} s); recomputed when their number has grown by a fifth."
    )


def _field(name: str) -> str:
    """A column name as Altair's field syntax wants it (dots and brackets escaped)."""
    return name.replace(".", "\\.").replace("[", "\\[").replace("]", "\\]")


def _fresh_flow_state() -> Any | None:
    """This flow's state as it is now: the ``state`` Lightning hands ``render_fn`` is fetched once."""
    from lightning_app.utilities.app_helpers import StreamLitStatePlugin
    from lightning_app.utilities.state import AppState

    try:
        state = AppState(plugin=StreamLitStatePlugin())
        for name in os.environ["LIGHTNING_FLOW_NAME"].split(".")[1:]:
            state = getattr(state, name)
        return state
    except Exception:  # the app is shutting down or restarting: keep showing what we have
        return None
