"""Reading a trial's metrics from what its script prints.

The convention is Katib's: ``name=value`` tokens on stdout, several per line allowed
(``epoch=3 val_loss=0.41``). It needs no SDK in the script, works from any language, and a
line can be parsed the moment it is printed, which is what lets a pruner act while the script
still runs.

A traced Lightning ``Trainer`` (``sweeps.trainer``) reports through the same stream, on lines
tagged ``[sweeps]``. The script's own lines win: the trainer's values are taken only while the
script has printed no value of the metric (a script that prints it at each epoch end prints it
before the trainer's line for that epoch, so only its own values count). A traced W&B run
(``sweeps.wandb_runs``) reports on lines tagged ``[sweeps-wandb]``: what the script logs is its
own report, as a printed line is, and the run's summary is the final value, as W&B takes it.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from dataclasses import dataclass, field

from sweeps import trainer, wandb_runs

_TOKEN = re.compile(r"(?:^|(?<=[\s,;]))([A-Za-z_][\w.\-/]*)=([^\s,;]+)")
_STEP_NAMES = ("epoch", "step")


def parse_line(line: str) -> dict[str, float]:
    """The numeric ``name=value`` tokens of one line (``kernel=rbf`` is not a metric and is skipped)."""
    found = {}
    for name, text in _TOKEN.findall(line):
        try:
            found[name] = float(text)
        except ValueError:
            continue
    return found


@dataclass
class MetricReader:
    """Follows a trial's output as it is written and keeps what it says about the sweep's metrics.

    ``objectives`` are the metrics the sweep optimises: none, one or several. Every line carrying the
    first is an intermediate value (what a pruner looks at), at the step given by an ``epoch=`` or
    ``step=`` on the same line, else at the count of such lines so far. Each objective's value is
    its last value reported, unless a W&B run's summary says otherwise. Every other metric reported
    is kept too, its last value (:attr:`reported`). The last lines of output are kept for failure
    reasons.
    """

    objectives: list[str]
    tail_lines: int = 20
    values: list[tuple[int, float]] = field(default_factory=list)  # the first objective's, as reported
    by_script: dict[str, float] = field(default_factory=dict)  # last values: printed lines, W&B's log and summary
    by_trainer: dict[str, float] = field(default_factory=dict)  # last values: a traced Trainer's callback_metrics
    traced: bool = False  # a traced Trainer reports, and stops by itself when pruned
    checkpoint: str | None = None  # the traced Trainer's best checkpoint
    resumed_from: int | None = None  # the step a traced Trainer continued an interrupted trial at
    started: float = field(default_factory=time.monotonic)
    validation_times: list[float] = field(default_factory=list)  # when the traced Trainer validated
    _partial: str = ""
    _tail: deque[str] = field(init=False)

    def __post_init__(self) -> None:
        self._tail = deque(maxlen=self.tail_lines)

    def write(self, text: str) -> int:
        """File-like, so the reader can stand in for ``sys.stdout``."""
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._read_line(line)
        return len(text)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if self._partial:
            self._read_line(self._partial)
            self._partial = ""

    @property
    def metric(self) -> str | None:
        """The first objective: the one intermediate values and pruning follow."""
        return self.objectives[0] if self.objectives else None

    @property
    def reported(self) -> dict[str, float]:
        """The last value of every metric the trial reported, the script's own over its Trainer's."""
        return {**self.by_trainer, **self.by_script}

    @property
    def printed(self) -> bool:
        """Whether the script reported the first objective itself (not only its traced Trainer)."""
        return self.metric in self.by_script

    @property
    def final(self) -> float | None:
        """The first objective's value as reported (the script's own, else its Trainer's)."""
        return self.reported.get(self.metric) if self.metric is not None else None

    @property
    def tail(self) -> str:
        return "\n".join(self._tail)

    def _read_line(self, line: str) -> None:
        line = line.rstrip("\r")
        if line.startswith(wandb_runs.TAG):  # not output a user wrote: not in the tail
            self._read_wandb_line(line[len(wandb_runs.TAG) :].strip())
            return
        self._tail.append(line)
        if line.startswith(trainer.TAG):
            self._read_trainer_line(line[len(trainer.TAG) :].strip())
            return
        found = parse_line(line)
        if found:
            self._script_reported(found, _step(found))

    def _script_reported(self, found: dict[str, float], step: int | None) -> None:
        self.by_script.update(found)
        if self.metric in found:
            self.values.append((step if step is not None else len(self.values), found[self.metric]))

    def _read_trainer_line(self, rest: str) -> None:
        kind, _, rest = rest.partition(" ")
        if kind == trainer.TRACED:
            self.traced = True
        elif kind == trainer.CHECKPOINT:
            self.checkpoint = rest
        elif kind == trainer.RESUMED:
            self.resumed_from = _step(parse_line(rest))
        elif kind in (trainer.VALIDATION, trainer.FINAL, trainer.RESTORED):
            if kind == trainer.VALIDATION:
                self.validation_times.append(time.monotonic())
            found = parse_line(rest)
            self.by_trainer.update(found)
            if self.metric in found and not self.printed:
                step = _step(found)
                self.values.append((step if step is not None else len(self.values), found[self.metric]))

    def _read_wandb_line(self, rest: str) -> None:
        kind, content = wandb_runs.read(rest)
        if kind == wandb_runs.LOG:
            self._script_reported(content["logged"], int(content["step"]))
        elif kind == wandb_runs.SUMMARY:
            self.by_script.update(content)  # each key's value, as W&B takes it

    def prune_grace(self) -> float:
        """Seconds a pruned trial may take to stop by itself: none unless a traced Trainer does it."""
        return trainer.prune_grace(self.validation_times, self.started) if self.traced else 0.0


def _step(found: dict[str, float]) -> int | None:
    step = next((found[s] for s in _STEP_NAMES if s in found and math.isfinite(found[s])), None)
    return int(step) if step is not None else None
