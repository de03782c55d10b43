"""Sweeps' own cost per trial, against the loop a user would write by hand.

    python benchmarks/overhead.py [--trials 300] [--parallel 2] [--repeat 1] [--script argparse|bare]

A no-op trial script (it prints its metric at once; ``bare``: one that imports nothing, the case
least favourable to Sweeps' warm fork server) runs N times, ``parallel`` at a time:

* Sweeps: the real ``lightning run app app_wo_ui.py`` on an SQLite storage;
* the hand loop: ``optuna`` ``study.optimize(objective, n_jobs=parallel)`` on an SQLite storage,
  whose objective runs the same script with ``subprocess.run`` and parses its stdout.

Both use Optuna's RandomSampler. Printed for each: wall time, trials per second, the steady-state
time per trial (first trial's start to last trial's end, over N), the median and p95 per-trial
overhead (a trial's end to the next trial's start in the same slot), the start-up time (command to
first trial's start); then the ratios Sweeps / hand loop. With ``--repeat R``, R pairs of runs
alternate and each figure is the median over them (a ratio: the median of the pairs' ratios).
"""

from __future__ import annotations

import argparse
import itertools
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import optuna
from _harness import noop_config, run_headless

#: The trial scripts: argparse (~4 ms of imports a cold process pays), or nothing to speak of.
SCRIPTS = {
    "argparse": Path(__file__).resolve().parent / "noop.py",
    "bare": Path(__file__).resolve().parent / "noop_bare.py",
}


def measure(stamps: list[tuple[float, str]], started: float, wall: float) -> dict[str, float]:
    """``stamps``: (time the script ran, slot) per trial."""
    times = sorted(t for t, _ in stamps)
    by_slot = defaultdict(list)
    for t, slot in stamps:
        by_slot[slot].append(t)
    gaps = sorted(b - a for ts in by_slot.values() for a, b in itertools.pairwise(sorted(ts)))
    n = len(stamps)
    return {
        "wall s": wall,
        "trials/s": n / wall,
        "per trial ms": 1000 * (times[-1] - times[0]) / n,
        "overhead p50 ms": 1000 * statistics.median(gaps),
        "overhead p95 ms": 1000 * gaps[int(0.95 * (len(gaps) - 1))],
        "start-up s": times[0] - started,
    }


def sweeps(n: int, parallel: int, workdir: Path, script: Path) -> dict[str, float]:
    config = noop_config("overhead", script, n, parallel, workdir)
    started = time.time()
    wall, study, _ = run_headless(config, workdir)
    stamps = []
    for t in study.trials:
        log = (workdir / "results" / "logs" / f"{t.number}.log").read_text()
        stamp, slot = re.search(r"t=(\S+) slot=(\d+)", log).groups()
        stamps.append((float(stamp), slot))
    return measure(stamps, started, wall)


def hand_loop(n: int, parallel: int, workdir: Path, script: Path) -> dict[str, float]:
    started = time.time()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=f"sqlite:///{workdir / 'hand.db'}", sampler=optuna.samplers.RandomSampler(seed=0)
    )
    stamps = []

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        out = subprocess.run([sys.executable, str(script), f"--x={x}"], capture_output=True, text=True).stdout
        loss, stamp = re.search(r"loss=(\S+) t=(\S+)", out).groups()
        stamps.append((float(stamp), str(threading.get_ident())))
        return float(loss)

    study.optimize(objective, n_trials=n, n_jobs=parallel)
    return measure(stamps, started, time.time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument(
        "--repeat", type=int, default=1, help="pairs of runs, alternating; the median of each figure is printed"
    )
    parser.add_argument("--script", choices=SCRIPTS, default="argparse", help="the trial script (bare: no imports)")
    args = parser.parse_args()
    script = SCRIPTS[args.script]
    ours, theirs = [], []
    for _ in range(args.repeat):  # alternating, so that both see the same machine (these are noisy)
        with tempfile.TemporaryDirectory() as tmp:
            ours.append(sweeps(args.trials, args.parallel, Path(tmp), script))
            theirs.append(hand_loop(args.trials, args.parallel, Path(tmp), script))
    print(f"{args.trials} no-op trials ({script.name}), {args.parallel} at a time, SQLite storage, ", end="")
    print(f"median of {args.repeat} pair(s)")
    print(f"{'':18s}{'Sweeps':>10s}{'hand loop':>12s}{'ratio':>8s}")
    for key in ours[0]:
        mine, hand = statistics.median(r[key] for r in ours), statistics.median(r[key] for r in theirs)
        ratio = statistics.median(a[key] / b[key] for a, b in zip(ours, theirs, strict=True))  # of each pair's ratio
        print(f"{key:18s}{mine:10.2f}{hand:12.2f}{ratio:8.2f}")


if __name__ == "__main__":
    main()
