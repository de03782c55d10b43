"""What a worker prints: a line when it starts, stops and ends, one per ended trial, and the summary.

The headless app's output is its interface (a user reads it, a job log keeps it), so every line
is written here, in one voice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps import record
from sweeps.control import Status

if TYPE_CHECKING:
    from sweeps.config import SweepConfig
    from sweeps.sweep import Sweep


def at_once_text(config: SweepConfig) -> str:
    """``4 at once``, and where when not here: ``4 at once on the Ray cluster at ray://head:10001``."""
    where = f" on the Ray cluster at {config.ray_address}" if config.ray_address else ""
    return f"{config.parallel} at once{where}"


def started_line(sweep: Sweep) -> str:
    """``sweep s: 0/8 trials already finished, 4 at once: gpus 0; gpus 0; gpus 1; gpus 1``."""
    config = sweep.config
    line = f"sweep {config.name}: {sweep.finished}/{config.run_cap} trials already finished, {at_once_text(config)}"
    shares = [" ".join(f"{name} {ids}" for name, ids in share.describe().items()) for share in config.shares]
    return f"{line}: {'; '.join(shares)}" if any(shares) else line


def stopping_line(sweep: Sweep, running: int) -> str:
    return f"sweep {sweep.config.name}: stopping, {running} trials still running"


def ended_line(sweep: Sweep, status: Status) -> str:
    return f"sweep {sweep.config.name}: {status.value}, {sweep.finished}/{sweep.config.run_cap} trials finished"


def progress_line(sweep: Sweep, trial: FrozenTrial) -> str:
    """``[3/8] trial 3 PRUNED val_loss=2.30406 | lr=0.001644 | 0.6s gpus 1 | best val_loss=0.420724 (trial 1)``."""
    names, run_cap = sweep.config.metric_names, sweep.config.run_cap
    if trial.state == TrialState.FAIL:
        outcome = f" ({record.reason_headline(trial)})"
    elif not names:
        outcome = ""
    elif trial.values is not None:
        outcome = " " + format_values(names, trial.values)
    else:
        outcome = " pruned"
    duration = f"{trial.duration.total_seconds():.1f}s" if trial.duration else "-"
    used = "".join(f" {name} {ids}" for name, ids in trial.user_attrs.get(record.RESOURCES_ATTR, {}).items())
    best, best_text = sweep.best, ""
    if len(names) == 1:
        best_text = f" | best {format_values(names, best.values)} (trial {best.number})" if best else " | no best yet"
    return (
        f"[{sweep.finished:>{len(str(run_cap))}}/{run_cap}] trial {trial.number} {trial.state.name}{outcome} "
        f"| {format_params(record.params(trial), short=True)} | {duration}{used}{best_text}"
    )


def format_values(names: Sequence[str], values: Sequence[float]) -> str:
    """``loss=0.41 latency=12.5``: a trial's objectives."""
    return " ".join(f"{name}={value:.6g}" for name, value in zip(names, values, strict=True))


def format_params(params: dict[str, Any], short: bool = False) -> str:
    return " ".join(f"{k}={v:.4g}" if short and isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def summary(study: optuna.Study, names: Sequence[str]) -> str:
    """The final ``{trial_number: value}`` dict, then the best trial, as the tutorial printed them.

    Without a metric the values are None, and there is no best trial; with several objectives each
    value is a list, and the best trials are the Pareto set, a line each.
    """
    trials = study.get_trials(deepcopy=False)
    ended = [t for t in trials if record.has_ended(t)]
    if not names:
        return f"{ {t.number: None for t in ended} }\nno metric: no best trial"
    if len(names) == 1:
        best = record.best_trial(trials, study.direction.name.lower())
        values = {t.number: t.value for t in ended}
        if best is None:
            return f"{values}\nno trial completed"
        return f"{values}\nbest trial {best.number}: value={best.value!r} {format_params(record.params(best))}"
    values = {t.number: t.values for t in ended}
    pareto = record.best_trials(trials, [d.name.lower() for d in study.directions])
    lines = [str(values), f"Pareto set: {len(pareto)} trials" if pareto else "no trial completed"]
    lines += [f"  trial {t.number}: {format_values(names, t.values)} {format_params(record.params(t))}" for t in pareto]
    return "\n".join(lines)


def failure_summary(sweep: Sweep) -> str:
    """Why the sweep gave up: each distinct failure reason (its first line) with its count."""
    trials = sweep.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    reasons = Counter(record.reason_headline(t) for t in trials if record.counts_as_failure(t))
    listed = "; ".join(f"{count}x {reason}" for reason, count in reasons.most_common())
    return (
        f"sweeps: gave up after {sweep.tally.failures} failed trials "
        f"(max_failures={sweep.config.max_failures}): {listed}"
    )
