import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("LIGHTING_TESTING", "1")  # (sic) skips lightning_app's version check

SCRIPTS = Path(__file__).resolve().parent / "scripts"


@pytest.fixture
def write_config(tmp_path):
    """Write a sweep config (a dict) as YAML in tmp_path and return its path."""
    import yaml

    def write(config: dict, name: str = "sweep.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config, sort_keys=False))  # parameter order matters to samplers
        return path

    return write


def report_config(tmp_path: Path, **overrides) -> dict:
    """A small sweep of tests/scripts/report.py, whose metric `loss` is its parameter x."""
    config = {
        "name": "test",
        "program": str(SCRIPTS / "report.py"),
        "method": "grid",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"values": [-2.5, -1, 0, 1, 2.5]}},
        "parallel": 2,
        "storage": f"sqlite:///{tmp_path / 'sweep.db'}",
        "output_dir": str(tmp_path / "results"),
    }
    config.update(overrides)
    return config


ARTIFACTS = PROJECT / "test-output"  # screenshots and app logs of the slow tests


def lightning_command(app_file: str) -> list[str]:
    # The console script, as the README runs it (`python -m lightning_app` imports the absent `lightning`).
    cli = str(Path(sys.executable).parent / "lightning_app")
    return [cli, "run", "app", str(PROJECT / app_file), "--open-ui", "false"]


def app_env(config_path: Path, **extra: str) -> dict:
    return {**os.environ, "SWEEP_CONFIG": str(config_path), "LIGHTING_TESTING": "1", **extra}


def run_headless(config_path: Path, cwd: Path, timeout: float = 180):
    """`lightning_app run app app_wo_ui.py` to the end, in its own process group (killed on timeout)."""
    import subprocess

    proc = subprocess.Popen(
        lightning_command("app_wo_ui.py"), cwd=cwd, env=app_env(config_path),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    finally:
        kill_group(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def start_worker(config_path: Path, cwd: Path, log_path: Path) -> subprocess.Popen:
    """Start a headless worker; return once it has started trials (and so holds its server port)."""
    cwd.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "w")
    proc = subprocess.Popen(lightning_command("app_wo_ui.py"), cwd=cwd, env=app_env(config_path),
                            stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while "trials already finished" not in log_path.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            kill_group(proc)
            raise AssertionError(f"worker did not start:\n{log_path.read_text()}")
        time.sleep(0.1)
    return proc


def kill_group(proc) -> None:
    """Lightning leaves Streamlit, the API server and the works behind on a plain kill: end them all."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def start_ui_app(config_path: Path, cwd: Path, log_path: Path, **env: str):
    """Start app_wi_ui.py in its own process group; return it and the /view URL it prints."""
    log = open(log_path, "w")
    proc = subprocess.Popen(
        lightning_command("app_wi_ui.py"), cwd=cwd, env=app_env(config_path, **env),
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


#: The PostgreSQL server of the shared-storage tests; .ci/run starts one with this role and database.
POSTGRES_URL = os.environ.get("SWEEPS_TEST_POSTGRES", "postgresql://sweeps:sweeps@localhost/sweeps")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL server to share sweeps on; skipped (failed in CI) when none answers."""
    from sweeps.storage import StorageUnreachable, check_reachable

    try:
        check_reachable(POSTGRES_URL)
    except StorageUnreachable as err:
        message = f"no PostgreSQL server for the tests ({err}): start one as .ci/run does, or set SWEEPS_TEST_POSTGRES"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return POSTGRES_URL


@pytest.fixture
def shared_storage(postgres_url, request) -> tuple[str, str]:
    """The PostgreSQL URL and a sweep name no other test (or earlier run) has used."""
    import uuid

    return postgres_url, f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"
