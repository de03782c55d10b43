"""What the sweep prints: one progress line per ended trial, and the summary at the end."""

from __future__ import annotations

from collections import Counter
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.sweep import NOT_THE_TRIALS_FAULT, REASON_ATTR, Sweep, trial_params


def progress_line(sweep: Sweep, trial: FrozenTrial) -> str:
    metric = sweep.config.metric.name
    if trial.state == TrialState.COMPLETE:
        outcome = f"{metric}={trial.value:.6g}"
    elif trial.state == TrialState.PRUNED:
        outcome = f"{metric}={trial.value:.6g}" if trial.value is not None else "pruned"
    else:
        outcome = f"({reason_headline(trial)})"
    duration = f"{trial.duration.total_seconds():.1f}s" if trial.duration else "-"
    best = f"best {metric}={sweep.best.value:.6g} (trial {sweep.best.number})" if sweep.best else "no best yet"
    return (
        f"[{sweep.finished:>{len(str(sweep.config.budget))}}/{sweep.config.budget}] "
        f"trial {trial.number} {trial.state.name} {outcome} | {format_params(trial_params(trial), short=True)} "
        f"| {duration} | {best}"
    )


def reason_headline(trial: FrozenTrial) -> str:
    """A failed trial's reason without the output that follows it: ``exit code 3``."""
    reason = str(trial.user_attrs.get(REASON_ATTR) or "no reason")
    return reason.splitlines()[0] if reason.strip() else "no reason"


def format_params(params: dict[str, Any], short: bool = False) -> str:
    return " ".join(f"{k}={v:.4g}" if short and isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def summary(study: optuna.Study) -> str:
    """The final ``{trial_number: value}`` dict, then the best trial, as the tutorial printed them."""
    trials = study.get_trials(deepcopy=False)
    values = {t.number: t.value for t in trials if t.state.is_finished()}
    lines = [str(values)]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        lines.append(f"best trial {best.number}: value={best.value!r} {format_params(trial_params(best))}")
    else:
        lines.append("no trial completed")
    return "\n".join(lines)


def failure_summary(sweep: Sweep) -> str:
    """Why the sweep gave up: each distinct failure reason (its first line) with its count."""
    reasons = Counter(
        reason_headline(t)
        for t in sweep.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
        if t.user_attrs.get(REASON_ATTR) not in NOT_THE_TRIALS_FAULT
    )
    listed = "; ".join(f"{count}x {reason}" for reason, count in reasons.most_common())
    return f"sweeps: gave up after {sweep.failures} failed trials (max_failures={sweep.config.failure_budget}): {listed}"
