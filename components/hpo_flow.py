"""HPOFlow: the root flow. Asks the Optuna study for trials and keeps a pool of works busy.

Lightning calls ``run`` whenever the app's state changes (a work reported, the UI clicked).
Each call is one pass of :func:`sweeps.scheduler.schedule`; the flow's own state is only what
is running now, one entry per work, while every trial lives in the Optuna storage.
"""

from __future__ import annotations

from lightning_app import LightningFlow
from lightning_app.structures import List
from optuna.trial import FrozenTrial

from components.hiplot_flow import HiPlotFlow
from components.objective import ObjectiveWork
from sweeps.config import SweepConfig
from sweeps.hiplot import trial_row
from sweeps.report import progress_line, summary
from sweeps.scheduler import schedule
from sweeps.sweep import Sweep

WAITING, RUNNING, FINISHED = "waiting", "running", "finished"


class HPOFlow(LightningFlow):
    def __init__(self, config: SweepConfig, with_ui: bool = True) -> None:
        super().__init__()
        self._config = config
        self._sweep: Sweep | None = None  # opened in the flow's process, on the first run
        self.status = WAITING
        self.running: dict[str, int] = {}  # work index -> trial number
        self.pool = List(
            *(
                ObjectiveWork(str(config.program), config.metric.name, log_dir=str(config.output_dir / "logs"))
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
        return self._sweep

    def run(self) -> None:
        sweep = self.sweep  # opens the study at start-up, so the UI can show it before Run
        if self.status == WAITING and self._start_requested():
            self._set_status(RUNNING)
            print(f"sweep {sweep.config.name}: {sweep.finished}/{sweep.config.budget} trials already finished", flush=True)
        if self.status != RUNNING:
            return
        schedule(sweep, self.pool, self.running, on_end=self._on_trial_end)
        if sweep.done and not self.running:
            self._set_status(FINISHED)
            print(summary(sweep.study), flush=True)
            if not self.with_ui:
                self.stop()

    def _on_trial_end(self, trial: FrozenTrial) -> None:
        print(progress_line(self.sweep, trial), flush=True)
        if self.with_ui:
            self.hiplot.run(trial_row(trial, self._config.metric.name))

    def _start_requested(self) -> bool:
        return self._config.autostart or not self.with_ui or self.hiplot.run_requested

    def _set_status(self, status: str) -> None:
        self.status = status
        if self.with_ui:
            self.hiplot.status = status

    def configure_layout(self):
        return [{"name": "Sweep", "content": self.hiplot}] if self.with_ui else []
