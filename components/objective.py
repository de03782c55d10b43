"""ObjectiveWork: runs the sweep's script for one trial at a time, from a process kept warm.

The work is a ``TracerPythonScript``: it runs the program as ``__main__`` with the trial's
arguments, and traces the Lightning ``Trainer`` it builds. It does so in a child process for each
trial, forked by a lean server warm with what the script imports (``sweeps.forkserver``) rather
than in the work's own process: the work supervises the child (``sweeps.supervise``), reading the
script's output for the metric as it is printed, enforcing a deadline, and turning an exception,
a non-zero exit, a signal (abort, segfault, OOM kill) or a timeout into a FAIL with its reason.
Whatever the script does, the work survives to report. The work is one slot of the worker
(``sweeps.worker.Slot``).

A script that builds a PyTorch Lightning ``Trainer`` gets a callback (``sweeps.trainer``): it
reports ``trainer.callback_metrics`` after each validation, stops the Trainer cleanly when the
pruner says so (the work then waits for it, up to a grace period, instead of killing it at once),
and names the best checkpoint.
"""

from __future__ import annotations

import json
import time
from typing import Any

from lightning_app.components import TracerPythonScript

from components.fixes.loop import forget_ended_calls, restart_work_process, work_process_alive
from sweeps import record, wandb_runs
from sweeps.cluster import RemoteSlot
from sweeps.command import Launch, TrialRequest
from sweeps.forkserver import ForkServer
from sweeps.metrics import MetricReader
from sweeps.resources import UNMANAGED, Share
from sweeps.result import TrialResult, judge
from sweeps.supervise import run_trial

#: Intermediate values reach the flow at most this often (a script may print thousands a second).
PUSH_SECONDS = 0.02
#: The key of a result (in the work's state) holding the trial's intermediate values, as JSON text.
INTERMEDIATE_KEY = "intermediate_values"


class ObjectiveWork(TracerPythonScript):
    def __init__(
        self,
        launch: Launch,
        metrics: list[str],
        timeout: float | None = None,
        share: Share = UNMANAGED,
        remote: RemoteSlot | None = None,
        fork: bool = False,
    ) -> None:
        # raise_exception=False: an error in the work must not stop the app (Lightning would, ~30 s later).
        super().__init__(script_path=launch.program, parallel=True, raise_exception=False)
        self._launch = launch
        self.metrics = metrics  # the objectives: none, one or several
        self.timeout = timeout
        self._share = share  # the slot's devices, cores and memory cap, for each of its trials
        self.result: dict[str, Any] | None = None
        # The running trial's intermediate values, as JSON text: Lightning then sends it whole. (Its
        # deltas of a growing list lose items when two of them reach the flow together.)
        self.progress = ""
        self._server: ForkServer | None = None  # forks the trials' children; started by the first trial
        self._remote = remote  # with --cloud: the slot's trials run on the cluster instead
        self._wandb: bool | None = None  # whether the program uses W&B; read by the first trial
        # Lightning spawns a TracerPythonScript's process (it traces in its own), and a spawned
        # process imports the app again: ~1 s at start. This work traces in the trial's child.
        self._start_method = "fork" if fork else "spawn"

    # -- in the flow's process: the worker's slot --------------------------------------------------

    def start_trial(self, request: TrialRequest) -> None:
        if not work_process_alive(self):  # it died with its last trial: a fresh process takes the slot
            restart_work_process(self)
        forget_ended_calls(self)
        self.run(request.number, request.params, request.first_trial, request.resume)

    def result_of(self, number: int) -> TrialResult | None:
        if self.result is not None and self.result["number"] == number:
            return TrialResult.from_dict({key: value for key, value in self.result.items() if key != INTERMEDIATE_KEY})
        if self.has_failed:
            # Only an error outside the script gets here: run() reports the script's own.
            return TrialResult.failed(number, f"work failed: {self.status.message}")
        if not work_process_alive(self):  # killed (the OOM killer, kill -9): its trial went with it
            return TrialResult.failed(number, record.WORK_LOST)
        return None

    def values_of(self, number: int) -> list[tuple[int, float]]:
        if self.result is not None and self.result["number"] == number:
            values = json.loads(self.result[INTERMEDIATE_KEY])  # all of them: the last ones come with the result
        else:
            progress = json.loads(self.progress) if self.progress else None
            if progress is None or progress["number"] != number:
                return []
            values = progress["values"]
        return [(step, value) for step, value in values]

    def prune_trial(self, number: int) -> None:
        """Ask the work to stop that trial: a file, checked by the work every 50 ms.

        Lightning would carry a flag set here to the work's process only at its next state sync
        (up to a second); a pruned trial should stop within a fraction of that.
        """
        self._launch.prune_file(number).touch()

    # -- in the work's process ---------------------------------------------------------------------

    def run(self, number: int, params: dict[str, Any], first_trial: int | None = None, resume: bool = False) -> None:
        """Run trial ``number`` in the directory of ``first_trial`` (its own by default), continuing from
        its last checkpoint when ``resume``: here, or on the cluster."""
        launch = self._launch
        request = TrialRequest(number, params, number if first_trial is None else first_trial, resume)
        if self._wandb is None:  # the first trial
            self._wandb = wandb_runs.installed() and (
                wandb_runs.uses_wandb(launch.program)
                or (self._remote is None and launch.runs_warm and self._fork_server().loads_wandb)
            )
        launch.log_dir.mkdir(parents=True, exist_ok=True)
        reader = MetricReader(self.metrics)
        prune_file = launch.prune_file(number)
        started = pushed_at = time.monotonic()  # a trial that ends at once sends its values with its result
        pushed = 0

        def stdout(text: str) -> None:
            reader.write(text)
            log.write(text)

        def check_in() -> bool:
            """Between reads: hand the flow the new intermediate values; whether it pruned the trial."""
            nonlocal pushed, pushed_at
            if len(reader.values) > pushed and time.monotonic() - pushed_at >= PUSH_SECONDS:
                pushed, pushed_at = len(reader.values), time.monotonic()
                self.progress = json.dumps({"number": number, "values": reader.values})
            return prune_file.exists()

        with open(launch.log_file(number), "w", buffering=1) as log:  # line by line: users follow it with tail -f
            watch = (stdout, log.write, self.timeout, check_in, reader.prune_grace, self._share.memory)
            if self._remote is not None:
                end = self._remote.run_trial(request, self._wandb, *watch)
                prune_file.unlink(missing_ok=True)
            else:
                end = run_trial(self._fork_server(), launch.script_run(request, self._wandb), *watch)
                launch.trial_ended(request)
        reader.close()
        result = judge(number, reader, end, time.monotonic() - started, self.timeout).to_dict()
        self.result = {**result, INTERMEDIATE_KEY: json.dumps(reader.values)}  # one change of state, not two

    def _fork_server(self) -> ForkServer:
        """Started with the first trial: what the script imports is loaded once, in the server."""
        if self._server is None:
            launch = self._launch
            self._server = ForkServer(launch.program if launch.runs_warm else "", self._share)
        return self._server
