"""The sweep's page: Run/Stop, status, best trial, failures, the HiPlot plot, trials, history, importance.

Lightning's Streamlit frontend loads this file by path in a process of its own and calls
:func:`render_fn` on every run of the page. What the page shows is computed by ``sweeps.dashboard``,
``sweeps.hiplot`` and ``sweeps.export`` from the Optuna storage, which the page reads itself
(Optuna's cached storage fetches only new and running trials); from the app it reads only the
small state of ``HiPlotFlow``. Lightning's push of new state to the page is broken on Streamlit
1.56, so the page polls. Everything here is layout.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Streamlit loads this file by path in a process of its own: make ``sweeps`` importable there.
_PROJECT = str(Path(__file__).resolve().parent.parent)
if _PROJECT not in sys.path:
    sys.path.insert(0, _PROJECT)

from components import fixes  # noqa: E402
from components.fixes import hiplot_component, streamlit_page  # noqa: E402
from sweeps.command import Launch  # noqa: E402
from sweeps.control import Request, Status  # noqa: E402

if TYPE_CHECKING:
    from sweeps.dashboard import SweepView, TrialLog

#: How often the page asks the app for its state and the storage for new trials.
POLL_SECONDS = 1.0
#: ... and while a click of Run or Stop has not been taken by the flow yet.
PENDING_POLL_SECONDS = 0.2
#: What the page says where a sweep without a metric has nothing to show.
NO_METRIC = "No metric in this sweep's config: a trial is COMPLETE when its program exits 0, and none is best."
#: The plot, table and charts are rebuilt at most once per this many seconds per 1,000 trials
#: (and at most once a second): at 10,000 trials, every 5 s while trials end.
REBUILD_SECONDS_PER_1000 = 0.5


def render_fn(state: Any) -> None:
    """The page's layout; what it shows is computed by ``sweeps.dashboard`` (see ``_Page``)."""
    import streamlit as st
    import yaml

    fixes.apply(streamlit_page.IN_PAGE)
    st.set_page_config(page_title=f"Sweep {state.sweep_name}", layout="wide")
    page = _Page.of_session(state)
    page.refresh()
    page.drawn, page.drawn_at = page.log.version, time.monotonic()  # what the plot, table and charts show
    title, config = st.columns([3, 2], vertical_alignment="bottom")
    shown = _chosen_sweep(config, state)
    if shown != state.sweep_name:
        _another_sweep(_Page.of_study(state.storage, shown), title)
        return
    title.markdown(f"### Sweep `{state.sweep_name}`")
    title.caption(state.description)
    with config.expander("Config (read-only)"):
        st.code(yaml.safe_dump(dict(state.config), sort_keys=False, allow_unicode=True), language="yaml")
    _controls(page)
    _live_status(page)
    _plot(page)
    _tabs(page)


def _tabs(page: _Page) -> None:
    """The open tab alone is built: every tab's charts of 10,000 trials cost seconds on the server and in the
    browser (Vega draws hidden charts too); a click on another tab reruns the page, which builds that one."""
    import streamlit as st

    parts = {
        "Trials": _trials_table,
        "Learning curves": _learning_curves,
        "Optimisation history": _history,
        "Parameter importance": _importance,
    }
    if len(page.metrics) > 1:
        parts["Pareto front"] = _pareto
    for tab, build in zip(st.tabs(list(parts), on_change="rerun", key=f"{page.key}tab"), parts.values(), strict=True):
        if tab.open:
            with tab:
                build(page)


def _chosen_sweep(column: Any, state: Any) -> str:
    """The sweep the page shows: this app's, or another its storage holds (chosen above the config)."""
    names = _sweep_names(state.storage)
    if len(names) <= 1 or state.sweep_name not in names:
        return state.sweep_name
    ours = state.sweep_name
    return column.selectbox(
        f"Sweep ({len(names)} in this storage)",
        names,
        index=names.index(ours),
        format_func=lambda name: f"{name} (this app's)" if name == ours else name,
        key="sweep",
    )


def _sweep_names(storage: str) -> list[str]:
    import streamlit as st

    @st.cache_data(ttl=5, show_spinner=False)
    def names(storage: str) -> list[str]:
        import optuna

        return sorted(optuna.get_all_study_names(storage=_storage(storage)))

    return names(storage)


def _storage(url: str) -> Any:
    """The storage, opened once per page server: opening one checks its schema (Optuna parses its
    migration scripts), ~0.1 s each time the list of sweeps was read again."""
    import streamlit as st

    @st.cache_resource(show_spinner=False)
    def storage(url: str) -> Any:
        from sweeps.storage import open_storage

        return open_storage(url)

    return storage(url)


def _another_sweep(page: _Page, title: Any) -> None:
    """Another sweep of the storage, read only: its own app runs it (and keeps its logs)."""
    import streamlit as st

    from sweeps.config import goals_text

    page.refresh()
    title.markdown(f"### Sweep `{page.study_name}`")
    goals = goals_text(page.directions, page.metrics) if page.metrics else "no metric"
    title.caption(f"Another sweep in this storage, read only (its own app runs it) · {goals}")

    @st.fragment(run_every=POLL_SECONDS)
    def status() -> None:
        from sweeps.dashboard import STATES

        if page.refresh():
            st.rerun(scope="app")  # the table and charts follow
        counts = page.derived("counts", lambda log: log.tally.counts())
        for column, name in zip(st.columns(len(STATES)), STATES, strict=True):
            column.metric(name, counts.get(name, 0))
        _best(page)
        _failures(page)

    status()
    _tabs(page)


class _Page:
    """One browser session's view of the sweep: its trial log and what was derived from it, by version."""

    def __init__(
        self,
        storage: str,
        study_name: str,
        metrics: list[str],
        directions: list[str],
        run_cap: int | None = None,
        launch: Launch | None = None,
    ) -> None:
        """``run_cap`` and ``launch``: this app's sweep's (None for another sweep of the storage, which
        its own app runs: its trials' command lines and logs are that app's)."""
        self.storage = storage
        self.study_name = study_name
        self.metrics = metrics  # the objectives: none, one or several
        self.directions = directions
        self.run_cap = run_cap
        self.launch = launch
        self.key = "" if launch is not None else f"{study_name}:"  # its widgets' keys: one set per sweep
        self.view = _view(storage, study_name, directions, len(metrics))
        self.seen = -1  # the log's version this session last looked at
        self.drawn = -1  # the log's version the heavy parts were last drawn from
        self.controls_drawn_for: tuple[str | None, Request | None] = (None, None)  # the flow's status, a click
        self.drawn_at = 0.0

    @classmethod
    def of_session(cls, state: Any) -> _Page:
        """This app's sweep, as this browser session sees it."""
        import streamlit as st

        if "sweeps_page" not in st.session_state:
            st.session_state["sweeps_page"] = cls(
                state.storage,
                state.sweep_name,
                list(state.metrics),
                list(state.directions),
                state.run_cap,
                Launch.from_dict(state.launch),
            )
        return st.session_state["sweeps_page"]

    @classmethod
    def of_study(cls, storage: str, study_name: str) -> _Page:
        """Another sweep of the storage, read from its study alone."""
        import streamlit as st

        from sweeps import record

        key = f"sweeps_page:{study_name}"
        if key not in st.session_state:
            study = _study(storage, study_name)
            if study is None or study.user_attrs.get(record.NO_METRIC_ATTR):
                metrics, directions = [], []
            else:
                directions = [d.name.lower() for d in study.directions]
                unnamed = ["value"] if len(directions) == 1 else [f"value {i}" for i in range(len(directions))]
                metrics = list(study.metric_names or unnamed)
            st.session_state[key] = cls(storage, study_name, metrics, directions)
        return st.session_state[key]

    @property
    def log(self) -> TrialLog:
        return self.view.log

    def refresh(self) -> bool:
        """Read the storage's new and running trials; whether anything changed since this session last looked."""
        study = _study(self.storage, self.study_name)
        if study is not None:
            self.view.update(study.get_trials(deepcopy=False))
        version = self.log.version  # read once: another session may move it meanwhile
        changed, self.seen = version != self.seen, version
        return changed

    def derived(self, name: str, build: Any) -> Any:
        """``build(log)``, recomputed only when the log's version moved (by whichever session comes first)."""
        return self.view.derived(name, build)

    def rebuild_due(self) -> bool:
        """The log moved since the heavy parts were drawn, and they were not drawn too recently."""
        wait = max(POLL_SECONDS, REBUILD_SECONDS_PER_1000 * len(self.log.trials) / 1000)
        return self.log.version != self.drawn and time.monotonic() - self.drawn_at >= wait


def _view(storage: str, study_name: str, directions: list[str], objectives: int) -> SweepView:
    """The sweep's view shared by this page server's sessions."""
    import streamlit as st

    @st.cache_resource(show_spinner=False)
    def view(storage: str, study_name: str, directions: tuple[str, ...], objectives: int) -> SweepView:
        from sweeps.dashboard import SweepView

        return SweepView(directions, objectives)

    return view(storage, study_name, tuple(directions), objectives)


def _study(storage: str, study_name: str) -> Any | None:
    import optuna
    import streamlit as st

    @st.cache_resource(show_spinner=False)
    def load(storage: str, study_name: str) -> optuna.Study:
        # One study object per page server: Optuna's cached storage then fetches only new trials.
        return optuna.load_study(study_name=study_name, storage=_storage(storage))

    try:
        return load(storage, study_name)
    except KeyError:  # the flow has not created the study yet
        return None


def _live_status(page: _Page) -> None:
    import streamlit as st

    @st.fragment(run_every=POLL_SECONDS)
    def status() -> None:
        flow, pending = _flow_and_pending()
        if flow is None:
            st.info("The app is not answering; it may have been stopped.")
            return
        page.refresh()
        _progress(page, flow)
        _best(page)
        _failures(page)
        # The plot's line is written here, rewritten every poll: a run of the plot's fragment alone
        # (on a brush drawn or cleared) sometimes never reached the browser (Streamlit 1.56). Always
        # one line: a line that came and went would move the plot (HiPlot clears its brushes when
        # its frame is resized, and a click aimed at an axis would land elsewhere).
        st.caption(_plot_note(page))
        if page.rebuild_due() or (flow.status, pending) != page.controls_drawn_for:
            st.rerun(scope="app")  # the button, the plot, table and charts follow
        if pending is not None:  # show the flow taking a click as soon as it does
            time.sleep(PENDING_POLL_SECONDS)
            st.rerun(scope="fragment")

    status()


def _controls(page: _Page) -> None:
    """Run or Stop: always one button, disabled when it cannot act (a button that came and went would
    move the plot under the user's mouse, and a click aimed at it would land elsewhere).

    It is drawn by the whole page's run, not by the status fragment: a click on a widget of a
    fragment waits for the page's run in progress to end (seconds, on a page of thousands of
    trials loading), a click on the page's own widget interrupts it, and its callback sends the
    request first thing. The click is then kept in the session until the flow shows it took it,
    and sent again if it did not arrive (:func:`_pending`).
    """
    import streamlit as st

    flow, pending = _flow_and_pending()
    status = flow.status if flow is not None else None
    page.controls_drawn_for = (status, pending)
    if status is None or status == Status.WAITING:
        disabled = status is None or pending is not None
        st.button("Run", type="primary", disabled=disabled, on_click=_ask, args=(Request.RUN,))
    else:
        disabled = status != Status.RUNNING or pending is not None
        tip = "Start no new trial; the running ones finish"
        st.button("Stop", help=tip, disabled=disabled, on_click=_ask, args=(Request.STOP,))


#: The session's Run or Stop that the flow has not taken yet, and when it was last sent.
_PENDING, _SENT = "sweeps_request", "sweeps_request_sent"


def _ask(request: Request) -> None:
    """The button's callback (Streamlit runs it first thing in the next run): send the request to the flow."""
    import streamlit as st

    st.session_state[_PENDING], st.session_state[_SENT] = request, time.monotonic()
    streamlit_page.send_to_flow(os.environ["LIGHTNING_FLOW_NAME"], request=request.value)


def _flow_and_pending(wait: float = 1.0) -> tuple[Any | None, Request | None]:
    """The flow's state, and the session's request it has not taken yet.

    Right after a click the flow takes it within a fraction of a second: the state is read again
    for up to ``wait`` seconds, so that the run that follows a click already shows its effect.
    """
    import streamlit as st

    deadline = time.monotonic() + wait
    while True:
        flow = _fresh_flow_state()
        if flow is None:
            return None, st.session_state.get(_PENDING)
        pending = _pending(flow)
        if pending is None or time.monotonic() > deadline:
            return flow, pending
        time.sleep(PENDING_POLL_SECONDS / 2)


def _pending(flow: Any) -> Request | None:
    """The session's request the flow has not taken yet; sent again if it has not arrived within a second."""
    import streamlit as st

    pending = st.session_state.get(_PENDING)
    if pending is None:
        return None
    taken = flow.status != Status.WAITING if pending == Request.RUN else flow.status != Status.RUNNING
    if taken:
        del st.session_state[_PENDING]
        return None
    if flow.request != pending and time.monotonic() - st.session_state[_SENT] > 1.0:
        _ask(pending)
    return pending


def _progress(page: _Page, flow: Any) -> None:
    import streamlit as st

    from sweeps.dashboard import STATES, format_duration, progress

    done = progress(page.log, page.run_cap, flow.started_at, flow.ended_at)
    st.progress(done.fraction, text=f"{done.finished} of {done.run_cap} trials finished · {flow.status}")
    counts = page.derived("counts", lambda log: log.tally.counts())
    columns = st.columns(len(STATES) + 2)
    for column, name in zip(columns, STATES, strict=False):  # the last two columns: times
        column.metric(name, counts.get(name, 0))
    columns[-2].metric("Elapsed", format_duration(done.elapsed))
    columns[-1].metric("Time left", format_duration(done.remaining))


def _best(page: _Page) -> None:
    """The best trial and the command line that re-runs it; with several objectives, the Pareto set."""
    import streamlit as st

    from sweeps import record
    from sweeps.console import format_params, format_values

    if not page.metrics:
        st.caption(NO_METRIC)
        return
    best = _best_trials(page)
    if not best:
        st.caption("Best: no trial has completed yet")
        return
    if len(page.metrics) == 1:
        (trial,) = best
        params = record.params(trial)
        st.markdown(
            f"Best: trial **{trial.number}**, {page.metrics[0]} = **{trial.value:.6g}** · {format_params(params)}"
        )
        if page.launch is not None:
            st.code(page.launch.command_line(trial.number, params), language="bash", wrap_lines=True)
        return
    with st.expander(f"Pareto set: {len(best)} trial{'s' * (len(best) != 1)} no other trial beats on every objective"):
        for trial in sorted(best, key=lambda t: t.values):
            params = record.params(trial)
            st.markdown(
                f"Trial **{trial.number}**: {format_values(page.metrics, trial.values)} · {format_params(params)}"
            )
            if page.launch is not None:
                st.code(page.launch.command_line(trial.number, params), language="bash", wrap_lines=True)


def _best_trials(page: _Page) -> list[Any]:
    """The best trial, or the Pareto set; none without a metric."""
    from sweeps import record

    return page.derived("best", lambda log: record.best_trials(log.trials, page.directions))


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


def _plot(page: _Page) -> None:
    import streamlit as st

    from sweeps.dashboard import reported_metrics
    from sweeps.hiplot import experiment

    others = page.derived("reported", lambda log: reported_metrics(log, page.metrics))
    chosen = [m for m in st.session_state.get("plot_metrics", []) if m in others]

    def component(log: Any) -> Any:
        fixes.apply(hiplot_component.FIXES)
        # One key for the page's life: the same component takes each new experiment, keeping what HiPlot
        # keeps across reloads (Keep/Exclude filters, colouring, axis order, hidden axes). HiPlot sends
        # its brushes back, for the plot's line.
        return experiment(log.trials, page.metrics, chosen).to_streamlit(key="hiplot", ret="brush_extents")

    @st.fragment  # brushing reruns this, not the whole page
    def plot() -> None:
        # While brushed, the component itself holds the trials it shows (``components.fixes.hiplot_component``) and
        # loads the newest it was sent once the brushes are cleared: it is sent every update.
        brushed = _brushed()
        if not brushed:
            st.session_state.pop("brushed_shows", None)
        elif "brushed_shows" not in st.session_state and "plot" in st.session_state:
            st.session_state["brushed_shows"] = st.session_state["plot"][1]
        if st.session_state.get("live_plot", True) or "plot" not in st.session_state:
            st.session_state["plot"] = page.derived(f"plot:{chosen}", component), page.log.tally.ended
        st.session_state["plot"][0].display()  # (returns the brushes, which _brushed reads from the session)

    plot()
    _exports(page, others, chosen)


def _brushed() -> bool:
    """Whether an axis of the plot is brushed, as the plot last told the page."""
    import streamlit as st

    sent = st.session_state.get("hiplot")  # as HiPlot returns it: [brushes]
    return bool(sent and sent[0])


def _plot_note(page: _Page) -> str:
    """The line about the plot: how to brush, or why it is behind the trials."""
    import streamlit as st

    ended = page.log.tally.ended
    if _brushed():
        shows = st.session_state.get("brushed_shows", ended)
        if shows != ended:
            return (
                f"Live updates paused while axes are brushed: the plot shows {shows} of {ended} ended trials. "
                "Clear the brushes (click an axis outside them) to update it."
            )
    elif not st.session_state.get("live_plot", True) and "plot" in st.session_state:
        shows = st.session_state["plot"][1]
        if shows != ended:
            return f"Live plot is off: the plot shows {shows} of {ended} ended trials."
    return "Drag along an axis to brush; while brushed, the plot holds still as trials end."


def _exports(page: _Page, others: list[str], chosen: list[str]) -> None:
    """Live plot, the metrics the plot shows besides the objectives, and the files to download."""
    import streamlit as st

    from sweeps.export import best_json, trials_csv
    from sweeps.hiplot import standalone_html

    trials, names, directions = page.log.trials, page.metrics, page.directions
    live, more, csv, best, html = st.columns([2, 3, 1, 1, 1], vertical_alignment="bottom")
    more.multiselect(
        "More metrics on the plot",
        others,
        key="plot_metrics",
        placeholder="every metric the trials reported" if others else "no other metric reported",
        disabled=not others,
    )
    live.toggle(
        "Live plot",
        value=True,
        key="live_plot",
        help="Off: the plot stays as it is while trials end (a brushed plot holds still by itself)",
    )
    # Built when clicked (callables), not on every rerun: at 10,000 trials each is a few MB.
    csv.download_button(
        "trials.csv",
        lambda: trials_csv(trials, names),
        file_name="trials.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        width="stretch",
    )
    best.download_button(
        "best.json",
        lambda: best_json(trials, names, directions) or "{}\n",
        file_name="best.json",
        mime="application/json",
        on_click="ignore",
        icon=":material/download:",
        width="stretch",
        disabled=not _best_trials(page),
    )
    html.download_button(
        "plot.html",
        lambda: standalone_html(trials, names, chosen),
        file_name=f"{page.study_name}-hiplot.html",
        mime="text/html",
        on_click="ignore",
        icon=":material/download:",
        width="stretch",
    )


def _trials_table(page: _Page) -> None:
    import streamlit as st

    @st.fragment
    def table() -> None:
        from sweeps.dashboard import STATES, trial_rows

        rows = page.derived("rows", lambda log: trial_rows(log, page.metrics))
        shown = st.pills("State", STATES, selection_mode="multi", default=list(STATES), key=f"{page.key}states")
        rows = rows[rows["state"].isin(shown)].sort_values("trial", ascending=False)
        st.caption(f"{len(rows)} trials · click a column's header to sort, a row to see its trial below")
        event = st.dataframe(
            rows,
            hide_index=True,
            height=420,
            on_select="rerun",
            selection_mode="single-row",
            key=f"{page.key}trials_table",
            column_config={
                "trial": st.column_config.NumberColumn(format="%d", width="small"),
                "failure reason": st.column_config.TextColumn(width="large"),
            },
        )
        picked = event.selection.rows if event is not None else []
        _trial_view(page, int(rows.iloc[picked[0]]["trial"]) if picked and picked[0] < len(rows) else None)

    table()


def _trial_view(page: _Page, picked: int | None) -> None:
    """One trial: what it ran with, every metric, its curve and the pruner's decision, its log, the
    command that re-runs it."""
    import streamlit as st
    from optuna.trial import TrialState

    from sweeps import record
    from sweeps.dashboard import log_tail, pruning_decision, trial_details

    trials = {t.number: t for t in page.log.trials if t.state != TrialState.WAITING}
    if not trials:
        return
    numbers = sorted(trials, reverse=True)
    key = f"{page.key}trial_view"
    if picked is not None and picked in trials:
        st.session_state[key] = picked  # a row picked in the table chooses the trial shown
    number = st.selectbox("Trial", numbers, key=key, format_func=lambda n: f"trial {n} · {trials[n].state.name}")
    trial = trials[number]
    details, metrics = st.columns(2)
    details.markdown("**Trial**")
    details.dataframe(_as_rows(trial_details(trial, page.metrics)), hide_index=True, width="stretch")
    details.markdown("**Parameters**")
    details.dataframe(_as_rows(record.params(trial)), hide_index=True, width="stretch")
    metrics.markdown("**Every metric it reported** (last values)")
    metrics.dataframe(_as_rows(trial.user_attrs.get(record.METRICS_ATTR, {})), hide_index=True, width="stretch")
    if trial.state == TrialState.FAIL:
        st.markdown("**Failure reason**")
        st.code(str(trial.user_attrs.get(record.REASON_ATTR, "no reason")), language=None)
    decision = pruning_decision(page.log, trial)
    if decision is not None:
        st.markdown(f"**Pruner:** {decision.text(page.metrics[0])}")
    if trial.intermediate_values:
        _trial_curve(page, trial, decision.step if decision else None)
    if page.launch is None:
        st.caption("Its command line and log are kept by the app that runs this sweep.")
        return
    st.markdown("**Command that re-runs it**")
    st.code(page.launch.command_line(number, record.params(trial)), language="bash", wrap_lines=True)
    log_file = page.launch.log_file(number)
    st.markdown(f"**Log** (last lines of `{log_file}`)")
    st.code(log_tail(log_file) or "(empty)", language=None)
    if log_file.exists():
        st.download_button(  # read when clicked: as bytes, each run of the page would store (and send) it again
            "Whole log",
            data=log_file.read_bytes,
            file_name=log_file.name,
            mime="text/plain",
            on_click="ignore",
            key=f"{page.key}trial_log",
        )


def _trial_curve(page: _Page, trial: Any, stopped_at: int | None) -> None:
    import altair as alt
    import pandas as pd
    import streamlit as st

    metric = page.metrics[0] if page.metrics else "value"
    frame = pd.DataFrame(
        {"step": step, "value": value, "stopped": step == stopped_at}
        for step, value in sorted(trial.intermediate_values.items())
    )
    line = (
        alt.Chart(frame)
        .mark_line(point=True, color="#1f77b4")
        .encode(
            x=alt.X("step:Q", axis=alt.Axis(format="d", tickMinStep=1)),
            y=alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False)),
            tooltip=["step", alt.Tooltip("value:Q", title=metric)],
        )
    )
    stop = alt.Chart(frame[frame["stopped"]]).mark_point(shape="cross", size=160, color="#d62728", filled=True)
    chart = (line + stop.encode(x="step:Q", y="value:Q")).properties(
        height=260, usermeta={"embedOptions": {"renderer": "svg"}}
    )
    where = ", the cross: where it was pruned" if stopped_at is not None else ""
    st.markdown(f"**Intermediate values** ({len(frame)} steps{where})")
    st.altair_chart(chart, width="stretch")


def _as_rows(mapping: dict[str, Any]) -> Any:
    """A two-column frame (name, value) of a mapping, values as text: a column of mixed types is not
    one Arrow column."""
    import pandas as pd

    return pd.DataFrame({"name": list(mapping), "value": [str(v) for v in mapping.values()]})


def _learning_curves(page: _Page) -> None:
    """Every trial's intermediate values; where the pruner stopped one, a cross."""
    import altair as alt
    import streamlit as st

    from sweeps.dashboard import CURVES_SHOWN, STATES, learning_curves

    frame = page.derived("curves", learning_curves)
    if frame.empty:
        st.caption(
            "No trial has reported intermediate values yet: a metric printed more than once (with `epoch=` or "
            "`step=`), a Lightning Trainer's validations or `wandb.log` calls."
        )
        return
    metric = page.metrics[0] if page.metrics else "value"
    colour = alt.Color(
        "state:N", scale=alt.Scale(domain=list(STATES), range=["#1f77b4", "#ff7f0e", "#d62728", "#2ca02c"])
    )
    tooltip = ["trial", "step", alt.Tooltip("value:Q", title=metric), "state"]
    x = alt.X("step:Q", axis=alt.Axis(format="d", tickMinStep=1))
    y = alt.Y("value:Q", title=metric, scale=alt.Scale(zero=False))
    lines = alt.Chart(frame).mark_line(opacity=0.55).encode(x=x, y=y, color=colour, detail="trial:N", tooltip=tooltip)
    stops = (
        alt.Chart(frame[frame["stopped"]])
        .mark_point(shape="cross", size=120, filled=True, color="#ff7f0e")
        .encode(x=x, y=y, tooltip=tooltip)
    )
    chart = (lines + stops).properties(height=420, usermeta={"embedOptions": {"renderer": "svg"}})
    st.altair_chart(chart, width="stretch")
    trials = frame["trial"].nunique()
    st.caption(
        f"{trials} trials' curves (at most the latest {CURVES_SHOWN}), coloured by state; a cross marks the step "
        "at which the pruner stopped a trial. Hover a line for its trial; the Trials tab shows any trial whole."
    )


def _objective(page: _Page, key: str) -> int:
    """Which objective a chart follows: the one, or the one chosen above it."""
    import streamlit as st

    if len(page.metrics) <= 1:
        return 0
    objectives = range(len(page.metrics))
    return st.selectbox("Objective", objectives, format_func=page.metrics.__getitem__, key=page.key + key)


def _history(page: _Page) -> None:
    import altair as alt
    import streamlit as st

    from sweeps.dashboard import history

    objective = _objective(page, "history_objective")
    frame = page.derived(f"history:{objective}", lambda log: history(log, page.metrics, objective))
    if frame.empty:
        st.caption(NO_METRIC if not page.metrics else "No trial has completed yet.")
        return
    name = page.metrics[objective]
    base = alt.Chart(frame).encode(x=alt.X("trial:Q", title="trial", axis=alt.Axis(format="d", tickMinStep=1)))
    points = base.mark_circle(size=50, opacity=0.7, color="#1f77b4").encode(
        y=alt.Y(f"{_field(name)}:Q", title=name, scale=alt.Scale(zero=False)),
        tooltip=["trial", alt.Tooltip(f"{_field(name)}:Q", title=name)],
    )
    best = base.mark_line(interpolate="step-after", color="#d62728", strokeWidth=2).encode(y="best so far:Q")
    st.altair_chart((points + best).properties(height=360), width="stretch")
    st.caption("Dots: each COMPLETE trial's value; red line: the best so far.")


def _importance(page: _Page) -> None:
    import streamlit as st

    if not page.metrics:
        st.caption(NO_METRIC)
        return
    objective = _objective(page, "importance_objective")
    importance = page.view.importance(objective)
    if not importance.values:
        st.caption(f"Shown once {importance.MIN_TRIALS} trials have completed (Optuna's get_param_importances).")
        return
    import altair as alt
    import pandas as pd

    frame = pd.DataFrame({"parameter": list(importance.values), "importance": list(importance.values.values())})
    bars = (
        alt.Chart(frame)
        .mark_bar(color="#1f77b4")
        .encode(
            x=alt.X("importance:Q", axis=alt.Axis(format=".0%")),
            y=alt.Y("parameter:N", sort="-x", title=None),
            tooltip=["parameter", alt.Tooltip("importance:Q", format=".1%")],
        )
    )
    st.altair_chart(bars.properties(height=40 + 32 * len(frame)), width="stretch")
    st.caption(
        f"Optuna's importance (get_param_importances) over {min(importance.based_on, importance.SAMPLE)} "
        f"of {importance.based_on} "
        f"COMPLETE trials ({importance.seconds:.1f} s); recomputed when their number has grown by a fifth."
    )


def _pareto(page: _Page) -> None:
    """Two objectives of every COMPLETE trial; the trials no other beats on both, highlighted and joined."""
    import altair as alt
    import streamlit as st

    from sweeps.dashboard import pareto

    left, right = st.columns(2)
    choices, label = range(len(page.metrics)), page.metrics.__getitem__
    x = left.selectbox("x", choices, index=0, format_func=label, key=f"{page.key}pareto_x")
    y = right.selectbox("y", choices, index=1, format_func=label, key=f"{page.key}pareto_y")
    if x == y:
        st.caption("Choose two different objectives.")
        return
    frame = page.derived(f"pareto:{x}:{y}", lambda log: pareto(log, page.metrics, x, y))
    if frame.empty:
        st.caption("No trial has completed yet.")
        return
    frame = frame.assign(on=frame["front"].map({True: "on the front", False: "dominated"}))
    fx, fy = f"{_field(page.metrics[x])}:Q", f"{_field(page.metrics[y])}:Q"
    tooltip = ["trial", alt.Tooltip(fx, title=page.metrics[x]), alt.Tooltip(fy, title=page.metrics[y])]
    colour = alt.Color(
        "on:N", title=None, scale=alt.Scale(domain=["on the front", "dominated"], range=["#d62728", "#9aa6b2"])
    )
    points = (
        alt.Chart(frame)
        .mark_circle(size=70, opacity=0.85)
        .encode(
            x=alt.X(fx, title=page.metrics[x], scale=alt.Scale(zero=False)),
            y=alt.Y(fy, title=page.metrics[y], scale=alt.Scale(zero=False)),
            color=colour,
            tooltip=tooltip,
        )
    )
    # The edge of what the front dominates: a point covers what lies beyond it along x.
    step = "step-after" if page.directions[x] == "minimize" else "step-before"
    front = alt.Chart(frame[frame["front"]]).mark_line(color="#d62728", interpolate=step).encode(x=fx, y=fy)
    # SVG, not canvas: each trial is a mark of the page (what a browser test reads).
    chart = (front + points).properties(height=420, usermeta={"embedOptions": {"renderer": "svg"}})
    st.altair_chart(chart, width="stretch")
    st.caption(
        f"{int(frame['front'].sum())} of {len(frame)} COMPLETE trials on the front of these two objectives "
        f"({page.directions[x]} {page.metrics[x]}, {page.directions[y]} {page.metrics[y]}); "
        "hover a point for its trial."
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
