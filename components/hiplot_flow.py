"""HiPlotFlow: the sweep's page, a HiPlot parallel-coordinates plot that follows the sweep live.

The flow hands this one every trial that ends (``run``); its state keeps a count and the latest
trial, nothing that grows. The page polls that small state and, only when it has
moved, reads the new trials from the Optuna storage (Optuna's cached storage fetches just the
new ones). Lightning's own push to the page is broken on Streamlit 1.56, hence the polling.
"""

from __future__ import annotations

import os
import sys
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
from sweeps.export import best_trial  # noqa: E402
from sweeps.report import format_params  # noqa: E402
from sweeps.sweep import trial_params  # noqa: E402

POLL_SECONDS = 1.0


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
            f"{config.parallel} at once · {config.storage}"
        )
        self.status = "waiting"  # set by HPOFlow
        self.run_requested = False  # set by the page's Run button
        self.stop_requested = False  # set by the page's Stop button
        self.ended = 0  # trials that ended while this app ran: the page's signal to re-read
        self.latest_trial: dict[str, Any] | None = None

    def run(self, trial: dict[str, Any]) -> None:
        """One ended trial (number, parameters, state, metric), as a row of the plot."""
        self.ended += 1
        self.latest_trial = trial

    def configure_layout(self) -> StreamlitFrontend:
        return _StreamlitFrontend(render_fn=render_fn)


class _StreamlitFrontend(StreamlitFrontend):
    """Lightning's Streamlit frontend, told where the app server is when it is not on 7501.

    The page reads the app's state from port 7501 unless ``LIGHTNING_APP_STATE_URL`` says
    otherwise, and Lightning restores the environment after loading the app file, so the
    variable is set only around the start of the Streamlit process.
    """

    def start_server(self, host: str, port: int) -> None:
        extra = {"STREAMLIT_CLIENT_TOOLBAR_MODE": "viewer"}  # no "Deploy" button on a local sweep
        if constants.APP_SERVER_PORT != 7501:
            extra["LIGHTNING_APP_STATE_URL"] = f"http://127.0.0.1:{constants.APP_SERVER_PORT}"
        # With torch installed (the Lightning extra), lightning-app imports it in the page's process
        # too: Streamlit's watcher (live reload of the page's code) then scans ~2,800 modules on every
        # rerun (0.15 s), and its top bar shows a second "Stop" button (stop the script) meanwhile.
        extra["STREAMLIT_SERVER_FILE_WATCHER_TYPE"] = "none"
        extra["STREAMLIT_UI_HIDE_TOP_BAR"] = "true"
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


def render_fn(state: Any) -> None:
    import streamlit as st

    st.set_page_config(page_title=f"Sweep {state.sweep_name}", layout="wide")
    st.markdown(f"### Sweep `{state.sweep_name}`")
    st.caption(state.description)
    _live_view(state.storage, state.sweep_name, state.metric, state.run_cap)


def _live_view(storage: str, study_name: str, metric: str, run_cap: int) -> None:
    import streamlit as st

    @st.fragment(run_every=POLL_SECONDS)
    def view() -> None:
        flow = _fresh_flow_state()
        if flow is None:
            st.info("The app is not answering; it may have been stopped.")
            return
        # A click is sent from the button's callback, which Streamlit runs first thing in the next
        # run: before this fragment's fresh state fetch (Lightning sleeps 0.5 s in it).
        if flow.status == "waiting" and not flow.run_requested:
            st.button("Run", type="primary", on_click=setattr, args=(flow, "run_requested", True))
        elif flow.status == "running" and not flow.stop_requested:
            st.button(
                "Stop", help="Start no new trial; the running ones finish",
                on_click=setattr, args=(flow, "stop_requested", True),
            )
        cache = st.session_state.setdefault("sweeps", {})
        signal = (flow.status, flow.ended)
        if cache.get("signal") != signal:
            cache["signal"] = signal
            cache["trials"] = _read_trials(storage, study_name)
        trials = cache["trials"]
        finished = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        st.progress(min(finished / run_cap, 1.0), text=f"{finished} of {run_cap} trials finished · {flow.status}")
        best = best_trial(trials, flow.goal)
        if best is not None:
            st.markdown(f"Best: trial **{best.number}**, {metric} = **{best.value:.6g}** · {format_params(trial_params(best))}")
        if flow.latest_trial is not None:
            latest = flow.latest_trial
            outcome = f"{metric} = {latest[metric]:.6g}" if metric in latest else ""
            st.caption(f"Latest: trial {latest['trial']} {latest['state']} {outcome}")
        _show_hiplot(trials, metric)

    view()


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


def _read_trials(storage: str, study_name: str) -> list:
    import optuna
    import streamlit as st

    @st.cache_resource
    def study(storage: str, study_name: str) -> optuna.Study:
        # One study object per page server: Optuna's cached storage then fetches only new trials.
        return optuna.load_study(study_name=study_name, storage=storage)

    try:
        return study(storage, study_name).get_trials(deepcopy=False)
    except KeyError:  # the flow has not created the study yet
        return []


def _show_hiplot(trials: list, metric: str) -> Any:
    import streamlit as st

    from sweeps.hiplot import experiment

    # HiPlot 0.1.33 checks an attribute that Streamlit removed in 1.14; the component itself works.
    st._is_running_with_streamlit = True
    return experiment(trials, metric).to_streamlit(key="hiplot", ret="selected_uids").display()
