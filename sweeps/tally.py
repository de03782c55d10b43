"""What the stored trials say about a sweep: how many finished, failed, run and wait, which is best.

One model of the sweep's state, read by everything that decides or shows: the sweep (is there room
for another trial? is it done?), the console and the page. It is built from the storage's trials
and nothing else, and it is incremental: a trial that has ended never changes again, so each
update looks only at trials it has not seen end, and costs a set lookup per ended trial.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Sequence

from optuna.trial import FrozenTrial, TrialState

from sweeps import record


class Tally:
    """Counts over a study's trials as stored, updated with :meth:`update`."""

    def __init__(self, directions: Sequence[str], target: float | None = None) -> None:
        """``directions``: each objective's goal (``minimize``, ``maximize``): none for a sweep without a
        metric, several for several objectives (whose best trials are a Pareto set, not a tally's)."""
        self.directions = list(directions)
        self.goal = directions[0] if len(directions) == 1 else None  # one objective: its best trial is kept
        self.target = target
        self.best: FrozenTrial | None = None  # the best COMPLETE trial so far (one objective)
        self.failures = 0  # FAIL trials that count towards max_failures (not the interrupted or lost)
        self.target_reached = False
        self._ended: Counter[TrialState] = Counter()
        self._ended_numbers: set[int] = set()
        self._finished_numbers: list[int] = []  # sorted, for places_taken_below
        self._failed_numbers: list[int] = []  # sorted, for places_free_below
        self._open: dict[int, TrialState] = {}  # trials not ended yet (RUNNING, WAITING), by number
        self.trials_seen = 0  # the highest trial number seen, plus one: the study has at least this many

    def update(self, trials: Iterable[FrozenTrial]) -> bool:
        """Take ``trials`` as they are stored now: all of the study's, or only those just written.

        Whether anything changed: a trial started, ended, or was queued.
        """
        changed = False
        for trial in trials:
            number = trial.number
            if number in self._ended_numbers:
                continue
            self.trials_seen = max(self.trials_seen, number + 1)
            if record.has_ended(trial):
                self._ended_numbers.add(number)
                self._open.pop(number, None)
                self._count_ended(trial)
                changed = True
            elif self._open.get(number) != trial.state:
                self._open[number] = trial.state
                changed = True
        return changed

    @property
    def open_numbers(self) -> list[int]:
        """The trials not ended when last seen (RUNNING, WAITING): the only ones seen that may change."""
        return list(self._open)

    def count(self, state: TrialState) -> int:
        if state.is_finished():
            return self._ended[state]
        return sum(1 for s in self._open.values() if s == state)

    @property
    def finished(self) -> int:
        """Trials that count towards ``run_cap``: COMPLETE and PRUNED."""
        return sum(self._ended[state] for state in record.FINISHED)

    @property
    def ended(self) -> int:
        """Trials that ended, in any state."""
        return len(self._ended_numbers)

    @property
    def running(self) -> int:
        return self.count(TrialState.RUNNING)

    @property
    def waiting(self) -> int:
        """Queued trials (retries) that the next asks take first."""
        return self.count(TrialState.WAITING)

    def places_taken_below(self, number: int) -> int:
        """Trials numbered below ``number`` that hold a place under ``run_cap``: finished, running or queued.

        The storage numbers trials in the order it creates them, one at a time, so a worker that
        created trial ``number`` and then read the study sees every trial that came before it. A
        trial starts only if fewer than ``run_cap`` places are taken before it: of several workers
        racing for the last place, the one whose trial came first takes it, without a lock. Counting
        the running and queued trials that will not start after all only makes this stricter.
        """
        return bisect.bisect_left(self._finished_numbers, number) + sum(1 for n in self._open if n < number)

    def places_free_below(self, number: int) -> int:
        """Trials numbered below ``number`` known to hold no place: FAIL, which they stay.

        Trial numbers are dense, so ``number - places_free_below(number)`` bounds
        :meth:`places_taken_below` however long ago the tally was updated: a trial numbered below
        ``run_cap`` plus the known FAILs has its place without reading the study again.
        """
        return bisect.bisect_left(self._failed_numbers, number)

    def counts(self) -> dict[str, int]:
        """Trials by state name, as the page shows them."""
        counts = {state.name: n for state, n in self._ended.items()}
        counts.update(Counter(state.name for state in self._open.values()))
        return counts

    def _count_ended(self, trial: FrozenTrial) -> None:
        self._ended[trial.state] += 1
        if trial.state in record.FINISHED:
            bisect.insort(self._finished_numbers, trial.number)
        elif trial.state == TrialState.FAIL:
            bisect.insort(self._failed_numbers, trial.number)
        if record.counts_as_failure(trial):
            self.failures += 1
        if self.goal is None or not record.has_value(trial):
            return
        if self.best is None or record.better(trial.value, self.best.value, self.goal):
            self.best = trial
        if self.target is not None and not record.better(self.target, trial.value, self.goal):
            self.target_reached = True
