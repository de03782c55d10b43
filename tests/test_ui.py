"""The UI app in headless Chromium: Run to the end, best trial, failure reason, CSV download; Stop."""

import csv
import io
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.storage import open_storage
from tests.conftest import artifacts, report_config, tradeoff_config
from tests.harness import CHROMIUM, app_address, kill_group, press_run_once_live, start_app, start_ui_app, start_worker

pytestmark = [pytest.mark.slow, pytest.mark.browser]


if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)


def test_run_to_the_end_then_read_best_trial_failure_reason_and_download_the_csv(tmp_path, write_config, browser):
    out = artifacts("ui")
    # x = 0 makes report.py raise (mode by_x); 8..11 complete with loss = x. Random proposals on this
    # small space never repeat a configuration, so all five run: four finish, one fails.
    config = report_config(
        tmp_path,
        method="random",
        seed=1,
        run_cap=4,
        parameters={"x": {"values": [0, 8, 9, 10, 11]}, "mode": {"value": "by_x"}},
    )
    proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=out / "app.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1500}, accept_downloads=True)
        page.goto(url)
        sweep_page = page.frame_locator("iframe").first
        sweep_page.get_by_text("0 of 4 trials finished · waiting").wait_for(timeout=60_000)
        hiplot = sweep_page.frame_locator("iframe[title*='hiplot']")
        hiplot.locator("body").wait_for(timeout=30_000)  # mounted before the click (see STACK: lost clicks)
        page.screenshot(path=out / "before-run.png", full_page=True)
        assert not load_trials(config), "nothing runs before Run is pressed"

        sweep_page.get_by_role("button", name="Run", exact=True).click()
        sweep_page.get_by_text("4 of 4 trials finished · finished").wait_for(timeout=90_000)
        hiplot.get_by_text(re.compile(r"5\s*/\s*5")).wait_for(timeout=30_000)  # HiPlot's "Selected: 5/5"
        time.sleep(1)  # let the plot draw its lines before the screenshot
        page.screenshot(path=out / "after-run.png", full_page=True)

        assert sweep_page.get_by_role("button", name="Stop", exact=True).is_disabled(), (
            "kept in place, but nothing to stop"
        )
        best = sweep_page.get_by_text("Best: trial").inner_text()
        failure = sweep_page.locator("p", has_text="ValueError: bad x 0.0").first.inner_text()  # with its trial
        with page.expect_download(timeout=30_000) as download:
            sweep_page.get_by_role("button", name="trials.csv").click()
        csv_text = Path(download.value.path()).read_text()
        assert download.value.suggested_filename == "trials.csv"

        charts = sweep_page.get_by_test_id("stVegaLiteChart")
        assert charts.count() <= 1, "only the open tab is built (Trials: at most the chosen trial's curve)"
        sweep_page.get_by_role("tab", name="Optimisation history").click()
        sweep_page.get_by_text("Dots: each COMPLETE trial's value").wait_for(timeout=30_000)
        assert charts.count() == 1, "the history's chart alone: the Trials tab is no longer built"
        time.sleep(1.5)
        page.screenshot(path=out / "history.png", full_page=True)
        sweep_page.get_by_text("Config (read-only)").click()  # its YAML is built when opened
        sweep_page.locator("pre", has_text=f"name: {config['name']}").wait_for(timeout=30_000)
    finally:
        kill_group(proc)

    trials = load_trials(config)
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 4 + ["FAIL"]
    failed = next(t for t in trials if t.state == TrialState.FAIL)
    winner = min((t for t in trials if t.state == TrialState.COMPLETE), key=lambda t: t.value)
    assert f"trial {winner.number}, loss = 8" in best and "x=8" in best
    assert "ValueError: bad x 0.0" in failure and f"trial {failed.number}" in failure
    rows = list(csv.DictReader(io.StringIO(csv_text)))
    assert sorted((int(r["number"]), r["state"]) for r in rows) == sorted((t.number, t.state.name) for t in trials)
    assert next(r for r in rows if r["state"] == "FAIL")["fail_reason"].startswith("ValueError: bad x 0.0")


def load_trials(config):
    try:
        return optuna.load_study(study_name=config["name"], storage=config["storage"]).trials
    except KeyError:
        return []


def test_stop_starts_no_new_trial_and_lets_running_ones_finish(tmp_path, write_config, browser):
    out = artifacts("ui-stop")
    config = report_config(
        tmp_path, method="random", run_cap=20, parameters={"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": 1.5}}
    )
    proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=out / "app.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        sweep_page = page.frame_locator("iframe").first
        sweep_page.frame_locator("iframe[title*='hiplot']").locator("body").wait_for(timeout=60_000)
        sweep_page.get_by_role("button", name="Run", exact=True).click()
        sweep_page.get_by_text(re.compile(r"[1-9]\d* of 20 trials finished · running")).wait_for(timeout=60_000)
        sweep_page.get_by_test_id("stButton").get_by_role("button", name="Stop", exact=True).click()
        clicked = time.time()
        sweep_page.get_by_text(re.compile(r"of 20 trials finished · stopped")).wait_for(timeout=30_000)
        page.screenshot(path=out / "stopped.png")
        time.sleep(3)  # nothing more may start
    finally:
        kill_group(proc)
    trials = load_trials(config)
    assert all(t.state == TrialState.COMPLETE for t in trials), "the running trials finished"
    assert len(trials) < 20
    # The click reaches the flow in the page's next run, through Lightning's state API: up to ~1 s on a busy machine.
    assert all(t.datetime_start.timestamp() < clicked + 1.0 for t in trials), "no trial started after Stop"


def test_the_page_watches_a_shared_sweep_and_its_stop_stops_every_worker(
    tmp_path, write_config, browser, shared_storage
):
    out = artifacts("ui-shared")
    storage, name = shared_storage
    config = report_config(
        tmp_path,
        name=name,
        storage=storage,
        method="random",
        run_cap=60,
        parallel=1,
        heartbeat_interval=1,
        parameters={"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": 1.0}},
    )
    path = write_config(config)
    worker = start_worker(path, tmp_path / "worker", out / "worker.log")
    proc = None
    try:
        proc, url = start_ui_app(path, cwd=tmp_path, log_path=out / "app.log")
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        sweep_page = page.frame_locator("iframe").first
        sweep_page.frame_locator("iframe[title*='hiplot']").locator("body").wait_for(timeout=60_000)
        # Before Run, the page already follows the other worker's trials.
        sweep_page.get_by_text(re.compile(r"[1-9]\d* of 60 trials finished · waiting")).wait_for(timeout=30_000)
        page.screenshot(path=out / "watching.png")
        sweep_page.get_by_role("button", name="Run", exact=True).click()
        sweep_page.get_by_text(re.compile(r"of 60 trials finished · running")).wait_for(timeout=30_000)
        time.sleep(2.5)  # this app runs some trials too
        sweep_page.get_by_test_id("stButton").get_by_role("button", name="Stop", exact=True).click()
        clicked = time.time()
        sweep_page.get_by_text(re.compile(r"of 60 trials finished · stopped")).wait_for(timeout=30_000)
        assert worker.wait(timeout=30) == 0, (out / "worker.log").read_text()  # the other worker stopped too
        page.screenshot(path=out / "stopped.png")
    finally:
        kill_group(worker)
        if proc is not None:
            kill_group(proc)
    trials = optuna.load_study(study_name=name, storage=open_storage(storage)).trials
    assert all(t.state == TrialState.COMPLETE for t in trials) and len(trials) < 60
    # Each worker reads the Stop within a second; a trial it started just before may follow.
    assert all(t.datetime_start.timestamp() < clicked + 1.5 for t in trials), "no trial started after Stop"
    assert re.search(r"sweep \S+: stopped, \d+/60 trials finished", (out / "worker.log").read_text())
    assert re.search(r"\] trial \d+ COMPLETE", (out / "app.log").read_text()), "the UI app ran trials too"


def record_console(page, path: Path) -> None:
    """The page's console messages (HiPlot logs each brush it sends), timed, for a failed run."""
    log = path.open("w")
    page.on("console", lambda message: log.write(f"{time.time():.3f} {message.text[:300]}\n") or log.flush())


def brush_selection_heights(hiplot) -> list[float]:
    """The heights of the brushes drawn on HiPlot's axes (d3 hides a cleared one)."""
    return hiplot.locator(".pplot-brush .selection").evaluate_all(
        "els => els.filter(e => e.style.display !== 'none').map(e => +e.getAttribute('height'))"
    )


def axes_left_to_right(hiplot) -> list[str]:
    """The names of HiPlot's visible axes, left to right (each axis is a group translated along x).

    HiPlot redraws the axes when new trials arrive, adding an axis's group before its label: the axes are
    read again until every group has both.
    """
    for _ in range(100):
        axes = hiplot.locator(".dimension").evaluate_all(
            "els => { const axes = els.map(e => [(e.getAttribute('transform') || '').match(/translate\\(([-\\d.]+)/),"
            " e.querySelector('.label-name')]);"
            " return axes.every(([at, label]) => at && label)"
            " ? axes.map(([at, label]) => [+at[1], label.textContent]).sort((a, b) => a[0] - b[0]).map(a => a[1])"
            " : null; }"
        )
        if axes is not None:
            return axes
        time.sleep(0.1)
    raise AssertionError("HiPlot's axes are not drawn")


def axis_brush_box(hiplot, name: str) -> dict:
    """Where the axis called ``name`` takes a brush, on the page (HiPlot's DOM order is not the axes' order).

    HiPlot redraws the axes when new trials arrive: the box is read again until it is there.
    """
    label = hiplot.locator(".label-name", has_text=re.compile(rf"^{re.escape(name)}$"))
    area = hiplot.locator(".dimension").filter(has=label).locator(".pplot-brush .overlay")
    for _ in range(50):
        area.wait_for(timeout=10_000)
        box = area.bounding_box()
        if box is not None:
            return box
        time.sleep(0.1)
    raise AssertionError(f"the {name} axis is not drawn")


def test_a_brush_on_the_plot_survives_new_trials_and_clearing_it_brings_them_in(tmp_path, write_config, browser):
    out = artifacts("ui-brush")
    config = report_config(
        tmp_path,
        method="random",
        run_cap=16,
        # 1 s a trial at 2 at once: 7 s or more of trials still ending after the brush. Run is pressed
        # once the page is live, so that no cold page can miss the trials in between.
        parameters={"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": 2.0}},
    )
    proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=out / "app.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        record_console(page, out / "console.log")
        page.goto(url)
        sweep_page = press_run_once_live(page, 16)
        hiplot = sweep_page.frame_locator("iframe[title*='hiplot']")
        sweep_page.get_by_text(re.compile(r"\b[3-9] of 16 trials finished · running")).wait_for(timeout=60_000)
        hiplot.locator(".pplot-brush .overlay").first.wait_for(timeout=30_000)
        # (sleep and state, the same for every trial, are hidden by HiPlot)
        assert axes_left_to_right(hiplot) == ["trial", "x", "loss"], "Sweeps' order, after reloads of the data"
        box = axis_brush_box(hiplot, "loss")
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.7, steps=8)
        page.mouse.up()
        assert brush_selection_heights(hiplot), "the brush is drawn"

        paused = sweep_page.get_by_text(
            re.compile(r"Live updates paused while axes are brushed: the plot shows \d+ of \d+")
        )
        paused.wait_for(timeout=30_000)  # trials ended since: the page has new data it does not draw
        sweep_page.get_by_text("16 of 16 trials finished · finished").wait_for(timeout=60_000)
        time.sleep(1.5)  # page reruns after the end
        page.screenshot(path=out / "brushed.png")
        assert brush_selection_heights(hiplot), "the brush survived the new trials"
        shown = int(re.search(r"shows (\d+) of", paused.inner_text())[1])
        assert shown < 16

        box = axis_brush_box(hiplot, "loss")  # where it is now: the page may have moved
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.05)  # outside it: d3 clears it
        paused.wait_for(state="detached", timeout=30_000)
        hiplot.get_by_text(re.compile(r"16\s*/\s*16")).wait_for(timeout=30_000)  # every trial drawn again
        page.screenshot(path=out / "cleared.png")
        assert axes_left_to_right(hiplot) == ["trial", "x", "loss"], "and after one more"
    finally:
        kill_group(proc)


def populated_storage(path: Path, trials: int) -> None:
    """An SQLite storage holding a sweep named ``test`` of ``trials`` COMPLETE trials (x = their value)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="test", storage=f"sqlite:///{path}")
    distributions = {"x": FloatDistribution(0.0, 1.0), "sleep": CategoricalDistribution([0.5])}
    study.add_trials(
        optuna.trial.create_trial(value=n / trials, params={"x": n / trials, "sleep": 0.5}, distributions=distributions)
        for n in range(trials)
    )


#: Trials a sweep already holds when its page is opened, for the page to load as Run is clicked.
KEPT = 300
#: Fresh apps clicked: without the page's own delivery of the click, 2 in 6 were lost (so 6 catch it 91 % of runs;
#: tests/test_fixes.py shows that delivery deterministically).
CLICK_ATTEMPTS = 6


def test_run_clicked_the_moment_it_appears_starts_the_sweep_every_time(tmp_path, write_config, browser):
    """Fresh apps and pages: Run clicked as soon as the page draws it, while the page still loads its
    trials and mounts the plot, starts the sweep within 2 s, and the page shows it running."""
    out = artifacts("ui-click")
    populated_storage(tmp_path / "template.db", KEPT)
    started_after = []
    for attempt in range(CLICK_ATTEMPTS):
        workdir = tmp_path / str(attempt)
        workdir.mkdir()
        shutil.copy(tmp_path / "template.db", workdir / "sweep.db")
        config = report_config(
            workdir, method="random", run_cap=2000, parameters={"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": 0.5}}
        )
        proc, url = start_ui_app(write_config(config, f"sweep{attempt}.yaml"), cwd=workdir, log_path=out / "app.log")
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            run = page.frame_locator("iframe").first.get_by_role("button", name="Run", exact=True)
            run.click(timeout=60_000)  # as soon as it can be clicked
            clicked = time.time()
            running = page.frame_locator("iframe").first.get_by_text(re.compile(r"trials finished · running"))
            try:
                running.wait_for(timeout=10_000)
            except Exception:
                page.screenshot(path=out / f"attempt-{attempt}.png")
                raise
            page.close()
        finally:
            kill_group(proc)
        new = [t for t in load_trials(config) if t.number >= KEPT and t.datetime_start is not None]
        started_after.append(min(t.datetime_start.timestamp() for t in new) - clicked)
    print("first trial started after the click (s):", [round(s, 2) for s in started_after])
    assert max(started_after) < 2.0, started_after


def test_an_app_whose_port_another_program_holds_serves_its_page_from_another_port(tmp_path, write_config, browser):
    import socket

    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    deadline = time.monotonic() + 120  # another test's app may hold it for a while (the tests run in two processes)
    while True:
        try:
            held.bind(("127.0.0.1", 7501))
            break
        except OSError:
            if time.monotonic() > deadline:
                pytest.skip("port 7501 stayed taken on this machine for 120 s")
            time.sleep(0.2)
    held.listen()  # another program's server
    try:
        config = report_config(tmp_path, method="random", run_cap=3)
        proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=tmp_path / "app.log")
        try:
            assert ":7501/" not in url
            page = browser.new_page()
            page.goto(url)
            page.frame_locator("iframe").first.get_by_text("0 of 3 trials finished · waiting").wait_for(timeout=60_000)
        finally:
            kill_group(proc)
    finally:
        held.close()


def test_the_page_opened_as_soon_as_the_app_answers_shows_the_sweep_once_its_server_listens(
    tmp_path, write_config, browser
):
    """Lightning opens /view when the app's own server answers, seconds before the page's server
    (Streamlit) listens; the page must show the sweep when it does, not a frame that failed."""
    out = artifacts("ui-early")
    config = report_config(tmp_path, method="random", run_cap=3)
    log = out / "app.log"
    proc = start_app("app_wi_ui.py", write_config(config), tmp_path, open(log, "w"), subprocess.STDOUT)
    try:
        address = app_address(proc, log)
        assert address is not None, log.read_text()
        page = browser.new_page()
        page.goto(address + "/view")
        sweep_page = page.frame_locator("iframe").first
        try:
            sweep_page.get_by_text("0 of 3 trials finished · waiting").wait_for(timeout=60_000)
        finally:
            page.screenshot(path=out / "page.png")
    finally:
        kill_group(proc)


#: The height of a row (and of the header) of Streamlit's data grid.
ROW_PX = 35


def finished_page(browser, url: str, run_cap: int, height: int = 1600):
    """The page in a new tab once the sweep's ``run_cap`` trials have finished: (the tab, the sweep's frame)."""
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url)
    sweep_page = page.frame_locator("iframe").first
    sweep_page.get_by_text(f"{run_cap} of {run_cap} trials finished · finished").wait_for(timeout=120_000)
    return page, sweep_page


def test_several_objectives_pareto_chart_best_set_and_the_metric_chooser(tmp_path, write_config, browser):
    out = artifacts("ui-pareto")
    config = tradeoff_config(tmp_path, autostart=True)  # the front: the five trials with noise 0
    proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=out / "app.log")
    try:
        page, sweep_page = finished_page(browser, url, 10, height=1600)
        hiplot = sweep_page.frame_locator("iframe[title*='hiplot']")
        hiplot.get_by_text(re.compile(r"10\s*/\s*10")).wait_for(timeout=30_000)
        hiplot.locator(".dimension").first.wait_for(timeout=30_000)
        assert axes_left_to_right(hiplot) == ["trial", "size", "noise", "latency", "acc"], "the objectives last"

        # The metric chooser adds what the trials reported besides, before the objectives.
        sweep_page.locator('[data-testid="stMultiSelect"]').click()
        sweep_page.get_by_role("option", name="train_loss").click()
        page.keyboard.press("Escape")
        label = hiplot.locator(".label-name", has_text=re.compile(r"^train_loss$"))
        label.wait_for(timeout=30_000)
        assert axes_left_to_right(hiplot) == ["trial", "size", "noise", "train_loss", "latency", "acc"]

        # The best-trial panel: the Pareto set, each with its command line.
        sweep_page.get_by_text("Pareto set: 5 trials").click()
        best_set = sweep_page.locator('[data-testid="stExpander"]', has_text="Pareto set: 5 trials")
        commands = best_set.locator("code", has_text=re.compile(r"tradeoff\.py --size=")).all_inner_texts()
        assert len(commands) == 5 and all("--noise=0.0" in c for c in commands), commands
        page.screenshot(path=out / "best-set.png", full_page=True)

        sweep_page.get_by_role("tab", name="Pareto front").click()
        chart = sweep_page.get_by_role("tabpanel", name="Pareto front").locator(".vega-embed svg")
        marks = chart.locator(".mark-symbol.role-mark path")  # not the legend's symbols
        marks.first.wait_for(timeout=30_000)
        fills = marks.evaluate_all("els => els.map(e => e.getAttribute('fill'))")
        assert sorted(fills) == ["#9aa6b2"] * 5 + ["#d62728"] * 5, "every trial a point, the front in red"
        sweep_page.get_by_text("5 of 10 COMPLETE trials on the front").wait_for(timeout=10_000)
        red = chart.locator('.mark-symbol.role-mark path[fill="#d62728"]').first
        red.hover(force=True)
        tooltip = page.frame_locator("iframe").first.locator("#vg-tooltip-element")
        tooltip.wait_for(state="visible", timeout=10_000)
        assert "trial" in tooltip.inner_text() and "latency" in tooltip.inner_text()
        page.screenshot(path=out / "pareto.png", full_page=True)
    finally:
        kill_group(proc)


def test_a_trial_view_and_the_learning_curves_with_a_pruned_trial(tmp_path, write_config, browser):
    out = artifacts("ui-trial")
    config = report_config(
        tmp_path,
        program=str(Path(__file__).parent / "scripts" / "curve.py"),
        method="random",
        seed=3,
        run_cap=8,
        parallel=1,  # trials one after another: the median pruner has finished trials to compare with
        autostart=True,
        # 0.1 s an epoch: the pruner's decision reaches a trial well before its 12th epoch, however busy the machine
        parameters={"x": {"min": 0.0, "max": 10.0}, "epochs": {"value": 12}, "sleep": {"value": 0.1}},
        early_terminate={"type": "median", "n_startup_trials": 2, "n_warmup_steps": 3},
    )
    proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=out / "app.log")
    try:
        page, sweep_page = finished_page(browser, url, 8, height=4200)  # the trial view below the table
        trials = load_trials(config)
        pruned = [t for t in trials if t.state == TrialState.PRUNED]
        assert pruned, "the seed has the pruner stop some trials"

        curves = sweep_page.get_by_role("tabpanel", name="Learning curves")
        sweep_page.get_by_role("tab", name="Learning curves").click()
        crosses = curves.locator(".vega-embed svg .mark-symbol.role-mark path")
        crosses.first.wait_for(timeout=30_000)
        assert crosses.count() == len(pruned), "a cross where each pruned trial was stopped"
        lines = curves.locator(".vega-embed svg .mark-line.role-mark path")
        assert lines.count() == len(trials), "a curve per trial"
        curves.screenshot(path=out / "learning-curves.png")

        sweep_page.get_by_role("tab", name="Trials").click()
        view = sweep_page.get_by_role("tabpanel", name="Trials")
        chosen = pruned[0]
        table = view.locator('[data-testid="stDataFrame"]').first.bounding_box()
        row = max(t.number for t in trials) - chosen.number  # the table lists the latest trial first
        page.mouse.click(table["x"] + 15, table["y"] + ROW_PX * (row + 1) + ROW_PX / 2)  # its row's selector
        view.locator('[data-testid="stSelectbox"]', has_text=f"trial {chosen.number} · PRUNED").wait_for(timeout=10_000)
        decision = view.get_by_text(re.compile(rf"pruned at step {chosen.user_attrs['pruned_at_step']}: loss = "))
        decision.wait_for(timeout=30_000)
        command = view.locator("code", has_text=f"curve.py --x={chosen.params['x']} ")
        command.wait_for(timeout=10_000)  # the command that re-runs this very trial
        log = view.locator("code", has_text="epoch=").last.inner_text()
        last_epoch = max(int(e) for e in re.findall(r"epoch=(\d+)", log))
        assert last_epoch < 12 and f"epoch={last_epoch} loss=" in log, "its log's tail: it stopped early"
        assert view.locator(".vega-embed svg .mark-line.role-mark path").count() == 1, "its curve"
        page.screenshot(path=out / "trial-view.png")
        with page.expect_download(timeout=30_000) as download:
            view.get_by_role("button", name="Whole log").click()  # read when clicked
        whole = Path(download.value.path()).read_text()
        assert whole.rstrip().endswith(log.rstrip().splitlines()[-1]), "the log, to its end"
        assert set(re.findall(r"epoch=(\d+)", log)) <= set(re.findall(r"epoch=(\d+)", whole))
    finally:
        kill_group(proc)


def test_the_page_lists_every_sweep_of_its_storage_and_shows_another_read_only(tmp_path, write_config, browser):
    from tests.harness import run_headless

    out = artifacts("ui-sweeps")
    earlier = report_config(tmp_path, name="earlier", output_dir=str(tmp_path / "earlier"))  # 5 trials
    done = run_headless(write_config(earlier, "earlier.yaml"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = report_config(
        tmp_path, method="random", seed=1, run_cap=3, autostart=True, parameters={"x": {"values": [1, 2, 3, 4]}}
    )
    proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=out / "app.log")
    try:
        page, sweep_page = finished_page(browser, url, 3, height=2400)

        sweep_page.get_by_label("Sweep (2 in this storage)").click()
        sweep_page.get_by_role("option", name="earlier", exact=True).click()
        sweep_page.get_by_text("Another sweep in this storage, read only").wait_for(timeout=30_000)
        sweep_page.get_by_text("5 trials · click a column's header").wait_for(timeout=30_000)
        assert sweep_page.get_by_text("Best: trial").inner_text().endswith("loss = -2.5 · x=-2.5")
        assert sweep_page.get_by_role("button", name="Stop", exact=True).count() == 0, "nothing to run or stop"
        page.screenshot(path=out / "another-sweep.png", full_page=True)

        sweep_page.get_by_label("Sweep (2 in this storage)").click()
        sweep_page.get_by_role("option", name="test (this app's)").click()
        sweep_page.get_by_text("3 trials · click a column's header").wait_for(timeout=30_000)
        sweep_page.get_by_role("button", name="Stop", exact=True).wait_for(timeout=30_000)
    finally:
        kill_group(proc)
