"""Run and Stop: what a user asks of a sweep, and the status a worker reports back.

A request comes from the page's button, or is implied (a headless worker, ``autostart``). On a
storage that workers share, Stop and Run reach every worker through one study attribute, which
each reads when it syncs with the storage; a worker alone keeps them to itself.
"""

from __future__ import annotations

from enum import StrEnum

import optuna

#: The study attribute every worker of a shared sweep obeys: the last request made anywhere.
CONTROL_ATTR = "sweeps:control"


class Request(StrEnum):
    RUN = "run"
    STOP = "stop"


class Status(StrEnum):
    """Where a worker is in its sweep."""

    WAITING = "waiting"  # for Run
    RUNNING = "running"
    STOPPING = "stopping"  # Stop was asked: running trials finish, no new one starts
    FINISHED = "finished"  # run_cap trials finished, or the target was reached
    STOPPED = "stopped"
    GAVE_UP = "gave up"  # max_failures trials failed

    @property
    def active(self) -> bool:
        """Trials run, or may start."""
        return self in (Status.RUNNING, Status.STOPPING)

    @property
    def over(self) -> bool:
        return self in (Status.FINISHED, Status.STOPPED, Status.GAVE_UP)


class Control:
    """Whether the user has stopped the sweep, here or, on a shared storage, from any worker."""

    def __init__(self, study: optuna.Study, shared: bool) -> None:
        self._study = study
        self._shared = shared
        self.stopped = shared and study.user_attrs.get(CONTROL_ATTR) == Request.STOP

    def request(self, request: Request) -> None:
        """Run (again) or Stop; on a shared storage, for every worker."""
        self.stopped = request == Request.STOP
        if self._shared:
            self._study.set_user_attr(CONTROL_ATTR, request.value)

    def read(self, study_user_attrs: dict[str, object]) -> None:
        """A shared sweep: take a Stop made elsewhere. A worker that stopped stays stopped (it has left)."""
        if self._shared and study_user_attrs.get(CONTROL_ATTR) == Request.STOP:
            self.stopped = True
