"""The UI app in headless Chromium: press Run, watch the parallel-coordinates plot fill up."""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import ARTIFACTS, PROJECT, app_env, kill_group, lightning_command, report_config

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
]

if not Path(CHROMIUM).exists() and not os.environ.get("CI"):
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium", allow_module_level=True)


def start_ui_app(config_path: Path, cwd: Path, log_path: Path):
    """Start app_wi_ui.py in its own process group; return it and the /view URL it prints."""
    log = open(log_path, "w")
    proc = subprocess.Popen(
        lightning_command("app_wi_ui.py"), cwd=cwd, env=app_env(config_path),
        stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"View it in your browser: (http://\S+)/view", log_path.read_text())
        if found and _page_ready(found.group(1)):
            return proc, found.group(1) + "/view"
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    kill_group(proc)
    raise AssertionError(f"the app did not start:\n{log_path.read_text()}")


def _page_ready(app_url: str) -> bool:
    """The layout answers (it is 500 for a moment at start-up) and the Streamlit page it names too.

    /view loads the page once: opened before Streamlit listens, it stays blank.
    """
    layout = _get(app_url + "/api/v1/layout")
    if layout is None:
        return False
    targets = [entry["content"] for entry in json.loads(json.loads(layout))]
    return all(_get(target) is not None for target in targets)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode() if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


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
