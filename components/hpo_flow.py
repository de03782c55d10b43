"""HPOFlow: the root flow. Asks the Optuna study for trials and keeps a pool of works busy.

Lightning calls ``run`` whenever the app's state changes (a work reported, the UI clicked).
Each call is one pass of :func:`sweeps.scheduler.schedule`; the flow's own state is only what
is running now, one entry per work, while every trial lives in the Optuna storage. On a shared
storage (PostgreSQL) this app is one worker of the sweep among others: it is woken every second
to read what they did (``components.wake_up``), and its Run/Stop reach all of them.
"""

from __future__ import annotations

import sys
import time

from lightning_app import LightningFlow
from lightning_app.structures import List
from lightning_app.utilities.exceptions import LightningFlowException
from optuna.trial import FrozenTrial

from components.hiplot_flow import HiPlotFlow
from components.objective import ObjectiveWork
from components.wake_up import wake_flow_every
from sweeps.config import SweepConfig
from sweeps.export import write_exports
from sweeps.report import failure_summary, progress_line, summary
from sweeps.scheduler import schedule
from sweeps.sweep import SYNC_SECONDS, Sweep

WAITING, RUNNING, STOPPING = "waiting", "running", "stopping"
FINISHED, STOPPED, GAVE_UP = "finished", "stopped", "gave up"

#: Exports (trials.csv, best.json) are rewritten at most this often while trials end, and at the end;
#: less often when writing them takes longer than EXPORT_SHARE of that time (thousands of trials).
EXPORT_SECONDS = 1.0
EXPORT_SHARE = 0.05


class HPOFlow(LightningFlow):
    def __init__(self, config: SweepConfig, with_ui: bool = True) -> None:
        super().__init__()
        self._config = config
        self._sweep: Sweep | None = None  # opened in the flow's process, on the first run
        self._exported = 0.0  # when trials.csv was last written
        self._export_every = EXPORT_SECONDS
        self.status = WAITING
        self.running: dict[str, int] = {}  # work index -> trial number
        self.pool = List(
            *(
                ObjectiveWork(
                    str(config.program),
                    config.metric.name,
                    str(config.output_dir / "logs"),
                    config.trial_timeout,
                    config.custom_command,
                )
                for _ in range(config.parallel)
            )
        )
        self.with_ui = with_ui
        if with_ui:
            self.hiplot = HiPlotFlow(config)

    @property
    def sweep(self) -> Sweep:
        if self._sweep is None:
            self._sweep = Sweep.open(self._config)
            if self._sweep.shared:
                wake_flow_every(SYNC_SECONDS)
        return self._sweep

    def run(self) -> None:
        sweep = self.sweep  # opens the study at start-up, so the UI can show it before Run
        sweep.sync(force=False)  # a shared sweep: what the other workers did, at most once a second
        if self.status == WAITING and self._start_requested():
            sweep.resume()  # starting a worker (or Run) runs the whole sweep again after a Stop
            self._set_status(RUNNING)
            print(f"sweep {sweep.config.name}: {sweep.finished}/{sweep.config.budget} trials already finished", flush=True)
        if self.status == RUNNING and self.with_ui and self.hiplot.stop_requested:
            sweep.stop()  # the running trials finish; no new one starts (in every worker)
        if self.status == RUNNING and sweep.stopped:
            self._set_status(STOPPING)
            print(f"sweep {sweep.config.name}: stopping, {len(self.running)} trials still running", flush=True)
        if self.status not in (RUNNING, STOPPING):
            return
        schedule(sweep, self.pool, self.running, on_end=self._on_trial_end)
        if sweep.done and not self.running:
            self._export()
            status = GAVE_UP if sweep.gave_up else STOPPED if sweep.stopped else FINISHED
            # (a Stop read while no trial of this worker ran ends it without a "stopping" line)
            print(f"sweep {sweep.config.name}: {status}, {sweep.finished}/{sweep.config.budget} trials finished", flush=True)
            print(summary(sweep.study), flush=True)
            self._set_status(status)
            if status == GAVE_UP:
                message = failure_summary(sweep)
                print(message, file=sys.stderr, flush=True)
                if not self.with_ui:
                    raise LightningFlowException(message)  # the app exits with code 1
            if not self.with_ui:
                self.stop()

    def _on_trial_end(self, trial: FrozenTrial) -> None:
        print(progress_line(self.sweep, trial), flush=True)
        if time.monotonic() - self._exported > self._export_every:
            self._export()

    def _export(self) -> None:
        config = self._config
        started = time.monotonic()
        write_exports(self.sweep.study.get_trials(deepcopy=False), config.output_dir, config.metric.name, config.metric.goal)
        self._exported = time.monotonic()
        self._export_every = max(EXPORT_SECONDS, (self._exported - started) / EXPORT_SHARE)

    def _start_requested(self) -> bool:
        return self._config.autostart or not self.with_ui or self.hiplot.run_requested

    def _set_status(self, status: str) -> None:
        self.status = status
        if self.with_ui:
            self.hiplot.set_status(status, active=status in (RUNNING, STOPPING))

    def configure_layout(self):
        return [{"name": "Sweep", "content": self.hiplot}] if self.with_ui else []
