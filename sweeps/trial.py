"""One trial: the arguments its script receives, and how its run becomes a result.

A trial ends COMPLETE (a finite metric was reported), or FAIL with a reason a user can act on.
The reason travels with the result into the Optuna storage, so that a failed trial explains
itself wherever it is looked at.
"""

from __future__ import annotations

import math
import numbers
import os
import traceback
from dataclasses import asdict, dataclass
from typing import Any

from sweeps.metrics import MetricReader

COMPLETE = "COMPLETE"
FAIL = "FAIL"
PRUNED = "PRUNED"


def script_args(params: dict[str, Any]) -> list[str]:
    """W&B's ``${args}``: ``--name=value``, each value as recorded (``str`` of a float is its ``repr``)."""
    return [f"--{name}={value}" for name, value in params.items()]


@dataclass
class TrialResult:
    """What a finished trial reports back; plain data, so it can cross process boundaries."""

    number: int
    state: str
    value: float | None = None
    reason: str | None = None
    duration: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        return cls(**data)

    @classmethod
    def failed(cls, number: int, reason: str, duration: float = 0.0) -> TrialResult:
        return cls(number, FAIL, reason=reason, duration=duration)


def judge(
    number: int,
    reader: MetricReader,
    error: BaseException | None = None,
    script_globals: dict[str, Any] | None = None,
    duration: float = 0.0,
) -> TrialResult:
    """Decide how a script's run ended, from its output, its exception and its globals.

    The metric is taken from the printed ``name=value`` lines first, then from a global variable
    of the metric's name that the script left behind.
    """
    if isinstance(error, SystemExit) and error.code not in (None, 0):
        code = error.code if isinstance(error.code, int) else 1
        detail = "" if isinstance(error.code, int) else f" ({error.code})"
        return TrialResult.failed(number, _with_tail(f"exit code {code}{detail}", reader), duration)
    if error is not None and not isinstance(error, SystemExit):
        message = f"{type(error).__name__}: {error}"
        frames = traceback.extract_tb(error.__traceback__)
        if frames:
            message += f" (at {os.path.basename(frames[-1].filename)}:{frames[-1].lineno})"
        return TrialResult.failed(number, _with_tail(message, reader), duration)

    value = reader.final
    if value is None and script_globals is not None:
        value = _number(script_globals.get(reader.metric))
    if value is None:
        return TrialResult.failed(number, f"no metric {reader.metric} reported", duration)
    if math.isnan(value):
        return TrialResult.failed(number, "metric is NaN", duration)
    if math.isinf(value):
        return TrialResult.failed(number, "metric is inf", duration)
    return TrialResult(number, COMPLETE, value=value, duration=duration)


def _number(value: Any) -> float | None:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    return None


def _with_tail(message: str, reader: MetricReader) -> str:
    tail = reader.tail.strip()
    return f"{message}\n--- last output ---\n{tail}" if tail else message
