"""``early_terminate``: which Optuna pruner stops unpromising trials.

W&B's ``{type: hyperband, min_iter | max_iter + s, eta}`` maps to Optuna's HyperbandPruner;
Sweeps adds Optuna's other pruners under their own names, each taking Optuna's arguments. Steps
are the trial's intermediate values as the script printed them (its ``epoch``/``step``, else a
count), so ``min_iter: 3`` means "after the third reported value", as in W&B.
"""

from __future__ import annotations

from typing import Annotated, Literal

import optuna
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, model_validator


class _Pruner(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Hyperband(_Pruner):
    """W&B's hyperband, or Optuna's with its own argument names."""

    type: Literal["hyperband"]
    min_iter: PositiveInt | None = None
    max_iter: PositiveInt | None = None
    s: NonNegativeInt | None = None
    eta: int = Field(default=3, ge=2)
    strict: bool = False  # W&B's; Optuna's pruner has no such mode: accepted, ignored
    min_resource: PositiveInt | None = None
    max_resource: PositiveInt | None = None
    reduction_factor: int | None = Field(default=None, ge=2)
    bootstrap_count: NonNegativeInt = 0

    @model_validator(mode="after")
    def _one_way_to_say_it(self) -> Hyperband:
        if self.max_iter is not None and self.s is None and self.min_iter is None:
            raise ValueError("max_iter needs s (brackets at max_iter / eta^s ... max_iter), or give min_iter")
        return self

    def build(self) -> optuna.pruners.BasePruner:
        eta = self.reduction_factor or self.eta
        if self.min_resource is not None or self.max_resource is not None:
            return optuna.pruners.HyperbandPruner(
                self.min_resource or 1, self.max_resource or "auto", eta, self.bootstrap_count
            )
        if self.min_iter is not None:
            return optuna.pruners.HyperbandPruner(self.min_iter, self.max_iter or "auto", eta, self.bootstrap_count)
        assert self.max_iter is not None and self.s is not None
        return optuna.pruners.HyperbandPruner(
            max(1, round(self.max_iter / eta**self.s)), self.max_iter, eta, self.bootstrap_count
        )


class _ComparedAtEachStep(_Pruner):
    """The arguments Optuna's median and percentile rules share."""

    n_startup_trials: NonNegativeInt = 5
    n_warmup_steps: NonNegativeInt = 0
    interval_steps: PositiveInt = 1
    n_min_trials: PositiveInt = 1


class Median(_ComparedAtEachStep):
    type: Literal["median"]

    def build(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.MedianPruner(
            self.n_startup_trials, self.n_warmup_steps, self.interval_steps, n_min_trials=self.n_min_trials
        )


class Percentile(_ComparedAtEachStep):
    type: Literal["percentile"]
    percentile: float = Field(ge=0, le=100)

    def build(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.PercentilePruner(
            self.percentile,
            self.n_startup_trials,
            self.n_warmup_steps,
            self.interval_steps,
            n_min_trials=self.n_min_trials,
        )


class Asha(_Pruner):
    """Asynchronous successive halving: Optuna's SuccessiveHalvingPruner."""

    type: Literal["asha"]
    min_resource: PositiveInt | Literal["auto"] = "auto"
    reduction_factor: int = Field(default=4, ge=2)
    min_early_stopping_rate: NonNegativeInt = 0
    bootstrap_count: NonNegativeInt = 0

    def build(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.SuccessiveHalvingPruner(
            self.min_resource, self.reduction_factor, self.min_early_stopping_rate, self.bootstrap_count
        )


class Threshold(_Pruner):
    type: Literal["threshold"]
    lower: float | None = None
    upper: float | None = None
    n_warmup_steps: NonNegativeInt = 0
    interval_steps: PositiveInt = 1

    @model_validator(mode="after")
    def _a_bound(self) -> Threshold:
        if self.lower is None and self.upper is None:
            raise ValueError("give lower, upper or both")
        return self

    def build(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.ThresholdPruner(self.lower, self.upper, self.n_warmup_steps, self.interval_steps)


class Patient(_Pruner):
    """Stop a trial whose metric has not improved for ``patience`` steps (Optuna's PatientPruner)."""

    type: Literal["patient"]
    patience: NonNegativeInt
    min_delta: float = Field(default=0.0, ge=0)

    def build(self) -> optuna.pruners.BasePruner:
        return optuna.pruners.PatientPruner(None, self.patience, self.min_delta)


EarlyTerminate = Annotated[Hyperband | Median | Percentile | Asha | Threshold | Patient, Field(discriminator="type")]

#: ``type`` -> its model, for error messages.
PRUNERS: dict[str, type[BaseModel]] = {
    model.model_fields["type"].annotation.__args__[0]: model  # type: ignore[union-attr]
    for model in (Hyperband, Median, Percentile, Asha, Threshold, Patient)
}
