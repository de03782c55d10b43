"""A long sweep of the no-op trial: does anything but the storage grow with the number of trials?

    python benchmarks/scale.py [--trials 10000]

Runs the real headless app (`lightning run app app_wo_ui.py`) and prints, when 100, 1,000 and
10,000 trials have finished: the size of the app's serialized state (GET /api/v1/state), the RSS
of the flow's process and of the work processes, and the time per trial over the last 100 trials.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import optuna
import psutil
import yaml
from optuna.trial import TrialState

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from tests.harness import app_address, slot_processes, start_app  # noqa: E402

NOOP = Path(__file__).resolve().parent / "noop.py"


def state_size(app_url: str) -> int:
    headers = {"X-Lightning-Session-UUID": "x", "X-Lightning-Session-ID": "x"}
    with urllib.request.urlopen(urllib.request.Request(f"{app_url}/api/v1/state", headers=headers), timeout=10) as r:
        return len(r.read())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10_000)
    args = parser.parse_args()
    marks = [m for m in (100, 1_000, 10_000) if m <= args.trials]
    with tempfile.TemporaryDirectory() as tmp:
        storage = f"sqlite:///{tmp}/scale.db"
        config = {
            "name": "scale",
            "program": str(NOOP),
            "method": "random",
            "seed": 0,
            "metric": {"name": "loss"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
            # a few more than the last mark, so that the app still runs when it is measured
            "run_cap": args.trials + 200,
            "parallel": 2,
            "storage": storage,
            "output_dir": f"{tmp}/results",
        }
        path = Path(tmp) / "sweep.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        log = open(Path(tmp) / "app.log", "w")
        # The README's `lightning run app`, not `lightning_app run app`: that one imports lightning-app before
        # Sweeps, and with it PyTorch into the flow's process (a larger base, against which the growth looks smaller).
        app = start_app("app_wo_ui.py", path, Path(tmp), log, subprocess.STDOUT)
        try:
            app_url = app_address(app, Path(log.name))
            if app_url is None:
                sys.exit(f"the app did not start:\n{Path(log.name).read_text()}")
            print(
                f"{'finished':>9s} {'state bytes':>12s} {'flow RSS MB':>12s} {'works RSS MB':>13s} "
                f"{'ms/trial (last 100)':>20s}"
            )
            study = None
            for mark in marks:
                while True:
                    if study is None:
                        try:
                            study = optuna.load_study(study_name="scale", storage=storage)
                        except KeyError:
                            time.sleep(0.5)
                            continue
                    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                    if len(done) >= mark:
                        break
                    if app.poll() is not None:
                        sys.exit(f"the app exited early:\n{Path(log.name).read_text()[-2000:]}")
                    time.sleep(0.5)
                flow = psutil.Process(app.pid)
                works = slot_processes(app.pid)
                ends = sorted(t.datetime_complete for t in done)[mark - 100 : mark]
                per_trial = (ends[-1] - ends[0]).total_seconds() / (len(ends) - 1) * 1000
                print(
                    f"{mark:9d} {state_size(app_url):12d} {flow.memory_info().rss / 2**20:12.1f} "
                    f"{sum(w.memory_info().rss for w in works) / 2**20:13.1f} {per_trial:20.1f}"
                )
        finally:
            try:
                os.killpg(app.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


if __name__ == "__main__":
    main()
