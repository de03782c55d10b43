"""What a W&B run costs a trial: the no-op trial printing its metric, against the same trial written
for W&B (``wandb.init`` and one ``wandb.log``, offline under Sweeps).

    python benchmarks/wandb_overhead.py [--trials 20] [--parallel 1]

Runs the real headless app on each and prints, per script, the median and p90 of the trials' own
durations (from the storage: what a trial costs, not the app's start-up), then the difference.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _harness import noop_config, run_headless

HERE = Path(__file__).resolve().parent


def durations(script: Path, n: int, parallel: int, workdir: Path) -> list[float]:
    _, study, _ = run_headless(noop_config(script.stem, script, n, parallel, workdir), workdir)
    return sorted(t.duration.total_seconds() for t in study.trials if t.duration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--parallel", type=int, default=1)
    args = parser.parse_args()
    figures = {}
    with tempfile.TemporaryDirectory() as tmp:
        for script in (HERE / "noop.py", HERE / "noop_wandb.py"):
            found = durations(script, args.trials, args.parallel, Path(tmp) / script.stem)
            figures[script.stem] = (statistics.median(found), found[int(0.9 * (len(found) - 1))])
    print(f"{args.trials} trials, {args.parallel} at a time: a trial's own duration (s)")
    print(f"{'':14s}{'median':>8s}{'p90':>8s}")
    for name, (median, p90) in figures.items():
        print(f"{name:14s}{median:8.3f}{p90:8.3f}")
    print(f"a W&B run adds {figures['noop_wandb'][0] - figures['noop'][0]:.3f} s per trial (median)")


if __name__ == "__main__":
    main()
