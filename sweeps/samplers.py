"""The ``method`` of a sweep: which Optuna sampler proposes its trials."""

from __future__ import annotations

import importlib.util
import warnings
from typing import Any

import optuna
from optuna.distributions import FloatDistribution, IntDistribution

from sweeps.errors import ConfigError
from sweeps.space import SearchSpace

#: W&B's names first (bayes = TPE), then Optuna's.
METHODS = ("bayes", "random", "grid", "tpe", "gp", "cmaes", "qmc", "nsga2")

#: Trials a model-based sampler draws at random before its model takes over (TPE's and GP's default).
STARTUP_TRIALS = 10

#: ``bayes`` models the metric with a Gaussian process (as W&B's ``bayes`` does) where Optuna's GPSampler
#: finds better trials in fewer than TPE (``benchmarks/efficiency.py``): one objective, every parameter a
#: number (no choice among values, none conditional), at most this many parameters and trials (each
#: proposal refits the process: ~0.4 s at 300 finished trials, ~0.6 s at 500 on 2 cores), and PyTorch
#: installed. Elsewhere, TPE.
GP_MAX_PARAMETERS = 20
GP_MAX_TRIALS = 500

#: Packages a method needs beyond the core requirements, and how to get them.
_NEEDS = {
    "gp": ("torch", "pip install torch==2.13.0 (the CPU build)"),
    "cmaes": ("cmaes", "pip install cmaes"),
}


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid without its ``study.stop()`` once every point has run.

    ``stop`` raises outside ``study.optimize``, and the sweep's ``run_cap`` (by default
    the grid's size) already decides when to stop.
    """

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        pass


def check_method(method: str) -> None:
    """Fail at config time, not at the first trial, when a method's package is missing."""
    if method in _NEEDS:
        module, how = _NEEDS[method]
        if importlib.util.find_spec(module) is None:
            raise ConfigError("method", f"{method} needs the {module} package: {how}")


def resolve(method: str, space: SearchSpace, run_cap: int | None, objectives: int) -> str:
    """The method whose sampler a sweep runs: ``bayes`` is ``gp`` or ``tpe`` (see :data:`GP_MAX_TRIALS`)."""
    if method != "bayes":
        return method
    numeric = all(
        isinstance(p.distribution, FloatDistribution | IntDistribution) or p.distribution.single()
        for p in space.parameters
    )
    fits = (
        objectives == 1
        and numeric
        and not space.is_conditional
        and len(space.parameters) <= GP_MAX_PARAMETERS
        and (run_cap or 0) <= GP_MAX_TRIALS
        and importlib.util.find_spec("torch") is not None
    )
    return "gp" if fits else "tpe"


def make_sampler(method: str, space: SearchSpace, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The sampler of ``method`` over ``space``; ``seed`` makes its sequence of proposals repeat."""
    if method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "grid":
        return _GridSampler(space.grid(), seed=seed)
    if method == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=STARTUP_TRIALS)
    if method == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if method == "qmc":
        with warnings.catch_warnings():  # "experimental" since Optuna 3.0: nothing the user can act on
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=seed, scramble=seed is not None, warn_independent_sampling=False)
    if method == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    # bayes / tpe. The constant liar keeps parallel trials from being proposed at the same point
    # while their neighbours still run; group=True lets a conditional space be modelled jointly.
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=STARTUP_TRIALS,
        multivariate=True,
        group=space.is_conditional,
        constant_liar=True,
    )
