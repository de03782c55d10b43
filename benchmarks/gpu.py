"""GPUs per trial, where GPUs exist: N trials at once on N devices, against the same trials one device
at a time.

    python benchmarks/gpu.py [--trials-per-device 2] [--steps 300]

Runs the real headless app twice on ``benchmarks/gpu_train.py`` (matrix products on the trial's
device, which checks it sees exactly one): ``resources: {gpus_per_trial: 1}`` on every device this
machine has, then on its first device alone. Prints both wall times, their ratio (N at best), and
each device's mean utilisation while the first run ran (``nvidia-smi``, sampled twice a second).
Where no GPU is found it says so and runs nothing: it has not been run where no GPU was present.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from _harness import PROJECT, noop_config, run_headless

sys.path.insert(0, str(PROJECT))

from sweeps.resources import Machine  # noqa: E402

HERE = Path(__file__).resolve().parent


def utilisation(stop: threading.Event, samples: dict[str, list[float]]) -> None:
    """Sample each device's utilisation (%) until ``stop`` is set."""
    query = ["nvidia-smi", "--query-gpu=index,utilization.gpu", "--format=csv,noheader,nounits"]
    while not stop.wait(0.5):
        try:
            listed = subprocess.run(query, capture_output=True, text=True, timeout=5, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return
        for line in listed.strip().splitlines():
            index, percent = (part.strip() for part in line.split(","))
            samples.setdefault(index, []).append(float(percent))


def sweep(devices: tuple[str, ...], trials: int, steps: int, workdir: Path) -> float:
    config = noop_config("gpu", HERE / "gpu_train.py", trials, len(devices), workdir)
    config["parameters"]["steps"] = {"value": steps}
    config["resources"] = {"gpus_per_trial": 1}
    wall, study, _ = run_headless(config, workdir, CUDA_VISIBLE_DEVICES=",".join(devices))
    failed = [t for t in study.trials if t.state.name != "COMPLETE"]
    if failed:
        sys.exit(f"{len(failed)} trials did not complete: {failed[0].user_attrs.get('fail_reason')}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials-per-device", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    machine = Machine.detect()
    if not machine.gpus:
        print(f"no GPU found ({machine.found_by}): nothing run")
        return
    trials = args.trials_per_device * len(machine.gpus)
    print(f"{trials} trials of {args.steps} steps; devices {','.join(machine.gpus)} ({machine.found_by})")
    samples: dict[str, list[float]] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=utilisation, args=(stop, samples), daemon=True)
    with tempfile.TemporaryDirectory() as tmp:
        sampler.start()
        spread = sweep(machine.gpus, trials, args.steps, Path(tmp) / "spread")
        stop.set()
        sampler.join()
        one = sweep(machine.gpus[:1], trials, args.steps, Path(tmp) / "one")
    print(f"{len(machine.gpus)} devices at once: {spread:.1f} s; one device at a time: {one:.1f} s")
    print(f"wall ratio (one / spread): {one / spread:.2f}x (at best {len(machine.gpus)}x)")
    for index, percent in sorted(samples.items()):
        print(f"GPU {index}: mean utilisation {statistics.mean(percent):.0f}% over {len(percent)} samples")


if __name__ == "__main__":
    main()
