"""Shared by the benchmarks: run the headless app on a config, read the study it left."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import optuna

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests import harness  # noqa: E402


def noop_config(name: str, program: Path, trials: int, parallel: int, workdir: Path) -> dict:
    """A random sweep of ``trials`` no-op trials of ``program`` (metric ``loss``: its ``x``), SQLite in ``workdir``."""
    return {
        "name": name,
        "program": str(program),
        "method": "random",
        "seed": 0,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        "run_cap": trials,
        "parallel": parallel,
        "storage": f"sqlite:///{workdir / 'sweeps.db'}",
        "output_dir": str(workdir / "results"),
    }


def run_headless(config: dict, workdir: Path, timeout: float = 3600, **env: str) -> tuple[float, optuna.Study, str]:
    """Write ``config`` to ``workdir``, run `lightning run app app_wo_ui.py` on it (``env`` added to its
    environment); (wall s, study, stdout)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = harness.write_config(config, workdir / "sweep.yaml")
    started = time.perf_counter()
    done = harness.run_headless(path, workdir, timeout, **env)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the sweep failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return wall, optuna.load_study(study_name=config["name"], storage=config["storage"]), done.stdout


def trial_seconds(study: optuna.Study) -> float:
    return sum((t.datetime_complete - t.datetime_start).total_seconds() for t in study.trials if t.datetime_complete)
