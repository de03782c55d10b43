"""ObjectiveWork: runs the sweep's script for one trial at a time, from a process kept warm.

The work's process imports what the script imports once; each trial then runs the script through
``TracerPythonScript`` (``runpy``) in a forked child of that process (``sweeps.process``), which
starts with those imports already loaded and which the work supervises: the script's output is
read for the metric as it is printed, a deadline is enforced, and an exception, a non-zero exit,
a signal (abort, segfault, OOM kill) or a timeout becomes a FAIL with its reason. Whatever the
script does, the work survives to report.

A script that builds a PyTorch Lightning ``Trainer`` gets a callback through the tracer
(``configure_tracer``, ``sweeps.trainer``): it reports ``trainer.callback_metrics`` after each
validation, stops the Trainer cleanly when the pruner says so (the work then waits for it, up to
a grace period, instead of killing it at once), and names the best checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from lightning_app.components import TracerPythonScript
from lightning_app.utilities.enum import CacheCallsKeys
from lightning_app.utilities.proxies import WorkRunExecutor
from lightning_app.utilities.tracer import Tracer

from sweeps.command import expand, in_process_args
from sweeps.metrics import MetricReader
from sweeps.process import import_dependencies, run_forked
from sweeps.trainer import TrialHooks, trace_trainers, trainer_packages
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
        self._warm = False
        self._trainer_packages: list[str] = []  # the Lightning packages whose Trainer the script uses
        self._hooks: TrialHooks | None = None  # the running trial's, for the traced Trainer's callback

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
        in_process = in_process_args(self.command)  # the program's arguments, when it runs in this process
        if not self._warm and in_process is not None:
            import_dependencies(self.script_path)
            self._trainer_packages = trainer_packages(self.script_path)
            self._warm = True
        Path(self.log_dir).mkdir(parents=True, exist_ok=True)
        reader = MetricReader(self.metric)
        log_path = Path(self.log_dir) / f"{trial_number}.log"
        stop_file = self._stop_file(trial_number)
        # A trial's Trainer writes its logs and checkpoints under output_dir/trials/<number>/.
        root_dir = Path(self.log_dir).parent / "trials" / str(trial_number)
        hooks = TrialHooks(self.metric, str(stop_file.absolute()), str(root_dir.absolute()))
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
            end = run_forked(
                self._target(trial_number, params, hooks), stdout, log.write, self.timeout, check_in, reader.stop_grace
            )
        reader.close()
        stop_file.unlink(missing_ok=True)
        result = judge(trial_number, reader, end, time.monotonic() - started, self.timeout).to_dict()
        self.result = {**result, VALUES_KEY: json.dumps(reader.values)}  # one change of state, not two

    def _target(self, trial_number: int, params: dict[str, Any], hooks: TrialHooks) -> Callable[[], Any]:
        """What the trial's child runs: the program through TracerPythonScript, or the command."""
        json_file = Path(self.log_dir) / f"{trial_number}.args.json"
        in_process = in_process_args(self.command)
        if in_process is not None:
            return partial(self._run_script, expand(in_process, self.script_path, params, json_file), hooks)
        argv = expand(self.command, self.script_path, params, json_file)
        return partial(os.execvp, argv[0], argv)

    def _run_script(self, args: list[str], hooks: TrialHooks) -> dict[str, Any]:
        """In the trial's child: the program, given ``args``, with ``hooks`` for its Trainer.

        Both are set here, past Lightning's ``__setattr__``: inside ``run`` it deep-copies and diffs
        the work's whole state on every assignment, to send the flow what changed (a few ms each).
        """
        object.__setattr__(self, "script_args", args)
        object.__setattr__(self, "_hooks", hooks)
        return TracerPythonScript.run(self)

    def configure_tracer(self) -> Tracer:
        """In the trial's child: the tracer that adds Sweeps' callback to the script's Lightning Trainer."""
        tracer = super().configure_tracer()
        if self._trainer_packages and self._hooks is not None:
            trace_trainers(tracer, self._trainer_packages, self._hooks)
        return tracer

    def on_after_run(self, script_globals: dict[str, Any]) -> dict[str, Any]:
        return script_globals
