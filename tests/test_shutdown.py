"""components.fixes.shutdown: however the app is stopped, every process of it ends, and the next app starts.

The real UI app, its page open in Chromium (the case that left Lightning's API server running),
trials running; then the signal a terminal, a process manager or a user sends.
"""

import os
import re
import signal
import subprocess
import time

import optuna
import pytest

from tests.conftest import artifacts, report_config
from tests.harness import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ended_within,
    kill_group,
    press_run_once_live,
    processes_of,
    run_headless,
    start_app,
    start_ui_app,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

#: What the contract allows: every process of the app ended within this many seconds of the signal.
WITHIN_SECONDS = 10


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.mark.parametrize(
    "to, signum, exit_code",
    [
        ("group", signal.SIGTERM, 143),  # systemd, docker stop, scancel, Kubernetes
        ("main", signal.SIGTERM, 143),  # kill <pid>
        ("group", signal.SIGHUP, 129),  # the terminal closed
        ("group", signal.SIGINT, 130),  # Ctrl-C
    ],
    ids=["SIGTERM-group", "SIGTERM-main", "SIGHUP-group", "SIGINT-group"],
)
def test_a_signal_ends_every_process_of_the_app_and_the_next_app_on_its_storage_starts(
    tmp_path, write_config, browser, to, signum, exit_code
):
    out = artifacts(f"stop-{to}-{signal.Signals(signum).name}")
    config = report_config(
        tmp_path,
        method="random",
        run_cap=12,
        # 12 s of trials, Run pressed once the page is live
        parameters={"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": 2}},
    )
    path = write_config(config)
    app, url = start_ui_app(path, tmp_path, out / "app.log")
    try:
        page = browser.new_page()
        page.goto(url)
        sweep_page = press_run_once_live(page, 12)
        sweep_page.get_by_text(re.compile(r"[1-9]\d* of 12 trials finished · running")).wait_for(timeout=60_000)
        assert len(processes_of(app)) >= 6, "the page's server, the API server, the works and their fork servers"
        os.killpg(app.pid, signum) if to == "group" else os.kill(app.pid, signum)
        stopped = time.monotonic()
        left = ended_within(app, WITHIN_SECONDS)
        took = time.monotonic() - stopped
        page.close()
    finally:
        kill_group(app)
    assert not left, [" ".join(p.cmdline())[:100] for p in left]
    assert app.returncode == exit_code
    print(f"{to} {signal.Signals(signum).name}: every process ended {took:.1f} s after the signal")

    done = run_headless(path, tmp_path)  # the claim on the SQLite file died with the app
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    assert sum(t.state.name == "COMPLETE" for t in trials) == 12


def test_an_app_that_ends_by_itself_exits_though_a_work_ignores_its_sigterm(tmp_path):
    # Without shutdown.end_children, Python's exit waits for that work for ever.
    app = start_app(
        "tests/apps/work_ignoring_sigterm.py", tmp_path / "unused.yaml", tmp_path, subprocess.PIPE, subprocess.PIPE
    )
    try:
        _, stderr = app.communicate(timeout=60)
        left = ended_within(app, 2)
    finally:
        kill_group(app)
    assert app.returncode == 0, stderr
    assert not left, [" ".join(p.cmdline())[:100] for p in left]


def test_a_page_server_that_cannot_start_ends_the_app_with_one_line(tmp_path, write_config):
    path = write_config(report_config(tmp_path, method="random", run_cap=5))
    # Streamlit refuses to start on a certificate that does not exist (a user's environment, say).
    env = {
        "STREAMLIT_SERVER_SSL_CERT_FILE": str(tmp_path / "none.pem"),
        "STREAMLIT_SERVER_SSL_KEY_FILE": str(tmp_path / "none.key"),
    }
    app = start_app("app_wi_ui.py", path, tmp_path, subprocess.PIPE, subprocess.PIPE, **env)
    try:
        _, stderr = app.communicate(timeout=60)
    finally:
        kill_group(app)
    ours = [line for line in stderr.splitlines() if line.startswith("sweeps:")]
    assert ours == [
        f"sweeps: the page's server (Streamlit) ended as it started; its errors: {tmp_path}/.storage/frontend/error.log"
    ]
    assert "Traceback" not in stderr and app.returncode == 1
    assert not processes_of(app), "nothing left"
