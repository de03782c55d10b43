"""What sharing a sweep costs and brings: 1, 2 and 3 headless workers on one PostgreSQL sweep.

    python benchmarks/workers.py [--trials 120] [--sleep 0.5] [--workers 1,2,3]
                                 [--url postgresql://sweeps:sweeps@localhost/sweeps]

Each worker runs ``parallel=2`` trials of a script that sleeps ``--sleep`` s and prints its metric.
Printed per number of workers: the wall time from the first trial's start to the last trial's end,
trials per second, the finished trials (always exactly ``--trials``: run_cap holds across workers), how many
each worker ran, and the gap from a trial's end to the next trial's start (p50/p95: the ask
lock, the storage reads, Lightning). On one 2-core machine more workers
mean more processes on the same cores: the figure to read is that run_cap holds and that
the per-trial cost stays flat, not the speed-up.

Past 2,000 trials it also prints whether a sweep slows down as its storage fills (Optuna's RDB
storage is known to: optuna/optuna#3048): the time per trial of the first and of the last 1,000
trials to finish, and their ratio.
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna
import yaml
from _harness import PROJECT

sys.path.insert(0, str(PROJECT))
from sweeps.record import NOT_RUN, REASON_ATTR  # noqa: E402
from sweeps.storage import open_storage, redacted  # noqa: E402

SCRIPT = PROJECT / "tests" / "scripts" / "report.py"


def run(workers: int, trials: int, sleep: float, url: str, workdir: Path) -> None:
    name = f"bench-workers-{workers}-{uuid.uuid4().hex[:6]}"
    config = {
        "name": name,
        "program": str(SCRIPT),
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": sleep}},
        "run_cap": trials,
        "parallel": 2,
        "storage": url,
        "output_dir": str(workdir / name),
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    env = {**os.environ, "SWEEP_CONFIG": str(path), "LIGHTING_TESTING": "1"}
    cli = str(Path(sys.executable).parent / "lightning_app")
    procs, logs = [], []
    for index in range(workers):
        log = workdir / f"{name}-{index}.log"
        procs.append(
            subprocess.Popen(
                [cli, "run", "app", str(PROJECT / "app_wo_ui.py"), "--open-ui", "false"],
                cwd=workdir,
                env=env,
                stdout=open(log, "w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        logs.append(log)
        while "trials already finished" not in log.read_text():  # one server port each: start one by one
            if procs[-1].poll() is not None:
                sys.exit(f"worker {index} failed:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)
    for proc in procs:
        proc.wait(timeout=3600)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    # A trial created after the last place was taken by another worker is failed unrun (no log).
    done = [t for t in study.trials if t.datetime_complete and t.user_attrs.get(REASON_ATTR) != NOT_RUN]
    first, last = min(t.datetime_start for t in done), max(t.datetime_complete for t in done)
    wall = (last - first).total_seconds()
    finished = sum(t.state.is_finished() and t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    per_worker = [len(set(re.findall(r"\] trial (\d+) ", log.read_text()))) for log in logs]
    # The gap before each start (the first wave excluded): from the latest trial end before it, in
    # any slot of any worker, to the start. The storage does not say which slot a trial ran in, and
    # records a trial's end when the study is told, which can come after the slot's next start: a
    # trial ends when its log is last written.
    logs_dir = workdir / name / "logs"
    ends = sorted(datetime.datetime.fromtimestamp((logs_dir / f"{t.number}.log").stat().st_mtime) for t in done)
    starts = sorted(t.datetime_start for t in done)[2 * workers :]  # every start after the first wave
    latest = [bisect.bisect_right(ends, s) for s in starts]  # how many ended by each start
    gaps = [(s - ends[n - 1]).total_seconds() * 1000 for s, n in zip(starts, latest, strict=True) if n]
    print(
        f"{workers:>7} {wall:>8.1f} {finished / wall:>9.2f} {finished:>9} {str(per_worker):>16} "
        f"{statistics.median(gaps):>8.0f} {statistics.quantiles(gaps, n=20)[-1]:>8.0f}"
    )
    if len(done) >= 2 * WINDOW:
        completed = sorted(t.datetime_complete for t in done)
        early, late = (_per_trial_ms(completed[:WINDOW]), _per_trial_ms(completed[-WINDOW:]))
        print(f"{'':7} per trial: first {WINDOW} {early:.1f} ms, last {WINDOW} {late:.1f} ms ({late / early:.2f}x)")


#: The trials whose pace is compared at the start and the end of a long sweep.
WINDOW = 1000


def _per_trial_ms(completed: list[datetime.datetime]) -> float:
    return (completed[-1] - completed[0]).total_seconds() * 1000 / (len(completed) - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=120)
    parser.add_argument("--sleep", type=float, default=0.5)
    parser.add_argument("--workers", default="1,2,3", help="numbers of workers, one run each")
    parser.add_argument(
        "--url", default=os.environ.get("SWEEPS_TEST_POSTGRES", "postgresql://sweeps:sweeps@localhost/sweeps")
    )
    args = parser.parse_args()
    print(f"{args.trials} trials of {args.sleep} s, parallel=2 per worker, {redacted(args.url)}")
    print(
        f"{'workers':>7} {'wall s':>8} {'trials/s':>9} {'finished':>9} {'trials per worker':>16} "
        f"{'gap p50':>8} {'gap p95':>8}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for workers in map(int, args.workers.split(",")):
            run(workers, args.trials, args.sleep, args.url, Path(tmp))


if __name__ == "__main__":
    main()
