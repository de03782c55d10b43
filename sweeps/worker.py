"""This process's part in a sweep: its slots kept busy with trials, and its status.

A *worker* is one app (headless or with its page) running trials of a sweep; several workers may
share a sweep through a PostgreSQL storage. Its ``parallel`` *slots* each run one trial at a time.
``HPOFlow.run`` is one :meth:`Worker.step`, and so is each pass of the plain loop in
``scripts/hpo_without_lightning.py``: the worker is written against the small :class:`Slot`
protocol, not against Lightning, so both drive the same code and it is tested without an app.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from optuna.trial import FrozenTrial

from sweeps import console, optuna_internals
from sweeps.control import Request, Status
from sweeps.export import Exports
from sweeps.resources import Share
from sweeps.result import TrialResult
from sweeps.storage import write_back
from sweeps.sweep import Sweep, TrialRequest


class Slot(Protocol):
    """Runs one trial at a time, without blocking the caller."""

    def start_trial(self, request: TrialRequest) -> None:
        """Start the trial ``request`` describes: its number, parameters, directory, whether it resumes."""

    def result_of(self, number: int) -> TrialResult | None:
        """The result of that trial once it has ended, else None."""

    def values_of(self, number: int) -> list[tuple[int, float]]:
        """That trial's intermediate ``(step, value)`` so far."""

    def prune_trial(self, number: int) -> None:
        """Stop that trial (the pruner said so); its result then comes back PRUNED."""


class Worker:
    def __init__(
        self,
        sweep: Sweep,
        slots: Sequence[Slot],
        exports: Exports | None = None,
        say: Callable[[str], Any] = print,
        shares: Sequence[Share] = (),
    ) -> None:
        self.sweep = sweep
        self.slots = slots
        self.shares = shares  # each slot's share of the machine, recorded on the trials it runs
        self.exports = exports
        self.running: list[int | None] = [None] * len(slots)  # the trial number each slot runs
        self.status = Status.WAITING
        self.started_at = 0.0  # when trials first could start (epoch seconds; 0: not yet)
        self.ended_at = 0.0  # when the last ended
        self._say = say

    @property
    def busy(self) -> int:
        """Slots running a trial."""
        return sum(number is not None for number in self.running)

    def step(self, request: Request | None = None) -> None:
        """One pass: take a Run/Stop request, report intermediate values and prune, tell the study
        what ended, start what ``run_cap`` allows; end once the sweep is done and nothing runs."""
        sweep = self.sweep
        sweep.poll()
        if self.status == Status.WAITING and sweep.complete:  # found so, or other workers completed it
            self._end()
            return
        if request == Request.RUN and self.status == Status.WAITING:
            sweep.request(Request.RUN)  # starting a worker (or Run) runs a stopped sweep again
            self._set(Status.RUNNING)
            self._say(console.started_line(sweep))
        elif request == Request.STOP and self.status == Status.RUNNING:
            sweep.request(Request.STOP)
        if self.status == Status.RUNNING and sweep.stopped:
            self._set(Status.STOPPING)
            self._say(console.stopping_line(sweep, self.busy))
        if not self.status.active:
            return
        self._schedule()
        if sweep.done and not self.busy:
            self._end()

    def _schedule(self) -> None:
        """A slot whose trial ended gets its next trial before the study is told of the ended one,
        when that cannot change what comes next (:meth:`Sweep.tell_can_wait`): telling takes a few
        milliseconds of storage writes that the slot would otherwise spend idle."""
        sweep, told_later = self.sweep, []
        for index, slot in enumerate(self.slots):
            number = self.running[index]
            if number is not None:
                result = slot.result_of(number)
                if sweep.report(number, slot.values_of(number), ended=result is not None):
                    slot.prune_trial(number)
                if result is None:
                    continue
                self.running[index] = None
                if sweep.tell_can_wait(result):
                    told_later.append(result)
                else:
                    self._ended(sweep.tell(result))
            if sweep.wants_more():
                request = sweep.ask(self.shares[index] if self.shares else None)
                if request is None:  # other workers' trials take the rest of run_cap
                    continue
                self.running[index] = request.number
                slot.start_trial(request)
        for result in told_later:
            self._ended(sweep.tell(result))

    def _ended(self, trial: FrozenTrial) -> None:
        self._say(console.progress_line(self.sweep, trial))
        if self.exports is not None and self.exports.due():
            self.exports.write(self.sweep.study.get_trials(deepcopy=False))

    def _end(self) -> None:
        sweep = self.sweep
        if self.exports is not None:
            self.exports.write(sweep.study.get_trials(deepcopy=False))
        write_back(optuna_internals.rdb(sweep.study))
        status = Status.GAVE_UP if sweep.gave_up else Status.STOPPED if sweep.stopped else Status.FINISHED
        self._set(status)
        self._say(console.ended_line(sweep, status))
        self._say(console.summary(sweep.study, sweep.config.metric_names))
        if status == Status.GAVE_UP:
            print(console.failure_summary(sweep), file=sys.stderr, flush=True)

    def _set(self, status: Status) -> None:
        now = time.time()
        if status.active and not self.started_at:
            self.started_at = now
        if status.over and not self.ended_at:
            self.started_at = self.started_at or now  # ended as it started: it found nothing to run
            self.ended_at = now
        self.status = status
