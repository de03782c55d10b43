"""Proposals on a small discrete space: configurations not tried yet, never one that is running.

Random draws (``method: random``, and every model-based sampler's first trials) repeat
configurations of a small space, and trials running at once would run the same one. While
proposals are random, the sweep queues a configuration drawn among those nobody tried instead.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

from sweeps.samplers import STARTUP_TRIALS
from sweeps.space import SearchSpace


class UntriedConfigurations:
    """Which configurations of an enumerable space have been tried, and an untried one to propose."""

    def __init__(self, space: SearchSpace, method: str, seed: int | None) -> None:
        configurations = space.choices() if method != "grid" else None  # the grid has its own order
        self._configurations = configurations
        self._names = space.names
        self._method = method
        self._seed = seed
        self._tried: set[tuple[Any, ...]] = set()
        self._running: dict[int, tuple[Any, ...]] = {}

    @property
    def active(self) -> bool:
        """Whether the space is small and discrete enough to be enumerated."""
        return self._configurations is not None

    def tried(self, params: Iterable[dict[str, Any]]) -> None:
        """Configurations that ran or run (of every worker, read from the storage)."""
        if self.active:
            self._tried.update(self._key(p) for p in params)

    def started(self, number: int, params: dict[str, Any]) -> None:
        if self.active:
            self._tried.add(self._key(params))
            self._running[number] = self._key(params)

    def ended(self, number: int) -> None:
        self._running.pop(number, None)

    def propose(self) -> dict[str, Any] | None:
        """A configuration to queue for the next trial, while proposals are random; else None."""
        configurations = self._configurations
        if configurations is None:
            return None
        if self._method != "random" and len(self._tried) >= STARTUP_TRIALS:
            return None
        rng = random.Random(None if self._seed is None else f"{self._seed}:{len(self._tried)}")
        for _ in range(64):  # cheap while most configurations are untried
            candidate = rng.choice(configurations)
            if self._key(candidate) not in self._tried:
                return candidate
        running = set(self._running.values())
        untried = [c for c in configurations if self._key(c) not in self._tried]
        return rng.choice(untried or [c for c in configurations if self._key(c) not in running] or configurations)

    def _key(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params.get(name) for name in self._names)
