"""ObjectiveWork: runs the sweep's script for one trial at a time, in a process kept warm.

The script runs inside the work's process through ``TracerPythonScript`` (``runpy``), so the
imports a script pays for once (scikit-learn, torch) are already loaded for the next trial.
Whatever the script does, the work reports a result: its output is read for the metric as it
is printed, and an exception or a non-zero exit becomes a FAIL with its reason.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from lightning_app.components import TracerPythonScript
from lightning_app.utilities.enum import CacheCallsKeys

from sweeps.metrics import MetricReader
from sweeps.trial import TrialResult, judge, script_args


class ObjectiveWork(TracerPythonScript):
    def __init__(self, program: str, metric: str, log_dir: str) -> None:
        # raise_exception=False: a failing script must not stop the app (Lightning would, ~30 s later).
        super().__init__(script_path=program, parallel=True, raise_exception=False)
        self.metric = metric
        self.log_dir = log_dir
        self.result: dict[str, Any] | None = None

    # -- in the flow's process -------------------------------------------------------------------

    def start_trial(self, trial_number: int, params: dict[str, Any]) -> None:
        self._forget_ended_calls()
        self.run(trial_number, params)

    def result_of(self, trial_number: int) -> dict[str, Any] | None:
        if self.result is not None and self.result["number"] == trial_number:
            return self.result
        if self.has_failed:
            # Only an error outside the script gets here: run() reports the script's own.
            return TrialResult.failed(trial_number, f"work failed: {self.status.message}").to_dict()
        return None

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
        self.script_args = script_args(params)
        reader = MetricReader(self.metric)
        log_path = Path(self.log_dir) / f"{trial_number}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        error: BaseException | None = None
        script_globals = None
        started = time.monotonic()
        with open(log_path, "w") as log, _preserved_interpreter_state():
            tee = _Tee(reader, log)
            with contextlib.redirect_stdout(tee), contextlib.redirect_stderr(log):
                try:
                    script_globals = super().run()
                except (Exception, SystemExit) as exc:  # the script's failure is the trial's result
                    error = exc
        reader.close()
        self.result = judge(trial_number, reader, error, script_globals, time.monotonic() - started).to_dict()

    def on_after_run(self, script_globals: dict[str, Any]) -> dict[str, Any]:
        return script_globals


class _Tee:
    """Write to the metric reader and the trial's log at once."""

    def __init__(self, reader: MetricReader, log: Any) -> None:
        self.reader, self.log = reader, log

    def write(self, text: str) -> int:
        self.reader.write(text)
        return self.log.write(text)

    def flush(self) -> None:
        self.log.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def _preserved_interpreter_state():
    """Undo what a script that raised leaves behind (TracerPythonScript restores only on success)."""
    argv, path, cwd = sys.argv[:], sys.path[:], os.getcwd()
    environ, saved = os.environ, dict(os.environ)
    try:
        yield
    finally:
        sys.argv[:], sys.path[:] = argv, path
        os.chdir(cwd)
        os.environ = environ  # TracerPythonScript swaps in a plain dict copy
        if dict(environ) != saved:
            environ.clear()
            environ.update(saved)
