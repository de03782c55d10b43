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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial, TrialState

from sweeps.sweep import ATTEMPT_ATTR, REASON_ATTR, RETRY_OF_ATTR, trial_params

FIXED_COLUMNS = ["number", "state", "value", "duration_s", "started", "completed", "retry_of", "attempt", "fail_reason"]


def write_exports(trials: Sequence[FrozenTrial], output_dir: Path, metric: str, goal: str) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(output_dir / "trials.csv", trials_csv(trials))
    best = best_json(trials, metric, goal)
    if best is not None:
        _write_atomically(output_dir / "best.json", best)


def best_json(trials: Sequence[FrozenTrial], metric: str, goal: str) -> str | None:
    """``best.json``: the best trial's number, value and parameters; None before a trial completed."""
    best = best_trial(trials, goal)
    if best is None:
        return None
    summary = {"number": best.number, "metric": metric, "value": best.value, "params": trial_params(best)}
    return json.dumps(summary, indent=2) + "\n"


def trials_csv(trials: Sequence[FrozenTrial]) -> str:
    params = list(dict.fromkeys(name for t in trials for name in trial_params(t)))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(FIXED_COLUMNS[:3] + params + FIXED_COLUMNS[3:])
    for t in trials:
        if t.state == TrialState.WAITING:
            continue
        values = trial_params(t)
        writer.writerow(
            [t.number, t.state.name, _blank(t.value)]
            + [_blank(values.get(name)) for name in params]
            + [
                _blank(t.duration.total_seconds() if t.duration else None),
                _blank(t.datetime_start and t.datetime_start.isoformat(timespec="seconds")),
                _blank(t.datetime_complete and t.datetime_complete.isoformat(timespec="seconds")),
                _blank(t.user_attrs.get(RETRY_OF_ATTR)),
                _blank(t.user_attrs.get(ATTEMPT_ATTR)),
                _blank(t.user_attrs.get(REASON_ATTR)),
            ]
        )
    return out.getvalue()


def best_trial(trials: Sequence[FrozenTrial], goal: str) -> FrozenTrial | None:
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    pick = max if goal == "maximize" else min
    return pick(complete, key=lambda t: t.value) if complete else None


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
