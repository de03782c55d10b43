"""The sweep's results as files: ``trials.csv`` (one row per trial) and ``best.json``.

They are views of the Optuna storage, which stays the source of truth, rewritten as trials end.
Each is written to a temporary file and renamed over the old one, so a reader (or a crash)
never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sweeps import record

FIXED_COLUMNS = [
    "number",
    "state",
    "value",
    "duration_s",
    "started",
    "completed",
    "retry_of",
    "attempt",
    "resumed_from",
    "fail_reason",
]


class Exports:
    """The files of one sweep, rewritten as trials end: at most once a second, and less often
    when writing them takes over a twentieth of that time (at thousands of trials)."""

    SECONDS = 1.0
    SHARE = 0.05

    def __init__(self, output_dir: Path, names: Sequence[str], directions: Sequence[str]) -> None:
        """``names``, ``directions``: the sweep's objectives (none, one or several)."""
        self.output_dir, self.names, self.directions = Path(output_dir), list(names), list(directions)
        self._written = -float("inf")  # when (monotonic)
        self._every = self.SECONDS

    def due(self) -> bool:
        return time.monotonic() - self._written > self._every

    def write(self, trials: Sequence[FrozenTrial]) -> None:
        started = time.monotonic()
        write_exports(trials, self.output_dir, self.names, self.directions)
        self._written = time.monotonic()
        self._every = max(self.SECONDS, (self._written - started) / self.SHARE)


def write_exports(
    trials: Sequence[FrozenTrial], output_dir: Path, names: Sequence[str], directions: Sequence[str]
) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(output_dir / "trials.csv", trials_csv(trials, names))
    best = best_json(trials, names, directions)
    if best is not None:
        _write_atomically(output_dir / "best.json", best)


def best_json(trials: Sequence[FrozenTrial], names: Sequence[str], directions: Sequence[str]) -> str | None:
    """``best.json``: the best trial's number, value and parameters (one objective), or the Pareto set
    (several); None before a trial completed, and for a sweep without a metric."""
    best = record.best_trials(trials, directions)
    if not best:
        return None
    if len(names) == 1:
        (trial,) = best
        summary = {"number": trial.number, "metric": names[0], "value": trial.value, "params": record.params(trial)}
    else:
        summary = {
            "metrics": [{"name": name, "goal": goal} for name, goal in zip(names, directions, strict=True)],
            "pareto": [
                {"number": t.number, "values": dict(zip(names, t.values, strict=True)), "params": record.params(t)}
                for t in best
            ],
        }
    return json.dumps(summary, indent=2) + "\n"


def trials_csv(trials: Sequence[FrozenTrial], names: Sequence[str] = ("value",)) -> str:
    """One row per trial: its number, state, value (blank for a sweep without a metric; one column per
    objective, named after it, for several), parameters, the last value of every other metric it
    reported, the devices and cores it ran on (when the config manages them), times, retries, the step
    a run continuing an interrupted trial started at, and failure reason."""
    objectives = ["value"] if len(names) <= 1 else list(names)
    params = list(dict.fromkeys(name for t in trials for name in record.params(t)))
    taken = {*FIXED_COLUMNS, *objectives, *names, *params}  # the objective is the value column
    metrics = list(
        dict.fromkeys(k for t in trials for k in t.user_attrs.get(record.METRICS_ATTR, {}) if k not in taken)
    )
    used = list(dict.fromkeys(k for t in trials for k in t.user_attrs.get(record.RESOURCES_ATTR, {})))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIXED_COLUMNS[:2] + objectives + params + metrics + used + FIXED_COLUMNS[3:])
    for t in trials:
        if t.state == TrialState.WAITING:
            continue
        values, last = record.params(t), t.user_attrs.get(record.METRICS_ATTR, {})
        shown = t.values if names and t.values is not None else [None] * len(objectives)
        writer.writerow(
            [t.number, t.state.name]
            + [_blank(v) for v in shown]
            + [_blank(values.get(name)) for name in params]
            + [_blank(last.get(name)) for name in metrics]
            + [_blank(t.user_attrs.get(record.RESOURCES_ATTR, {}).get(name)) for name in used]
            + [
                _blank(t.duration.total_seconds() if t.duration else None),
                _blank(t.datetime_start and t.datetime_start.isoformat(timespec="seconds")),
                _blank(t.datetime_complete and t.datetime_complete.isoformat(timespec="seconds")),
                _blank(t.user_attrs.get(record.RETRY_OF_ATTR)),
                _blank(t.user_attrs.get(record.ATTEMPT_ATTR)),
                _blank(t.user_attrs.get(record.RESUMED_FROM_ATTR)),
                _blank(t.user_attrs.get(record.REASON_ATTR)),
            ]
        )
    return out.getvalue()


def _blank(value: Any) -> Any:
    return "" if value is None else value


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
