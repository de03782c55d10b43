"""HPOFlow: the root flow. Asks the Optuna study for trials and keeps its works (the slots) busy.

Lightning calls ``run`` whenever the app's state changes (a work reported, the page was clicked).
Each call is one :meth:`sweeps.worker.Worker.step`; the flow's own state mirrors what the worker
runs now and its status, while every trial lives in the Optuna storage. It is woken every second
(``components.wake_up``): on a shared storage (PostgreSQL) this app is one worker of the sweep
among others and reads what they did, and its Run/Stop reach all of them; and a work whose process
died is noticed, its trial failed as ``work lost`` and its slot given a fresh process.
"""

from __future__ import annotations

from lightning_app import LightningFlow
from lightning_app.structures import List
from lightning_app.utilities.exceptions import LightningFlowException

from components.hiplot_flow import HiPlotFlow
from components.objective import ObjectiveWork
from components.wake_up import wake_flow_every
from sweeps.cluster import RemoteSlot
from sweeps.config import SweepConfig
from sweeps.console import failure_summary
from sweeps.control import Request, Status
from sweeps.export import Exports
from sweeps.storage import is_proxy
from sweeps.sweep import SYNC_SECONDS, Sweep
from sweeps.worker import Worker


class HPOFlow(LightningFlow):
    def __init__(self, config: SweepConfig, with_ui: bool = True) -> None:
        super().__init__()
        self._config = config
        self._worker: Worker | None = None  # made in the flow's process, on the first run
        self.status = Status.WAITING.value
        self.running: list[int | None] = [None] * config.parallel  # the trial each slot runs
        self.slots = List(
            *(
                ObjectiveWork(
                    config.launch, config.metric_names, config.trial_timeout, share, self._remote_slot(), self._forks()
                )
                for share in config.shares
            )
        )
        self.with_ui = with_ui
        if with_ui:
            self.hiplot = HiPlotFlow(config)

    def _remote_slot(self) -> RemoteSlot | None:
        """With ``--cloud``, where a slot's trials run."""
        config = self._config
        if config.ray_address is None:
            return None
        return RemoteSlot(config.ray_address, config.cluster, config.launch, config.resources)

    def _forks(self) -> bool:
        """Whether the slots' processes are forked from this one: unless it holds gRPC channels, which a
        fork breaks (Ray's driver with ``--cloud``, Optuna's gRPC storage proxy). Its database
        connections are closed before a fork (``sweeps.storage``)."""
        config = self._config
        return config.ray_address is None and not is_proxy(config.storage)

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            config = self._config
            sweep = Sweep.open(config)
            # Once a second, also when no work reports: a shared sweep reads what the others did, and
            # a work whose process died is noticed.
            wake_flow_every(SYNC_SECONDS)
            exports = Exports(config.output_dir, config.metric_names, config.directions)
            self._worker = Worker(sweep, list(self.slots), exports, shares=config.shares)
        return self._worker

    def run(self) -> None:
        worker = self.worker  # opens the study at start-up, so the page can show it before Run
        worker.step(self._request())
        if self.running != worker.running:
            self.running = list(worker.running)
        if self.status != worker.status.value:
            self.status = worker.status.value
            if self.with_ui:
                self.hiplot.show(worker.status, worker.started_at, worker.ended_at)
        if worker.status.over and not self.with_ui:
            if worker.status == Status.GAVE_UP:
                raise LightningFlowException(failure_summary(worker.sweep))  # the app exits with code 1
            self.stop()

    def _request(self) -> Request | None:
        """The page's Run or Stop, taken once; a headless app, or ``autostart``, runs at once."""
        if self.with_ui and self.hiplot.request:
            request, self.hiplot.request = Request(self.hiplot.request), ""
            return request
        if self._config.autostart or not self.with_ui:
            return Request.RUN
        return None

    def configure_layout(self) -> list[dict[str, object]]:
        return [{"name": "Sweep", "content": self.hiplot}] if self.with_ui else []
