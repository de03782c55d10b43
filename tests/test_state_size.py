"""The app's state holds what runs now, not every trial: it must not grow with the sweep."""

import json
import time
import urllib.request

import optuna
import pytest
from optuna.trial import TrialState

from tests.conftest import report_config
from tests.harness import kill_group, start_ui_app

pytestmark = pytest.mark.slow


def app_state(app_url: str) -> str:
    request = urllib.request.Request(
        f"{app_url}/api/v1/state", headers={"X-Lightning-Session-UUID": "x", "X-Lightning-Session-ID": "x"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.read().decode()


def finished(config, app_log) -> int:
    # Not before the app has created the storage: opening it while the app creates it races on
    # Optuna's schema (IntegrityError on alembic_version), in this process or in the app's.
    if "trials already finished" not in app_log.read_text():
        return 0
    try:
        study = optuna.load_study(study_name=config["name"], storage=config["storage"])
    except KeyError:
        return 0
    return sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))


def test_serialized_state_after_40_trials_is_no_larger_than_after_10(tmp_path, write_config):
    config = report_config(
        tmp_path,
        method="random",
        run_cap=40,
        parameters={"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": 0.05}},
    )
    proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=tmp_path / "app.log", SWEEPS_AUTOSTART="1")
    app_url = url.removesuffix("/view")
    try:
        sizes = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and 40 not in sizes:
            done = finished(config, tmp_path / "app.log")
            state = app_state(app_url)
            if done >= 10 and 10 not in sizes:
                sizes[10] = len(state)
            if done == 40 and json.loads(state)["flows"]["hiplot"]["vars"]["status"] == "finished":
                sizes[40] = len(state)
            time.sleep(0.2)
    finally:
        kill_group(proc)
    print(f"serialized app state: {sizes[10]} bytes after 10 trials, {sizes[40]} after 40")
    assert set(sizes) == {10, 40}, sizes
    assert sizes[40] <= sizes[10] + 1024, sizes
