"""Pruning's saving on the SGD example: the same sweep with and without ``early_terminate``.

    python benchmarks/pruning.py [--trials 40] [--seed 0]

Both runs use the same sampler seed and number of trials, through the real headless app; by
default with random proposals, so that they try the same configurations. Prints
total trial-seconds, wall time and best value of each, and the ratios. Target: at least 2x
fewer trial-seconds with pruning, best value within 1 % of the unpruned sweep's.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml
from _harness import PROJECT, run_headless, trial_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--method",
        default="random",
        help="random (default): both runs try the very same configurations, so the comparison isolates "
        "pruning; bayes: TPE, which also learns from the pruned trials",
    )
    args = parser.parse_args()

    base = yaml.safe_load((PROJECT / "sweep_sgd.yaml").read_text())
    base.update(run_cap=args.trials, seed=args.seed, method=args.method, program=str(PROJECT / base["program"]))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, pruned in (("without pruning", False), ("with pruning", True)):
            config = dict(base, name=f"sgd-{'pruned' if pruned else 'full'}")
            if not pruned:
                config.pop("early_terminate")
            workdir = Path(tmp) / config["name"]
            config["storage"] = f"sqlite:///{workdir / 'sweep.db'}"
            config["output_dir"] = str(workdir / "results")
            wall, study, _ = run_headless(config, workdir)
            states = [t.state.name for t in study.trials]
            results[label] = (trial_seconds(study), wall, study.best_value)
            print(
                f"{label:16s} trial-seconds {results[label][0]:7.1f}  wall {wall:6.1f} s  "
                f"best {study.metric_names[0] if study.metric_names else 'val_loss'}={study.best_value:.5f}  "
                f"COMPLETE {states.count('COMPLETE')} PRUNED {states.count('PRUNED')}"
            )
    full, pruned = results["without pruning"], results["with pruning"]
    print(f"trial-seconds saved: {full[0] / pruned[0]:.2f}x (target >= 2x)")
    print(f"wall time ratio (pruned / full): {pruned[1] / full[1]:.2f}")
    print(f"best value, pruned vs full: {100 * (pruned[2] - full[2]) / full[2]:+.2f} % (target: no worse than 1 %)")


if __name__ == "__main__":
    main()
