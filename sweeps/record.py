"""A trial as the Optuna storage keeps it: what Sweeps writes on it, and how any reader reads it back.

The storage is the sweep's one source of truth, read by the sweep itself, the exports, the console,
the page and by other tools (optuna-dashboard). This module is the schema they share: the user
attributes Sweeps sets, which states count towards ``run_cap``, the parameters as the script
received them, and which trials are best.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sweeps import optuna_internals

#: Where a FAIL trial keeps its reason.
REASON_ATTR = "fail_reason"
#: Where a trial keeps the values of parameters Optuna sampled as quantiles (normal, beta, ...).
PARAMS_ATTR = "params"
#: On a retry: the number of the FAIL trial whose parameters it tries again, and which attempt it is.
RETRY_OF_ATTR, ATTEMPT_ATTR = "retry_of", "attempt"
#: On a retry: the number of the first trial of its parameters, whose directory its retries share.
FIRST_TRIAL_ATTR = "first_trial"
#: On a retry of an interrupted trial: true, the run is to continue from the trial's last checkpoint.
RESUME_ATTR = "resume"
#: On a run that continued from a checkpoint: the step (epoch) it started at.
RESUMED_FROM_ATTR = "resumed_from"
#: On a PRUNED trial: the step at which the pruner said stop (the script may report a few more).
PRUNED_AT_ATTR = "pruned_at_step"
#: The path of a traced Lightning Trainer's best checkpoint.
CHECKPOINT_ATTR = "checkpoint"
#: The devices and cores the trial ran on (``{"gpus": "0,1", "cpus": "0-3"}``), when the config manages them.
RESOURCES_ATTR = "resources"
#: The last value of every metric the trial reported (printed lines, a Trainer's callback_metrics, W&B's log).
METRICS_ATTR = "metrics"

#: Set on the study of a sweep without a metric, whose values are placeholders: no metric is to be added.
NO_METRIC_ATTR = "no_metric"

#: Optuna stores a value with every COMPLETE trial; a sweep without a metric stores this one, which
#: no reader of Sweeps shows (there is no best trial, no history, no importance).
NO_METRIC_VALUE = 0.0

#: The name under which Optuna samples the quantile of a parameter it has no distribution for.
QUANTILE_SUFFIX = ":quantile"

#: The reason of a trial that was RUNNING when the process running it died.
INTERRUPTED = "interrupted"
#: The reason of a trial whose worker stopped recording heartbeats (killed, or its machine lost).
WORKER_LOST = "worker lost"
#: The reason of a trial whose work's process died (the OOM killer picks the biggest process). Counted as
#: the trial's own failure: the trial may well be what took the memory.
WORK_LOST = "work lost"
#: The reason of a trial whose node of a Ray cluster (``--cloud``) was lost while it ran.
NODE_LOST = "node lost"
#: The reason of a trial given back before it ran: other workers had taken the last places under ``run_cap``
#: (on a storage without a lock, such as the gRPC proxy, a worker checks its trial's place once created).
NOT_RUN = "not run: run_cap taken by other workers"
#: Failures that are not the trial's own: they use no retry attempt and do not count towards max_failures.
NOT_THE_TRIALS_FAULT = (INTERRUPTED, WORKER_LOST, NOT_RUN)
#: Failures that cut a trial short from outside: its retry continues it from its last checkpoint. Any
#: other failure (an exception, an exit code, a timeout, NaN, its memory cap) starts it over.
INTERRUPTIONS = (INTERRUPTED, WORKER_LOST, WORK_LOST, NODE_LOST)

#: States that count towards ``run_cap``: a trial *finished* in one of them.
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def params(trial: FrozenTrial) -> dict[str, Any]:
    """What the trial's script received: Optuna's own values and those mapped from quantiles."""
    values = {name: value for name, value in trial.params.items() if not name.endswith(QUANTILE_SUFFIX)}
    values.update(trial.user_attrs.get(PARAMS_ATTR, {}))
    return values


def is_finished(trial: FrozenTrial) -> bool:
    """Whether the trial counts towards ``run_cap``: COMPLETE or PRUNED (a FAIL has *ended*, not finished)."""
    return trial.state in FINISHED


def has_ended(trial: FrozenTrial) -> bool:
    """Whether the trial will not change again: COMPLETE, PRUNED or FAIL."""
    return trial.state.is_finished()


def counts_as_failure(trial: FrozenTrial) -> bool:
    """A FAIL that is the trial's own fault, which counts towards ``max_failures``."""
    return trial.state == TrialState.FAIL and trial.user_attrs.get(REASON_ATTR) not in NOT_THE_TRIALS_FAULT


def first_trial(trial: FrozenTrial) -> int:
    """The number of the first trial of this trial's parameters (its own, unless it is a retry)."""
    return int(trial.user_attrs.get(FIRST_TRIAL_ATTR, trial.number))


def was_interrupted(trial: FrozenTrial) -> bool:
    """A FAIL from outside the trial (:data:`INTERRUPTIONS`): its retry continues where it stopped."""
    return trial.state == TrialState.FAIL and reason_headline(trial) in INTERRUPTIONS


def attempt(trial: FrozenTrial) -> int:
    """0 for a trial as first proposed, n for its n-th retry."""
    return int(trial.user_attrs.get(ATTEMPT_ATTR, 0))


def reason_headline(trial: FrozenTrial) -> str:
    """A FAIL trial's reason without the output that follows it: ``exit code 3``."""
    reason = str(trial.user_attrs.get(REASON_ATTR) or "").strip()
    return reason.splitlines()[0] if reason else "no reason"


def has_value(trial: FrozenTrial) -> bool:
    """A COMPLETE trial with finite values: one that can be the best, or on the Pareto front."""
    return trial.state == TrialState.COMPLETE and trial.values is not None and all(map(math.isfinite, trial.values))


def better(a: float, b: float, goal: str | None) -> bool:
    """Whether value ``a`` is strictly better than ``b`` for ``goal`` (``minimize`` or ``maximize``)."""
    return a > b if goal == "maximize" else a < b


def best_trials(trials: Iterable[FrozenTrial], directions: Sequence[str]) -> list[FrozenTrial]:
    """The trials that are best: none without a metric, the best one for one objective, the Pareto set
    (the COMPLETE trials no other trial beats on every objective) for several."""
    if len(directions) <= 1:
        best = best_trial(trials, directions[0] if directions else None)
        return [best] if best is not None else []
    return optuna_internals.pareto_front([t for t in trials if has_value(t)], directions)


def best_trial(trials: Iterable[FrozenTrial], goal: str | None) -> FrozenTrial | None:
    """The COMPLETE trial with the best value (the first such, on a tie); None before one completed,
    and for a sweep without a metric (``goal`` None)."""
    if goal is None:
        return None
    best = None
    for trial in trials:
        if has_value(trial) and (best is None or better(trial.value, best.value, goal)):
            best = trial
    return best
