"""Reading a trial's metric from what its script prints.

The convention is Katib's: ``name=value`` tokens on stdout, several per line allowed
(``epoch=3 val_loss=0.41``). It needs no SDK in the script, works from any language, and a
line can be parsed the moment it is printed, which is what lets a pruner act while the script
still runs.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
    """Follows a trial's output as it is written and keeps what it says about one metric.

    Every line carrying the metric is an intermediate value, at the step given by an ``epoch=`` or
    ``step=`` on the same line, else at the count of such lines so far; the last one is the
    final value. The last lines of output are kept for failure reasons.
    """

    metric: str
    tail_lines: int = 20
    values: list[tuple[int, float]] = field(default_factory=list)
    on_value: Callable[[int, float], Any] | None = None  # told of each value as it is read
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
    def final(self) -> float | None:
        return self.values[-1][1] if self.values else None

    @property
    def tail(self) -> str:
        return "\n".join(self._tail)

    def _read_line(self, line: str) -> None:
        line = line.rstrip("\r")
        self._tail.append(line)
        found = parse_line(line)
        if self.metric not in found:
            return
        step = next((found[s] for s in _STEP_NAMES if s in found and math.isfinite(found[s])), None)
        self.values.append((int(step) if step is not None else len(self.values), found[self.metric]))
        if self.on_value is not None:
            self.on_value(*self.values[-1])
