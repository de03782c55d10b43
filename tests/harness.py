"""Running the real app as a user does (`lightning run app ...`), for the slow tests and the benchmarks.

No pytest here: ``benchmarks/`` imports it too.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import yaml

PROJECT = Path(__file__).resolve().parent.parent

#: Debian's Chromium, driven by Playwright (which cannot download a browser here).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def write_config(config: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # parameter order matters to samplers
    return path


def lightning_command(app_file: str, *args: str) -> list[str]:
    # The user's words, as the README runs them: `lightning`, installed by requirements.txt.
    cli = str(Path(sys.executable).parent / "lightning")
    return [cli, "run", "app", str(PROJECT / app_file), "--open-ui", "false", *args]


def app_env(config_path: Path, **extra: str) -> dict:
    return {**os.environ, "SWEEP_CONFIG": str(config_path), "LIGHTING_TESTING": "1", **extra}


def start_app(
    app_file: str, config_path: Path, cwd: Path, stdout, stderr, args: tuple[str, ...] = (), **env: str
) -> subprocess.Popen:
    """`lightning run app <app_file> [args]` on a config, in a process group of its own (a session: setsid)."""
    return subprocess.Popen(
        lightning_command(app_file, *args),
        cwd=cwd,
        env=app_env(config_path, **env),
        stdout=stdout,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )


def run_headless(config_path: Path, cwd: Path, timeout: float = 180, args: tuple[str, ...] = (), **env: str):
    """`lightning run app app_wo_ui.py [args]` to the end, in its own process group (killed on timeout)."""
    proc = start_app("app_wo_ui.py", config_path, cwd, subprocess.PIPE, subprocess.PIPE, args, **env)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def start_worker(config_path: Path, cwd: Path, log_path: Path) -> subprocess.Popen:
    """Start a headless worker; return once it has started trials (and so holds its server port)."""
    cwd.mkdir(parents=True, exist_ok=True)
    proc = start_app("app_wo_ui.py", config_path, cwd, open(log_path, "w"), subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "trials already finished" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_group(proc)
            raise AssertionError(f"worker did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return proc


def kill_group(proc) -> None:
    """Lightning leaves Streamlit, the API server and the works behind on a plain kill: end them all."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def app_address(proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> str | None:
    """The app's address (``http://host:port``) as soon as its server answers and it prints it to
    ``log_path``: the moment Lightning opens the page in a browser. None if it exits or takes longer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"View it in your browser: (http://\S+)/view", log_path.read_text())
        if found:
            return found.group(1)
        time.sleep(0.05)
    return None


def start_ui_app(config_path: Path, cwd: Path, log_path: Path, args: tuple[str, ...] = (), **env: str):
    """Start app_wi_ui.py [args] in its own process group; return it and the /view URL it prints."""
    proc = start_app("app_wi_ui.py", config_path, cwd, open(log_path, "w"), subprocess.STDOUT, args, **env)
    deadline = time.monotonic() + 60
    address = app_address(proc, log_path)
    while address is not None and time.monotonic() < deadline and proc.poll() is None:
        if _page_ready(address):
            return proc, address + "/view"
        time.sleep(0.2)
    kill_group(proc)
    raise AssertionError(f"the app did not start:\n{log_path.read_text()}")


def press_run_once_live(page, run_cap: int):
    """Press Run once the page is live (its status drawn, the plot mounted); the sweep's frame.

    A sweep that starts by itself (``autostart``) can run a test's window of running trials before
    a cold page on a busy machine draws its first figures."""
    sweep_page = page.frame_locator("iframe").first
    sweep_page.get_by_text(f"0 of {run_cap} trials finished · waiting").wait_for(timeout=90_000)
    hiplot = sweep_page.frame_locator("iframe[title*='hiplot']")
    hiplot.locator("body").wait_for(timeout=30_000)  # mounted before the click (see STACK: lost clicks)
    sweep_page.get_by_role("button", name="Run", exact=True).click()
    return sweep_page


def _page_ready(app_url: str) -> bool:
    """The layout answers (503 "starting" until the app publishes its first state) and the Streamlit page it names too
    (named once it answers: until then the page shows a spinner)."""
    layout = _get(app_url + "/api/v1/layout")
    if layout is None:
        return False
    targets = [entry["content"] for entry in json.loads(json.loads(layout))]
    return all(target and _get(target) is not None for target in targets)


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode() if response.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def processes_of(app: subprocess.Popen) -> list[psutil.Process]:
    """Every live process of an app started by :func:`start_app`: its session's (killed ones that are
    only waiting to be reaped do not count)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == app.pid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return found


def command_of(process: psutil.Process) -> str:
    """Its command line ("" once it has ended)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


def slot_processes(app_pid: int) -> list[psutil.Process]:
    """The processes of the app's slots (its works) that have run a trial: those with a fork server."""
    return [
        p
        for p in psutil.Process(app_pid).children()
        if any("sweeps.forkserver" in command_of(child) for child in p.children())
    ]


def running_trials(app: subprocess.Popen, slots: int, timeout: float = 60) -> list[tuple[str, psutil.Process]]:
    """Once each of the app's ``slots`` runs a trial (a fork server, and its trial's child: a fork, with the
    same command), the command line of every process of the app's, beside it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app_process = psutil.Process(app.pid)
        described = [(command_of(p), p) for p in [app_process, *app_process.children(recursive=True)]]
        if sum("sweeps.forkserver" in command for command, _ in described) == 2 * slots:
            return [(command, p) for command, p in described if command]
        time.sleep(0.2)
    raise AssertionError(f"{slots} trials were not running within {timeout} s")


def ended_within(app: subprocess.Popen, seconds: float) -> list[psutil.Process]:
    """Wait up to ``seconds`` for every process of the app to end; those still alive then."""
    deadline = time.monotonic() + seconds
    while (alive := processes_of(app)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive
