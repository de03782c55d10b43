"""Keeping a fixed pool of slots busy with trials: the loop inside ``HPOFlow.run``.

It is written against a two-method protocol rather than against Lightning, so the same code
drives the Lightning works and the plain-Python loop of ``scripts/hpo_without_lightning.py``,
and can be tested without starting an app.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from typing import Any, Protocol

from optuna.trial import FrozenTrial

from sweeps.sweep import Sweep
from sweeps.trial import TrialResult


class Slot(Protocol):
    """Something that runs one trial at a time, without blocking the caller."""

    def start_trial(self, trial_number: int, params: dict[str, Any]) -> None: ...

    def result_of(self, trial_number: int) -> dict[str, Any] | None:
        """The result of that trial as a ``TrialResult`` dict once it has ended, else None."""

    def values_of(self, trial_number: int) -> list[tuple[int, float]]:
        """That trial's intermediate ``(step, value)`` so far."""

    def stop_trial(self, trial_number: int) -> None:
        """Stop that trial (the pruner said so); its result then comes back PRUNED."""


def schedule(
    sweep: Sweep,
    slots: Sequence[Slot],
    running: MutableMapping[str, int],
    on_end: Callable[[FrozenTrial], None] = lambda trial: None,
) -> None:
    """One pass over the slots: report intermediate values and prune, tell the study what ended,
    start what the budget allows.

    A slot whose trial ended gets its next trial before the study is told of the ended one, when
    that cannot change what comes next (:meth:`Sweep.tell_can_wait`): telling takes a few
    milliseconds of storage writes that the slot would otherwise spend idle.

    ``running`` maps a slot's index (as a string: it lives in Lightning's JSON state) to the
    number of the trial it runs; it is the only record of what is in flight. ``on_end`` sees
    each trial that ended, as stored, right after the study was told.
    """
    told_later: list[TrialResult] = []  # ended, told once their slots have their next trials
    for index, slot in enumerate(slots):
        key = str(index)
        if key in running:
            number = running[key]
            result = slot.result_of(number)
            if sweep.report(number, slot.values_of(number), ended=result is not None):
                slot.stop_trial(number)
            if result is None:
                continue
            del running[key]
            ended = TrialResult.from_dict(result)
            if sweep.tell_can_wait(ended):
                told_later.append(ended)
            else:
                on_end(sweep.tell(ended))
        if sweep.wants_more(len(running) + len(told_later)):
            request = sweep.ask()
            if request is None:  # other workers' trials take the rest of the budget
                continue
            running[key] = request.number
            slot.start_trial(request.number, request.params)
    for ended in told_later:
        on_end(sweep.tell(ended))
