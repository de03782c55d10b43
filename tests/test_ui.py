"""The UI app in headless Chromium: press Run, watch the parallel-coordinates plot fill up."""

import os
import re
import shutil
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import ARTIFACTS, kill_group, report_config, start_ui_app

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_run_button_starts_the_sweep_and_the_plot_shows_every_trial(tmp_path, write_config, browser):
    out = ARTIFACTS / "ui"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = report_config(tmp_path)  # 5 trials
    proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=out / "app.log")
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(url)
        sweep_page = page.frame_locator("iframe").first
        sweep_page.get_by_text("0 of 5 trials finished · waiting").wait_for(timeout=60_000)
        hiplot = sweep_page.frame_locator("iframe[title*='hiplot']")
        hiplot.locator("body").wait_for(timeout=30_000)  # mounted before the click (see STACK: lost clicks)
        page.screenshot(path=out / "before-run.png")
        assert not load_trials(config), "nothing runs before Run is pressed"

        sweep_page.get_by_role("button", name="Run", exact=True).click()
        sweep_page.get_by_text("5 of 5 trials finished · finished").wait_for(timeout=90_000)
        hiplot.get_by_text(re.compile(r"5\s*/\s*5")).wait_for(timeout=30_000)  # HiPlot's "Selected: 5/5"
        time.sleep(1)  # let the plot draw its lines before the screenshot
        page.screenshot(path=out / "after-run.png")

        best = sweep_page.get_by_text("Best: trial").inner_text()
        assert "loss = -2.5" in best
    finally:
        kill_group(proc)

    trials = load_trials(config)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5


def load_trials(config):
    try:
        return optuna.load_study(study_name=config["name"], storage=config["storage"]).trials
    except KeyError:
        return []


def test_stop_starts_no_new_trial_and_lets_running_ones_finish(tmp_path, write_config, browser):
    out = ARTIFACTS / "ui-stop"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
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
        sweep_page.get_by_role("button", name="Stop", exact=True).click()
        clicked = time.time()
        sweep_page.get_by_text(re.compile(r"of 20 trials finished · stopped")).wait_for(timeout=30_000)
        page.screenshot(path=out / "stopped.png")
        time.sleep(3)  # nothing more may start
    finally:
        kill_group(proc)
    trials = load_trials(config)
    assert all(t.state == TrialState.COMPLETE for t in trials), "the running trials finished"
    assert len(trials) < 20
    assert all(t.datetime_start.timestamp() < clicked + 0.5 for t in trials), "no trial started after Stop"
