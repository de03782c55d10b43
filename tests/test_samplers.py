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


NUMBERS = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1},
    "width": {"distribution": "int_uniform", "min": 16, "max": 256},
    "dropout": {"distribution": "beta", "a": 2, "b": 5},
    "epochs": {"value": 3},
}
TWO = [{"name": "loss", "goal": "minimize"}, {"name": "acc", "goal": "maximize"}]


@pytest.mark.parametrize(
    "overrides, sampler",
    [
        ({}, "gp"),  # numbers alone (a constant is no choice), one objective, a few hundred trials
        ({"method": "tpe"}, "tpe"),  # named: as named
        ({"parameters": MIXED_SPACE}, "tpe"),  # a choice among values
        ({"parameters": {**NUMBERS, "act": {"values": ["relu", "gelu"], "if": {"epochs": [3]}}}}, "tpe"),
        ({"run_cap": 501}, "tpe"),  # each proposal refits the process: slow past a few hundred trials
        ({"parameters": {f"x{i}": {"min": 0.0, "max": 1.0} for i in range(21)}}, "tpe"),
        ({"metric": None, "metrics": TWO}, "tpe"),
    ],
)
def test_bayes_is_a_gaussian_process_on_a_small_space_of_numbers_and_tpe_elsewhere(tmp_path, overrides, sampler):
    pytest.importorskip("torch")
    raw = report_config(tmp_path, method="bayes", run_cap=300, parameters=NUMBERS, seed=1)
    config = parse_config({**raw, **overrides}, base_dir=SCRIPTS)
    assert config.sampler == sampler
    study = Sweep.open(config).study
    assert type(study.sampler) is SAMPLERS[sampler]


def test_bayes_is_tpe_without_pytorch(tmp_path, monkeypatch):
    config = parse_config(report_config(tmp_path, method="bayes", run_cap=30, parameters=NUMBERS), base_dir=SCRIPTS)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else find_spec(name, *a))
    assert config.sampler == "tpe"
