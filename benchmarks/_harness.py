"""Shared by the benchmarks: run the headless app on a config, read the study it left."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import yaml

PROJECT = Path(__file__).resolve().parent.parent


def run_headless(config: dict, workdir: Path, timeout: float = 3600) -> tuple[float, optuna.Study, str]:
    """Write ``config`` to ``workdir``, run `lightning_app run app app_wo_ui.py` on it; (wall s, study, stdout)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "sweep.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))  # parameter order matters to samplers
    env = {**os.environ, "SWEEP_CONFIG": str(path), "LIGHTING_TESTING": "1"}
    cli = str(Path(sys.executable).parent / "lightning_app")
    started = time.perf_counter()
    done = subprocess.run(
        [cli, "run", "app", str(PROJECT / "app_wo_ui.py"), "--open-ui", "false"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=timeout, start_new_session=True,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, optuna.load_study(study_name=config["name"], storage=config["storage"]), done.stdout


def trial_seconds(study: optuna.Study) -> float:
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials if t.datetime_complete)
