import importlib.util

import optuna
import pytest

from sweeps.config import parse_config
from sweeps.errors import ConfigError
from sweeps.result import COMPLETE, TrialResult
from sweeps.samplers import METHODS
from sweeps.sweep import Sweep
from tests.conftest import SCRIPTS, report_config

MIXED_SPACE = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1},
    "width": {"distribution": "q_uniform", "min": 16, "max": 256, "q": 16},
    "dropout": {"distribution": "beta", "a": 2, "b": 5},
    "act": {"values": ["relu", "gelu"]},
}


def run_sweep(tmp_path, method, db, n=12):
    config = parse_config(
        report_config(
            tmp_path, method=method, run_cap=n, seed=42, parameters=MIXED_SPACE, storage=f"sqlite:///{tmp_path / db}"
        ),
        base_dir=SCRIPTS,
    )
    sweep = Sweep.open(config)
    asked = []
    for _ in range(n):
        request = sweep.ask()
        asked.append(request.params)
        sweep.tell(TrialResult(request.number, COMPLETE, value=request.params["lr"] * request.params["width"]))
    return asked, sweep.study.sampler


SAMPLERS = {
    "bayes": optuna.samplers.TPESampler,
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "gp": optuna.samplers.GPSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "qmc": optuna.samplers.QMCSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
}


@pytest.mark.parametrize("method", [m for m in METHODS if m != "grid"])
def test_every_method_samples_the_space_with_its_own_sampler_and_a_seed_repeats_it(tmp_path, method):
    if method == "gp" and importlib.util.find_spec("torch") is None:
        with pytest.raises(ConfigError, match="method: gp needs the torch package"):
            run_sweep(tmp_path, method, "a.db")
        return
    first, sampler = run_sweep(tmp_path, method, "a.db")
    assert type(sampler) is SAMPLERS[method]
    assert all(1e-4 <= p["lr"] <= 1 and p["width"] % 16 == 0 and 0 <= p["dropout"] <= 1 for p in first)
    assert first == run_sweep(tmp_path, method, "b.db")[0]


def test_the_grid_runs_every_combination_once(tmp_path):
    config = parse_config(
        report_config(tmp_path, method="grid", parameters={"a": {"values": [1, 2]}, "b": {"values": ["x", "y", "z"]}}),
        base_dir=SCRIPTS,
    )
    sweep = Sweep.open(config)
    asked = []
    while (request := sweep.ask()) is not None:
        asked.append((request.params["a"], request.params["b"]))
        sweep.tell(TrialResult(request.number, COMPLETE, value=1.0))
    assert sorted(asked) == [(a, b) for a in (1, 2) for b in "xyz"] and config.run_cap == 6
