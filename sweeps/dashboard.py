"""What the sweep's page shows, computed from the Optuna storage without Lightning or Streamlit.

The page polls every second. At 10,000 trials it must not rebuild its table, history and plot on
every poll, so :class:`TrialLog` takes the storage's trials as they are now and says whether
anything changed; an ended trial never changes again, so only trials that were still running
(or are new) are looked at. Everything heavier (the table's rows, the history, the parameter
importance) is derived from the log only when its :attr:`TrialLog.version` moved, once for every
browser session of the page's server (:class:`SweepView`).
"""

from __future__ import annotations

import math
import os
import random
import statistics
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps import record
from sweeps.config import SweepConfig, goals_text
from sweeps.storage import redacted
from sweeps.tally import Tally

if TYPE_CHECKING:
    import pandas as pd

#: The states the page counts, in the order it shows them (a WAITING trial is a queued retry, not shown).
STATES = ("COMPLETE", "PRUNED", "FAIL", "RUNNING")


class TrialLog:
    """The sweep's trials as last read from the storage, their tally, and a version that moves when they change."""

    def __init__(self, directions: Sequence[str]) -> None:
        """``directions``: each objective's goal; none for a sweep without a metric."""
        self.directions = list(directions)
        self.trials: list[FrozenTrial] = []
        self.tally = Tally(directions)
        self.version = 0

    def update(self, trials: Sequence[FrozenTrial]) -> bool:
        """Take the storage's trials (``study.get_trials(deepcopy=False)``); whether any started or ended."""
        changed = self.tally.update(trials)
        if changed:
            self.trials = list(trials)
            self.version += 1
        return changed


class SweepView:
    """One sweep's :class:`TrialLog` and what was derived from it, shared by every browser session of
    the page's server: a reload, a second tab, or the page's warm-up run before anyone opens it
    leaves its reads and derivations to the next session (at 10,000 trials a reload cost the page's
    server 1.1–1.7 s of CPU with a view per session, 0.3–0.5 s with this one).

    Sessions run on threads of their own; the log is updated, and each thing derived from it
    built, under one lock, so that a derivation sees one version of the log and is built once.
    """

    def __init__(self, directions: Sequence[str], objectives: int) -> None:
        """``objectives``: how many the sweep has (each has its own importance)."""
        self.log = TrialLog(directions)
        self._importance = [Importance() for _ in range(objectives)]
        self._derived: dict[str, tuple[int, Any]] = {}
        self._lock = threading.RLock()  # a derivation may derive another

    def update(self, trials: Sequence[FrozenTrial]) -> None:
        """Take the storage's trials as read now (``study.get_trials(deepcopy=False)``)."""
        with self._lock:
            self.log.update(trials)

    def derived(self, name: str, build: Callable[[TrialLog], Any]) -> Any:
        """``build(log)``, built again only once the log's version moved."""
        with self._lock:
            version, value = self._derived.get(name, (-1, None))
            if version != self.log.version:
                value = build(self.log)
                self._derived[name] = (self.log.version, value)
            return value

    def importance(self, objective: int) -> Importance:
        """The parameter importance for ``objective``, recomputed first if due."""
        with self._lock:
            importance = self._importance[objective]
            importance.update(self.log, objective)
            return importance


@dataclass(frozen=True)
class Progress:
    """The status line: how far the sweep is, how long it has run and how long it may still take."""

    finished: int
    run_cap: int
    elapsed: float | None  # seconds since Run (a sweep found finished: its trials' span), None before
    remaining: float | None  # estimated seconds left, None while there is nothing to go by

    @property
    def fraction(self) -> float:
        return min(self.finished / self.run_cap, 1.0) if self.run_cap else 1.0


def progress(log: TrialLog, run_cap: int, started: float, ended: float, now: float | None = None) -> Progress:
    """``started``/``ended``: when the sweep started and ended in this app (epoch seconds, 0 if not).

    Time left extrapolates the rate at which trials finished since this app started the sweep
    (trials kept from an earlier run do not count towards the rate). An app that found its sweep
    over (``run_cap`` or the target reached) ran it for no time at all: its elapsed time is then the
    span of the sweep's trials, from the first start to the last end, which is what its reader wants
    to know.
    """
    now = time.time() if now is None else now
    finished = log.tally.finished
    if not started:
        return Progress(finished, run_cap, None, None)
    elapsed = (ended or now) - started
    if ended and not any(t.datetime_start and t.datetime_start.timestamp() >= started for t in log.trials):
        elapsed = _span(log.trials)
    if finished >= run_cap:
        return Progress(finished, run_cap, elapsed, 0.0)
    if ended:  # stopped or gave up: nothing more will run
        return Progress(finished, run_cap, elapsed, None)
    this_run = sum(
        record.is_finished(t) and t.datetime_complete is not None and t.datetime_complete.timestamp() >= started
        for t in log.trials
    )
    remaining = (run_cap - finished) * elapsed / this_run if this_run else None
    return Progress(finished, run_cap, elapsed, remaining)


def _span(trials: list[FrozenTrial]) -> float | None:
    """From the first trial's start to the last one's end (None without an ended trial)."""
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    ends = [t.datetime_complete for t in trials if t.datetime_complete is not None]
    return (max(ends) - min(starts)).total_seconds() if starts and ends else None


def format_duration(seconds: float | None) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``12 s``, ``0.4 s``; ``—`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 9.95:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    if seconds >= 60:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds} s"


def objectives_text(config: SweepConfig) -> str:
    """``minimize val_loss (target 0.1)``, ``minimize loss, maximize accuracy``, or that there is none."""
    if not config.objectives:
        return "no metric (a trial is COMPLETE when its program exits 0)"
    target = f" (target {config.target:g})" if config.target is not None else ""
    return goals_text(config.directions, config.metric_names) + target


def config_view(config: SweepConfig) -> dict[str, Any]:
    """The config as the page shows it, read-only: plain values, the space as the user wrote it."""
    view: dict[str, Any] = {
        "name": config.name,
        "program": str(config.program),
        "method": config.method,
        "metric": objectives_text(config),
        "run_cap": config.run_cap,
        "parallel": config.parallel,
        "storage": redacted(config.storage),
    }
    if config.launch.command:
        view["command"] = " ".join(config.launch.command)
    if config.early_terminate is not None:
        view["early_terminate"] = config.early_terminate.model_dump(exclude_unset=True)
    view["space"] = {
        name: spec.model_dump(exclude_unset=True, by_alias=True) for name, spec in config.parameters.items()
    }
    return view


def trial_rows(log: TrialLog, names: Sequence[str]) -> pd.DataFrame:
    """The trials table: number, state, each objective's value, parameters, every other metric reported,
    the devices and cores it ran on, the step it resumed from, duration, failure reason."""
    import pandas as pd

    rows = []
    for t in log.trials:
        if t.state == TrialState.WAITING:  # a queued retry: not a trial yet
            continue
        row: dict[str, Any] = {"trial": t.number, "state": t.state.name}
        row.update(zip(names, t.values if t.values is not None else [None] * len(names), strict=True))
        row.update(record.params(t))
        row.update({k: v for k, v in t.user_attrs.get(record.METRICS_ATTR, {}).items() if k not in row})
        row.update(t.user_attrs.get(record.RESOURCES_ATTR, {}))
        if record.RESUMED_FROM_ATTR in t.user_attrs:
            row["resumed from"] = t.user_attrs[record.RESUMED_FROM_ATTR]
        row["duration (s)"] = t.duration.total_seconds() if t.duration else None
        row["failure reason"] = record.reason_headline(t) if t.state == TrialState.FAIL else ""
        rows.append(row)
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        return pd.DataFrame(columns=["trial", "state", *names, "duration (s)", "failure reason"])
    # duration and reason last, whatever parameters and metrics a later trial brought
    last = ["duration (s)", "failure reason"]
    return frame[[c for c in frame.columns if c not in last] + last]


def reported_metrics(log: TrialLog, names: Sequence[str]) -> list[str]:
    """Every metric a trial reported that is neither an objective nor a parameter (a script may print
    those back): what the plot may show besides."""
    taken = {*names, *(name for t in log.trials for name in record.params(t))}
    return list(
        dict.fromkeys(k for t in log.trials for k in t.user_attrs.get(record.METRICS_ATTR, {}) if k not in taken)
    )


def history(log: TrialLog, names: Sequence[str], objective: int = 0) -> pd.DataFrame:
    """The optimisation history of one objective: each COMPLETE trial's value of it and the best so far."""
    import pandas as pd

    name = names[objective] if names else None
    rows, best = [], None
    if name is None:  # no metric
        return pd.DataFrame(rows, columns=["trial", name, "best so far"])
    goal = log.directions[objective]
    for t in sorted((t for t in log.trials if record.has_value(t)), key=lambda t: t.number):
        value = t.values[objective]
        best = value if best is None or record.better(value, best, goal) else best
        rows.append({"trial": t.number, name: value, "best so far": best})
    return pd.DataFrame(rows, columns=["trial", name, "best so far"])


def pareto(log: TrialLog, names: Sequence[str], x: int, y: int) -> pd.DataFrame:
    """Two objectives of every COMPLETE trial, and whether it is on the front of those two."""
    import pandas as pd

    complete = [t for t in log.trials if record.has_value(t)]
    projected = [_projected(t, (x, y)) for t in complete]
    front = {t.number for t in record.best_trials(projected, [log.directions[x], log.directions[y]])}
    rows = [
        {"trial": t.number, names[x]: t.values[x], names[y]: t.values[y], "front": t.number in front} for t in complete
    ]
    return pd.DataFrame(rows, columns=["trial", names[x], names[y], "front"])


#: The learning-curves chart shows at most this many trials' curves: the latest ones.
CURVES_SHOWN = 200


def learning_curves(log: TrialLog, shown: int = CURVES_SHOWN) -> pd.DataFrame:
    """The intermediate values of the latest ``shown`` trials that reported some: one row per
    ``(trial, step, value)``, with the trial's state, and ``stopped`` true on a PRUNED trial's row at
    the step the pruner stopped it (its last reported step when the decision's step is not recorded)."""
    import pandas as pd

    rows = []
    curved = [t for t in log.trials if t.intermediate_values and t.state != TrialState.WAITING]
    for t in sorted(curved, key=lambda t: t.number)[-shown:]:
        steps = sorted(t.intermediate_values)
        stopped_at = t.user_attrs.get(record.PRUNED_AT_ATTR, steps[-1]) if t.state == TrialState.PRUNED else None
        for step in steps:
            value = t.intermediate_values[step]
            if math.isfinite(value):
                rows.append(
                    {
                        "trial": t.number,
                        "step": step,
                        "value": value,
                        "state": t.state.name,
                        "stopped": step == stopped_at,
                    }
                )
    return pd.DataFrame(rows, columns=["trial", "step", "value", "state", "stopped"])


@dataclass(frozen=True)
class PruningDecision:
    """Why the pruner stopped a trial: its value at the step it stopped, against the other trials' there."""

    step: int
    value: float
    others: int  # finished trials (COMPLETE, PRUNED) that had a value at that step when it was stopped
    median: float | None
    best: float | None

    def text(self, metric: str) -> str:
        if not self.others:
            return f"pruned at step {self.step} ({metric} = {self.value:.6g}); no finished trial had reached that step"
        return (
            f"pruned at step {self.step}: {metric} = {self.value:.6g}, against a median of {self.median:.6g} and a "
            f"best of {self.best:.6g} at that step over the {self.others} trial{'s' * (self.others != 1)} "
            "finished by then"
        )


def pruning_decision(log: TrialLog, trial: FrozenTrial) -> PruningDecision | None:
    """The pruner's decision on a PRUNED trial, in the terms Optuna's pruners decide in (the trial's value
    at the step, the others' median and best there); None for any other trial."""
    if trial.state != TrialState.PRUNED or not trial.intermediate_values or not log.directions:
        return None
    step = trial.user_attrs.get(record.PRUNED_AT_ATTR, max(trial.intermediate_values))
    value = trial.intermediate_values.get(step)
    if value is None:
        return None
    stopped = trial.datetime_complete
    others = [  # what the pruner compares with: trials finished by then, at the same step
        t.intermediate_values[step]
        for t in log.trials
        if t.state in record.FINISHED
        and t.number != trial.number
        and step in t.intermediate_values
        and math.isfinite(t.intermediate_values[step])
        and (stopped is None or (t.datetime_complete is not None and t.datetime_complete <= stopped))
    ]
    if not others:
        return PruningDecision(step, value, 0, None, None)
    best = min(others) if log.directions[0] == "minimize" else max(others)
    return PruningDecision(step, value, len(others), statistics.median(others), best)


def trial_details(trial: FrozenTrial, names: Sequence[str]) -> dict[str, Any]:
    """What the trial view lists: state, each objective, duration, retry, resources, where it resumed."""
    details: dict[str, Any] = {"state": trial.state.name}
    if trial.values is not None and names:
        details.update(zip(names, trial.values, strict=True))
    details["duration (s)"] = round(trial.duration.total_seconds(), 3) if trial.duration else None
    for key, label in ((record.RETRY_OF_ATTR, "retry of"), (record.ATTEMPT_ATTR, "attempt")):
        if key in trial.user_attrs:
            details[label] = trial.user_attrs[key]
    details.update(trial.user_attrs.get(record.RESOURCES_ATTR, {}))
    if record.RESUMED_FROM_ATTR in trial.user_attrs:
        details["resumed from"] = trial.user_attrs[record.RESUMED_FROM_ATTR]
    if record.CHECKPOINT_ATTR in trial.user_attrs:
        details["checkpoint"] = trial.user_attrs[record.CHECKPOINT_ATTR]
    return details


def log_tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a trial's log, read from its end (a log may be large); "" if none."""
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            size = log.tell()
            log.seek(max(0, size - 256 * lines))
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _projected(trial: FrozenTrial, objectives: Sequence[int]) -> FrozenTrial:
    """The trial with only these objectives' values (Optuna's front takes a trial's values whole)."""
    copy = optuna.trial.create_trial(state=trial.state, values=[trial.values[i] for i in objectives])
    copy.number = trial.number
    return copy


@dataclass(frozen=True)
class FailureGroup:
    reason: str
    count: int
    trials: tuple[int, ...]  # the latest few, newest first


def failures(log: TrialLog, shown: int = 5) -> list[FailureGroup]:
    """FAIL trials grouped by the first line of their reason, most frequent first."""
    groups: dict[str, list[int]] = {}
    for t in log.trials:
        if t.state == TrialState.FAIL:
            groups.setdefault(record.reason_headline(t), []).append(t.number)
    return [
        FailureGroup(reason, len(numbers), tuple(sorted(numbers, reverse=True)[:shown]))
        for reason, numbers in sorted(groups.items(), key=lambda item: -len(item[1]))
    ]


class Importance:
    """Optuna's parameter importance, computed rarely: it takes seconds on thousands of trials.

    It is recomputed once at least ``MIN_TRIALS`` trials are COMPLETE, then only when their number
    has grown by ``GROWTH`` (a fifth) and ``MIN_SECONDS`` have passed, on at most ``SAMPLE``
    of them (drawn at random, the same draw for the same trials) so that its cost stays bounded.
    """

    MIN_TRIALS = 10
    GROWTH = 1.2
    MIN_SECONDS = 30.0
    SAMPLE = 1000

    def __init__(self) -> None:
        self.values: dict[str, float] = {}
        self.based_on = 0  # COMPLETE trials the values were computed from
        self.seconds = 0.0  # how long the last computation took
        self._at = -math.inf

    def due(self, complete: int, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if complete < self.MIN_TRIALS:
            return False
        if not self.based_on:
            return True
        return complete >= self.based_on * self.GROWTH and now - self._at >= self.MIN_SECONDS

    def update(self, log: TrialLog, objective: int = 0, now: float | None = None) -> bool:
        """Recompute if due, for one objective; whether the values changed."""
        complete = [t for t in log.trials if record.has_value(t)] if log.directions else []
        if not self.due(len(complete), now):
            return False
        started = time.monotonic()
        self.values = param_importances(complete, log.directions, self.SAMPLE, objective)
        self.seconds = time.monotonic() - started
        self.based_on = len(complete)
        self._at = time.monotonic() if now is None else now
        return True


def param_importances(
    complete: Sequence[FrozenTrial], directions: Sequence[str], sample: int, objective: int = 0
) -> dict[str, float]:
    """``optuna.importance.get_param_importances`` for one objective, on at most ``sample`` of the
    COMPLETE trials.

    Optuna's importance needs a study; an in-memory copy holds the sample. Parameters sampled as
    quantiles are reported under their own name. Empty when the trials share no varying parameter.
    """
    if len(complete) > sample:
        complete = random.Random(len(complete)).sample(list(complete), sample)
    study = optuna.create_study(directions=list(directions))
    study.add_trials(complete)
    target = None
    if len(directions) > 1:  # Optuna's evaluator takes a target as to be minimised
        sign = -1.0 if directions[objective] == "maximize" else 1.0
        target = lambda t: sign * t.values[objective]  # noqa: E731
    try:
        with warnings.catch_warnings():  # that it minimises a target: it is signed so
            warnings.simplefilter("ignore", UserWarning)
            values = optuna.importance.get_param_importances(study, target=target)
    except (RuntimeError, ValueError):  # e.g. no parameter common to all the trials
        return {}
    return {name.removesuffix(record.QUANTILE_SUFFIX): value for name, value in values.items()}
