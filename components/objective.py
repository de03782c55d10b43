"""ObjectiveWork: runs the sweep's script for one trial at a time, from a process kept warm.

The work is a ``TracerPythonScript``: it runs ``script_path`` as ``__main__`` with the trial's
arguments, and traces the Lightning ``Trainer`` it builds. It does so in a child process for each
trial, forked by a lean server warm with what the script imports (``sweeps.forkserver``) rather
than in the work's own process: the work supervises the child (``sweeps.process``), reading the
script's output for the metric as it is printed, enforcing a deadline, and turning an exception,
a non-zero exit, a signal (abort, segfault, OOM kill) or a timeout into a FAIL with its reason.
Whatever the script does, the work survives to report.

A script that builds a PyTorch Lightning ``Trainer`` gets a callback (``sweeps.trainer``): it
reports ``trainer.callback_metrics`` after each validation, stops the Trainer cleanly when the
pruner says so (the work then waits for it, up to a grace period, instead of killing it at once),
and names the best checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lightning_app.components import TracerPythonScript
from lightning_app.utilities.enum import CacheCallsKeys
from lightning_app.utilities.proxies import WorkRunExecutor

from sweeps.command import expand, in_process_args
from sweeps.forkserver import ForkServer
from sweeps.metrics import MetricReader
from sweeps.process import ScriptRun, run_trial
from sweeps.trainer import TrialHooks
from sweeps.trial import TrialResult, judge


#: Intermediate values reach the flow at most this often (a script may print thousands a second).
PUSH_SECONDS = 0.02
#: The key of a result (in the work's state) holding the trial's intermediate values, as JSON text.
VALUES_KEY = "values"


class _RunWithoutStateObserver(WorkRunExecutor):
    """Lightning's run, without the thread it starts for every call to diff the work's state each second.

    That thread outlives its call by up to a second, so at tens of trials a second dozens of them
    diff the state side by side. This work changes its state only by assignment, which Lightning
    sends to the flow at once; the thread found nothing left to send, and cost most of the work's CPU.
    """

    enable_start_observer = False


class ObjectiveWork(TracerPythonScript):
    _run_executor_cls = _RunWithoutStateObserver

    def __init__(
        self,
        program: str,
        metric: str,
        log_dir: str,
        timeout: float | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        # raise_exception=False: an error in the work must not stop the app (Lightning would, ~30 s later).
        super().__init__(script_path=program, parallel=True, raise_exception=False)
        self.metric = metric
        self.command = list(command) if command else None  # None: W&B's default command
        self.log_dir = log_dir
        self.timeout = timeout
        self.result: dict[str, Any] | None = None
        # The running trial's intermediate values, as JSON text: Lightning then sends it whole. (Its
        # deltas of a growing list lose items when two of them reach the flow together.)
        self.progress = ""
        self._server: ForkServer | None = None  # forks the trials' children; started by the first trial

    # -- in the flow's process -------------------------------------------------------------------

    def start_trial(self, trial_number: int, params: dict[str, Any]) -> None:
        self._forget_ended_calls()
        self.run(trial_number, params)

    def result_of(self, trial_number: int) -> dict[str, Any] | None:
        if self.result is not None and self.result["number"] == trial_number:
            return {key: value for key, value in self.result.items() if key != VALUES_KEY}
        if self.has_failed:
            # Only an error outside the script gets here: run() reports the script's own.
            return TrialResult.failed(trial_number, f"work failed: {self.status.message}").to_dict()
        return None

    def values_of(self, trial_number: int) -> list[tuple[int, float]]:
        if self.result is not None and self.result["number"] == trial_number:
            values = json.loads(self.result[VALUES_KEY])  # all of them: the last ones come with the result
        else:
            progress = json.loads(self.progress) if self.progress else None
            if progress is None or progress["number"] != trial_number:
                return []
            values = progress["values"]
        return [(step, value) for step, value in values]

    def stop_trial(self, trial_number: int) -> None:
        """Ask the work to stop that trial: a file, checked by the work every 50 ms.

        Lightning would carry a flag set here to the work's process only at its next state sync
        (up to a second); a pruned trial should stop within a fraction of that.
        """
        self._stop_file(trial_number).touch()

    def _stop_file(self, trial_number: int) -> Path:
        return Path(self.log_dir) / f"{trial_number}.stop"

    def _forget_ended_calls(self) -> None:
        """Keep only the latest call in Lightning's record of calls, which grows by one per trial.

        Lightning keeps every distinct call of a work in its state; with a call per trial the app's
        state (sent to every process on every change) would grow with the number of trials.
        """
        latest = self._calls[CacheCallsKeys.LATEST_CALL_HASH]
        for key in list(self._calls):
            if key not in (CacheCallsKeys.LATEST_CALL_HASH, latest):
                del self._calls[key]

    # -- in the work's process -------------------------------------------------------------------

    def run(self, trial_number: int, params: dict[str, Any]) -> None:
        if self._server is None:  # the first trial: what the script imports is loaded once, in the server
            self._server = ForkServer(self.script_path if in_process_args(self.command) is not None else "")
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        reader = MetricReader(self.metric)
        log_path = Path(self.log_dir) / f"{trial_number}.log"
        stop_file = self._stop_file(trial_number)
        started = pushed_at = time.monotonic()  # a trial that ends at once sends its values with its result
        pushed = 0

        def stdout(text: str) -> None:
            reader.write(text)
            log.write(text)

        def check_in() -> bool:
            """Between reads: hand the flow the new intermediate values; whether it asked to stop."""
            nonlocal pushed, pushed_at
            if len(reader.values) > pushed and time.monotonic() - pushed_at >= PUSH_SECONDS:
                pushed, pushed_at = len(reader.values), time.monotonic()
                self.progress = json.dumps({"number": trial_number, "values": reader.values})
            return stop_file.exists()

        with open(log_path, "w") as log:
            script_run = self._script_run(trial_number, params, stop_file)
            end = run_trial(self._server, script_run, stdout, log.write, self.timeout, check_in, reader.stop_grace)
        reader.close()
        stop_file.unlink(missing_ok=True)
        result = judge(trial_number, reader, end, time.monotonic() - started, self.timeout).to_dict()
        self.result = {**result, VALUES_KEY: json.dumps(reader.values)}  # one change of state, not two

    def _script_run(self, trial_number: int, params: dict[str, Any], stop_file: Path) -> ScriptRun:
        """What the trial's child runs: the program with the trial's arguments, or the sweep's command."""
        json_file = Path(self.log_dir) / f"{trial_number}.args.json"
        in_process = in_process_args(self.command)
        if in_process is None:
            return ScriptRun(self.script_path, command=expand(self.command, self.script_path, params, json_file))
        # A trial's Trainer writes its logs and checkpoints under output_dir/trials/<number>/.
        root_dir = Path(self.log_dir).parent / "trials" / str(trial_number)
        hooks = TrialHooks(self.metric, str(stop_file.absolute()), str(root_dir.absolute()))
        args = expand(in_process, self.script_path, params, json_file)
        return ScriptRun(self.script_path, args, hooks=asdict(hooks))

