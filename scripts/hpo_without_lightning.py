"""The tutorial's first half: the HPO loop without Lightning, with a numpy objective.

Lightning runs a flow's ``run`` over and over (its "infinite loop"); here a ``while`` loop does
it. Each pass hands the study's next trials to free works and tells the study each metric once a
work has it — the same :meth:`sweeps.worker.Worker.step` that ``HPOFlow.run`` calls, so the two
cannot drift apart. The tutorial made one work per trial (``has_started``) and checked
``if work.metric`` (false for a metric of 0, which then hung); here ``SIMULTANEOUS_TRIALS``
works are reused and a result is "ready" when it exists, whatever its value.

    python scripts/hpo_without_lightning.py
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sweeps.config import parse_config  # noqa: E402
from sweeps.control import Request  # noqa: E402
from sweeps.result import COMPLETE, TrialResult  # noqa: E402
from sweeps.samplers import make_sampler  # noqa: E402
from sweeps.sweep import Sweep, TrialRequest  # noqa: E402
from sweeps.worker import Worker  # noqa: E402

TOTAL_TRIALS = 6
SIMULTANEOUS_TRIALS = 2

Objective = Callable[[dict[str, Any]], float]


class ObjectiveWork:
    """A stand-in for the Lightning work: "runs" a trial by sampling its metric with numpy.

    Like a real work, it does not answer at once: the result is ready on a later pass of the loop.
    """

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self.result: TrialResult | None = None
        self._started: tuple[int, dict[str, Any]] | None = None

    def start_trial(self, request: TrialRequest) -> None:
        self._started = (request.number, request.params)
        self.result = None

    def values_of(self, trial_number: int) -> list[tuple[int, float]]:
        return []  # this objective reports no intermediate values, so nothing is pruned

    def prune_trial(self, trial_number: int) -> None:
        pass

    def result_of(self, trial_number: int) -> TrialResult | None:
        if self.result is None and self._started is not None:
            number, params = self._started
            self.result = TrialResult(number, COMPLETE, value=self.objective(params))
            return None  # ended now; the loop sees it on its next pass
        return self.result if self.result and self.result.number == trial_number else None


def numpy_objective(seed: int = 0) -> Objective:
    rng = np.random.default_rng(seed)
    return lambda params: float(rng.uniform(0, 100))


def run_sweep(objective: Objective, total: int = TOTAL_TRIALS, simultaneous: int = SIMULTANEOUS_TRIALS) -> optuna.Study:
    config = parse_config(
        {
            "name": "without-lightning",
            "program": Path(__file__).name,  # not run: the works above sample the metric
            "method": "random",
            "metric": {"name": "metric", "goal": "minimize"},
            "parameters": {"x": {"min": 0.0, "max": 10.0}},
            "run_cap": total,
            "seed": 0,
        },
        base_dir=Path(__file__).parent,
    )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=make_sampler(config.sampler, config.space, config.seed))
    worker = Worker(Sweep(config, study), [ObjectiveWork(objective) for _ in range(simultaneous)])
    while not worker.status.over:  # what Lightning's loop does around HPOFlow.run
        worker.step(Request.RUN)
    return study


if __name__ == "__main__":
    run_sweep(numpy_objective())  # the worker prints a line per trial, then {trial_number: metric}
