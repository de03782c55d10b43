"""The Optuna study behind a sweep, and the budget that decides when the sweep is done.

The storage is the one source of truth: every trial, its parameters, value and failure reason
live there, and a sweep opened again on the same storage picks up its counts from it. This
object only remembers counts, so that deciding "ask another trial?" costs no query.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.config import SweepConfig
from sweeps.trial import COMPLETE, FAIL, PRUNED, TrialResult, script_args

#: Where a FAIL trial keeps its reason, in the trial's user attributes.
REASON_ATTR = "fail_reason"


@dataclass(frozen=True)
class TrialRequest:
    """A trial that has been asked for: what its script is to receive."""

    number: int
    params: dict[str, Any]

    @property
    def args(self) -> list[str]:
        return script_args(self.params)


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid without its ``study.stop()`` once every point has run.

    ``stop`` raises outside ``study.optimize``, and the sweep's budget (``run_cap``, by default
    the grid's size) already decides when to stop.
    """

    def after_trial(self, *args: Any, **kwargs: Any) -> None:
        pass


def make_sampler(config: SweepConfig) -> optuna.samplers.BaseSampler:
    if config.method == "random":
        return optuna.samplers.RandomSampler(seed=config.seed)
    if config.method == "grid":
        return _GridSampler(config.space.grid(), seed=config.seed)
    # W&B's "bayes" is Optuna's TPE. The constant liar keeps parallel trials from being
    # proposed at the same point while their neighbours are still running.
    return optuna.samplers.TPESampler(seed=config.seed, multivariate=True, constant_liar=True)


class Sweep:
    def __init__(self, config: SweepConfig, study: optuna.Study) -> None:
        self.config = config
        self.study = study
        self.counts: Counter[str] = Counter()
        self.best: FrozenTrial | None = None
        self.target_reached = False
        self._asked: dict[int, optuna.Trial] = {}  # trials this process is running, by number
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
            self._count(trial)

    @classmethod
    def open(cls, config: SweepConfig) -> Sweep:
        """Create the study, or load it when the storage already has one of this name."""
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            storage=config.storage,
            study_name=config.name,
            direction=config.metric.goal,
            sampler=make_sampler(config),
            load_if_exists=True,
        )
        return cls(config, study)

    @property
    def finished(self) -> int:
        """Trials that count towards ``run_cap``: COMPLETE and PRUNED."""
        return self.counts[COMPLETE] + self.counts[PRUNED]

    @property
    def done(self) -> bool:
        return (
            self.finished >= self.config.budget
            or self.counts[FAIL] >= self.config.failure_budget
            or self.target_reached
        )

    def wants_more(self, running: int) -> bool:
        """Whether another trial should start while ``running`` trials are still out."""
        return not self.done and self.finished + running < self.config.budget

    def ask(self) -> TrialRequest:
        trial = self.study.ask(self.config.space.distributions)
        self._asked[trial.number] = trial
        return TrialRequest(trial.number, dict(trial.params))

    def tell(self, result: TrialResult) -> FrozenTrial:
        trial = self._asked.pop(result.number)
        if result.reason is not None:
            trial.set_user_attr(REASON_ATTR, result.reason)
        if result.state == COMPLETE:
            frozen = self.study.tell(trial, result.value)
        else:
            frozen = self.study.tell(trial, state=TrialState[result.state])
        self._count(frozen)
        return frozen

    def _count(self, trial: FrozenTrial) -> None:
        self.counts[trial.state.name] += 1
        if trial.state != TrialState.COMPLETE or trial.value is None or math.isnan(trial.value):
            return
        if self.best is None or self._better(trial.value, self.best.value):
            self.best = trial
        target = self.config.metric.target
        if target is not None and not self._better(target, trial.value):
            self.target_reached = True

    def _better(self, a: float, b: float | None) -> bool:
        if b is None:
            return True
        return a > b if self.config.metric.goal == "maximize" else a < b
