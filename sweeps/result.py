"""How one trial's run becomes its result: COMPLETE, PRUNED, or FAIL with a reason a user can act on.

The reason travels with the result into the Optuna storage, so that a failed trial explains itself
wherever it is looked at.
"""

from __future__ import annotations

import math
import signal
from dataclasses import asdict, dataclass, field
from typing import Any

from optuna.trial import TrialState

from sweeps.metrics import MetricReader
from sweeps.record import CHECKPOINT_ATTR, METRICS_ATTR, RESOURCES_ATTR, RESUMED_FROM_ATTR
from sweeps.resources import cap_text
from sweeps.supervise import ProcessEnd

COMPLETE, PRUNED, FAIL = TrialState.COMPLETE.name, TrialState.PRUNED.name, TrialState.FAIL.name


@dataclass
class TrialResult:
    """What an ended trial reports back; plain data, so it can cross process boundaries."""

    number: int
    state: str  # COMPLETE, PRUNED or FAIL
    value: float | None = None  # the objective's value, for a sweep of one objective
    reason: str | None = None
    duration: float = 0.0
    user_attrs: dict[str, Any] = field(default_factory=dict)  # more to keep on the trial, e.g. its checkpoint
    values: list[float] | None = None  # each objective's value, for a sweep of several (as Optuna's ``values``)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        return cls(**data)

    @classmethod
    def failed(cls, number: int, reason: str, duration: float = 0.0) -> TrialResult:
        return cls(number, FAIL, reason=reason, duration=duration)

    @property
    def finished(self) -> bool:
        """Whether it counts towards ``run_cap``: COMPLETE or PRUNED."""
        return self.state in (COMPLETE, PRUNED)


def judge(
    number: int, reader: MetricReader, end: ProcessEnd, duration: float = 0.0, timeout: float | None = None
) -> TrialResult:
    """Decide how a trial ended, from how its process ended and what it reported.

    Each objective's value is taken from what the script reported (printed ``name=value`` lines, a
    W&B run's log and summary) first, then from a global variable of its name that the script left
    behind, then from a traced Lightning Trainer's ``callback_metrics``. Every metric reported is
    kept with the trial.
    """
    attrs: dict[str, Any] = {CHECKPOINT_ATTR: reader.checkpoint} if reader.checkpoint else {}
    if end.used:
        attrs[RESOURCES_ATTR] = end.used
    if reader.resumed_from is not None:
        attrs[RESUMED_FROM_ATTR] = reader.resumed_from
    finite = {name: value for name, value in reader.reported.items() if math.isfinite(value)}
    if finite:  # NaN and inf are not JSON, which the storage and the app's state are written in
        attrs[METRICS_ATTR] = finite
    if end.memory_cap is not None:
        return _failed(number, _with_tail(f"out of memory (cap {cap_text(end.memory_cap)})", reader), duration, attrs)
    if end.timed_out:
        return _failed(number, _with_tail(f"timeout after {timeout:g} s", reader), duration, attrs)
    if end.pruned:
        return TrialResult(number, PRUNED, value=reader.final, duration=duration, user_attrs=attrs)
    if end.error is not None:
        return _failed(number, _with_tail(end.error, reader), duration, attrs)
    if end.signal is not None:
        return _failed(number, _with_tail(f"killed by signal {_signal_name(end.signal)}", reader), duration, attrs)
    if end.exit_code:
        return _failed(number, _with_tail(f"exit code {end.exit_code}", reader), duration, attrs)

    values = []
    for name in reader.objectives:
        value = reader.by_script.get(name)
        if value is None and end.script_globals:
            value = end.script_globals.get(name)
        if value is None:
            value = reader.by_trainer.get(name)
        which = "metric" if len(reader.objectives) == 1 else f"metric {name}"
        if value is None:
            return _failed(number, f"no metric {name} reported", duration, attrs)
        if math.isnan(value):
            return _failed(number, f"{which} is NaN", duration, attrs)
        if math.isinf(value):
            return _failed(number, f"{which} is inf", duration, attrs)
        values.append(value)
    if len(values) > 1:
        return TrialResult(number, COMPLETE, duration=duration, user_attrs=attrs, values=values)
    # One objective, or none: the script ran to its end (a sweep without a metric).
    return TrialResult(number, COMPLETE, value=values[0] if values else None, duration=duration, user_attrs=attrs)


def _failed(number: int, reason: str, duration: float, attrs: dict[str, Any]) -> TrialResult:
    return TrialResult(number, FAIL, reason=reason, duration=duration, user_attrs=attrs)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def _with_tail(message: str, reader: MetricReader) -> str:
    tail = reader.tail.strip()
    return f"{message}\n--- last output ---\n{tail}" if tail else message
