"""What a worker prints: a line when it starts, stops and ends, one per ended trial, and the summary.

The headless app's output is its interface (a user reads it, a job log keeps it), so every line
is written here, in one voice.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps import record
from sweeps.control import Status

if TYPE_CHECKING:
    from sweeps.sweep import Sweep


def started_line(sweep: Sweep) -> str:
    return f"sweep {sweep.config.name}: {sweep.finished}/{sweep.config.run_cap} trials already finished"


def stopping_line(sweep: Sweep, running: int) -> str:
    return f"sweep {sweep.config.name}: stopping, {running} trials still running"


def ended_line(sweep: Sweep, status: Status) -> str:
    return f"sweep {sweep.config.name}: {status.value}, {sweep.finished}/{sweep.config.run_cap} trials finished"


def progress_line(sweep: Sweep, trial: FrozenTrial) -> str:
    """``[3/8] trial 3 PRUNED val_loss=2.30406 | lr=0.001644 | 0.6s | best val_loss=0.420724 (trial 1)``."""
    metric, run_cap = sweep.config.metric_name, sweep.config.run_cap
    if trial.state == TrialState.FAIL:
        outcome = f" ({record.reason_headline(trial)})"
    elif metric is None:
        outcome = ""
    elif trial.value is not None:
        outcome = f" {metric}={trial.value:.6g}"
    else:
        outcome = " pruned"
    duration = f"{trial.duration.total_seconds():.1f}s" if trial.duration else "-"
    best = sweep.best
    best_text = f" | best {metric}={best.value:.6g} (trial {best.number})" if best else ""
    if metric is not None and best is None:
        best_text = " | no best yet"
    return (
        f"[{sweep.finished:>{len(str(run_cap))}}/{run_cap}] trial {trial.number} {trial.state.name}{outcome} "
        f"| {format_params(record.params(trial), short=True)} | {duration}{best_text}"
    )


def format_params(params: dict[str, Any], short: bool = False) -> str:
    return " ".join(f"{k}={v:.4g}" if short and isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def summary(study: optuna.Study, metric: str | None) -> str:
    """The final ``{trial_number: value}`` dict, then the best trial, as the tutorial printed them.

    Without a metric the values are None, and there is no best trial.
    """
    trials = study.get_trials(deepcopy=False)
    values = {t.number: t.value if metric else None for t in trials if record.has_ended(t)}
    if metric is None:
        return f"{values}\nno metric: no best trial"
    best = record.best_trial(trials, study.direction.name.lower())
    if best is None:
        return f"{values}\nno trial completed"
    return f"{values}\nbest trial {best.number}: value={best.value!r} {format_params(record.params(best))}"


def failure_summary(sweep: Sweep) -> str:
    """Why the sweep gave up: each distinct failure reason (its first line) with its count."""
    trials = sweep.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    reasons = Counter(record.reason_headline(t) for t in trials if record.counts_as_failure(t))
    listed = "; ".join(f"{count}x {reason}" for reason, count in reasons.most_common())
    return (
        f"sweeps: gave up after {sweep.tally.failures} failed trials "
        f"(max_failures={sweep.config.max_failures}): {listed}"
    )
