"""CPU used by an idle Sweeps app: the UI app waiting for Run, measured over a window.

    python benchmarks/idle_cpu.py [--seconds 10]

Prints the CPU percent of each process of the app (flow, API server, Streamlit, works) and the
total. The flow's loop used a whole core before components/queues.py (see README).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

PROJECT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "app.log"
        env = {**os.environ, "LIGHTING_TESTING": "1", "SWEEP_CONFIG": str(PROJECT / "sweep.yaml")}
        cli = str(Path(sys.executable).parent / "lightning_app")
        with open(log, "w") as out:
            app = subprocess.Popen(
                [cli, "run", "app", str(PROJECT / "app_wi_ui.py"), "--open-ui", "false"],
                cwd=tmp,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 60
            while not re.search("View it in your browser", log.read_text()):
                if time.monotonic() > deadline or app.poll() is not None:
                    sys.exit(f"the app did not start:\n{log.read_text()}")
                time.sleep(0.2)
            time.sleep(3)  # let start-up settle
            procs = [psutil.Process(app.pid), *psutil.Process(app.pid).children(recursive=True)]
            for p in procs:
                p.cpu_percent(None)
            time.sleep(args.seconds)
            total = 0.0
            for p in procs:
                try:
                    pct = p.cpu_percent(None)
                except psutil.NoSuchProcess:
                    continue
                total += pct
                print(f"{pct:6.1f} %  pid {p.pid}  {' '.join(p.cmdline())[:90]}")
            print(f"{total:6.1f} %  total CPU of the idle app over {args.seconds:.0f} s (100 % = one core)")
        finally:
            os.killpg(app.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
