import os
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

os.environ.setdefault("LIGHTING_TESTING", "1")  # (sic) skips lightning_app's version check

SCRIPTS = Path(__file__).resolve().parent / "scripts"


@pytest.fixture
def write_config(tmp_path):
    """Write a sweep config (a dict) as YAML in tmp_path and return its path."""
    from tests.harness import write_config

    def write(config: dict, name: str = "sweep.yaml") -> Path:
        return write_config(config, tmp_path / name)

    return write


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright (it cannot download a browser here)."""
    from playwright.sync_api import sync_playwright

    from tests.harness import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


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


def tradeoff_config(tmp_path: Path, **overrides) -> dict:
    """A two-objective grid sweep of tests/scripts/tradeoff.py (latency = size to minimise, acc = size -
    noise to maximise): ten trials, whose Pareto front is the five with noise 0."""
    config = report_config(
        tmp_path,
        program=str(SCRIPTS / "tradeoff.py"),
        metric=None,
        metrics=[{"name": "latency", "goal": "minimize"}, {"name": "acc", "goal": "maximize"}],
        parameters={"size": {"values": [0.0, 0.25, 0.5, 0.75, 1.0]}, "noise": {"values": [0.0, 0.5]}},
    )
    config.update(overrides)
    return config


def make_work(program, output_dir: Path, metric="loss", timeout: float | None = None, command=None):
    """An ObjectiveWork for ``program`` writing under ``output_dir`` (its logs in ``output_dir/logs``);
    ``metric``: the objective's name, a list of several, or None."""
    from components.objective import ObjectiveWork
    from sweeps.command import Launch, check

    metrics = [metric] if isinstance(metric, str) else list(metric or [])
    return ObjectiveWork(Launch(str(program), check(command), str(output_dir)), metrics, timeout)


ARTIFACTS = PROJECT / "test-output"  # screenshots and app logs of the slow tests


def artifacts(name: str) -> Path:
    """A fresh folder of ARTIFACTS for one test's screenshots and logs."""
    import shutil

    out = ARTIFACTS / name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


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


#: The database connections the tests' proxy holds at most.
PROXY_CONNECTIONS = 4


@pytest.fixture(scope="session")
def storage_proxy(postgres_url) -> str:
    """``sweeps-proxy`` in front of the tests' PostgreSQL server: the workers' ``grpc://`` storage URL."""
    from tests.simulation import start_proxy

    proxy, url = start_proxy(postgres_url, PROXY_CONNECTIONS)
    yield url
    proxy.kill()
    proxy.wait()


@pytest.fixture(params=["postgresql", "proxy"])
def workers_storage(request, shared_storage) -> tuple[str, str]:
    """Like ``shared_storage``, for workers on PostgreSQL itself and, again, through the gRPC proxy."""
    url, name = shared_storage
    return (request.getfixturevalue("storage_proxy") if request.param == "proxy" else url), name
