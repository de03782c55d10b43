"""W&B-style sweep configs run end to end: what each trial's script received, parsed from its argv."""

import json
import math
import re

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.command import script_args
from sweeps.record import params as trial_params
from tests.conftest import SCRIPTS, report_config
from tests.harness import run_headless

pytestmark = pytest.mark.slow

EVERY_DISTRIBUTION = {
    "constant": {"distribution": "constant", "value": "adam"},
    "categorical": {"distribution": "categorical", "values": [16, 32, 64]},
    "weighted": {"distribution": "categorical_w_probabilities", "values": ["a", "b"], "probabilities": [0.7, 0.3]},
    "int_uniform": {"distribution": "int_uniform", "min": 1, "max": 5},
    "uniform": {"distribution": "uniform", "min": -1.0, "max": 1.0},
    "q_uniform": {"distribution": "q_uniform", "min": 0, "max": 100, "q": 10},
    "log_uniform": {"distribution": "log_uniform", "min": -9.2, "max": -2.3},
    "log_uniform_values": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
    "q_log_uniform": {"distribution": "q_log_uniform", "min": 0, "max": 4},
    "q_log_uniform_values": {"distribution": "q_log_uniform_values", "min": 16, "max": 1024, "q": 16},
    "inv_log_uniform": {"distribution": "inv_log_uniform", "min": 1, "max": 5},
    "inv_log_uniform_values": {"distribution": "inv_log_uniform_values", "min": 1e-3, "max": 1},
    "normal": {"distribution": "normal", "mu": 10, "sigma": 2},
    "q_normal": {"distribution": "q_normal", "mu": 50, "sigma": 10, "q": 5},
    "log_normal": {"distribution": "log_normal", "mu": 0, "sigma": 1},
    "q_log_normal": {"distribution": "q_log_normal", "mu": 3, "sigma": 0.5, "q": 2},
    "beta": {"distribution": "beta", "a": 2, "b": 3},
    "q_beta": {"distribution": "q_beta", "a": 2, "b": 2, "q": 0.1},
    "optimizer": {
        "parameters": {
            "name": {"values": ["sgd", "adam"]},
            "momentum": {"min": 0.5, "max": 0.99, "if": {"optimizer.name": "sgd"}},
        }
    },
    "nesterov": {"values": [True, False], "if": {"optimizer.name": ["sgd"]}},
}

SUPPORT = {
    "constant": lambda v: v == "adam",
    "categorical": lambda v: int(v) in (16, 32, 64),
    "weighted": lambda v: v in ("a", "b"),
    "int_uniform": lambda v: re.fullmatch(r"[1-5]", v),
    "uniform": lambda v: -1 <= float(v) <= 1,
    "q_uniform": lambda v: int(v) % 10 == 0 and 0 <= int(v) <= 100,
    "log_uniform": lambda v: math.exp(-9.2) <= float(v) <= math.exp(-2.3),
    "log_uniform_values": lambda v: 1e-5 <= float(v) <= 1e-1,
    "q_log_uniform": lambda v: 1 <= int(v) <= 55,
    "q_log_uniform_values": lambda v: int(v) % 16 == 0 and 16 <= int(v) <= 1024,
    "inv_log_uniform": lambda v: math.exp(-5) <= float(v) <= math.exp(-1),
    "inv_log_uniform_values": lambda v: 1e-3 <= float(v) <= 1,
    "normal": lambda v: abs(float(v) - 10) < 2 * 5,
    "q_normal": lambda v: int(v) % 5 == 0,
    "log_normal": lambda v: float(v) > 0,
    "q_log_normal": lambda v: int(v) % 2 == 0,
    "beta": lambda v: 0 <= float(v) <= 1,
    "q_beta": lambda v: round(float(v) * 10, 9).is_integer(),
    "optimizer.name": lambda v: v in ("sgd", "adam"),
    "optimizer.momentum": lambda v: 0.5 <= float(v) <= 0.99,
    "nesterov": lambda v: v in ("True", "False"),
}


def received(tmp_path, number):
    log = (tmp_path / "results" / "logs" / f"{number}.log").read_text()
    return json.loads(re.search(r"^argv (.*)$", log, re.M).group(1))


def test_every_distribution_nested_and_conditional_parameters_reach_the_script(tmp_path, write_config):
    config = report_config(
        tmp_path,
        program=str(SCRIPTS / "record_args.py"),
        method="random",
        seed=5,
        run_cap=24,
        parameters=EVERY_DISTRIBUTION,
    )
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 24

    seen_sgd = seen_adam = False
    for t in trials:
        argv = received(tmp_path, t.number)
        assert sorted(argv) == sorted(script_args(trial_params(t))), "the script got what was recorded"
        args = dict(arg[2:].split("=", 1) for arg in argv)
        for name, value in args.items():
            assert SUPPORT[name](value), (name, value)
        sgd = args["optimizer.name"] == "sgd"
        seen_sgd |= sgd
        seen_adam |= not sgd
        assert ("optimizer.momentum" in args) == sgd and ("nesterov" in args) == sgd
        assert t.value == len(args)
    assert seen_sgd and seen_adam


def test_grid_runs_every_combination_once(tmp_path, write_config):
    config = report_config(
        tmp_path,
        program=str(SCRIPTS / "record_args.py"),
        parameters={"a": {"values": ["x", "y"]}, "b": {"distribution": "q_uniform", "min": 1, "max": 3}},
    )
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    assert sorted(tuple(received(tmp_path, t.number)) for t in trials) == [
        (f"--a={a}", f"--b={b}") for a in "xy" for b in (1, 2, 3)
    ]


def test_metric_target_finishes_the_sweep_early(tmp_path, write_config):
    config = report_config(
        tmp_path,
        program=str(SCRIPTS / "record_args.py"),
        method="grid",
        parallel=1,
        metric={"name": "loss", "goal": "minimize", "target": 2},
        parameters={"loss": {"values": [5, 4, 3, 2, 1, 0]}},
    )
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    values = [t.value for t in trials]
    assert min(values) <= 2 and len(values) < 6, values
    assert values[-1] <= 2 and all(v > 2 for v in values[:-1]), "stopped at the first trial to reach it"
