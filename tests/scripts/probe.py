"""Records what the trial's process was given (its devices, cores, thread count) and when it ran.

Writes ``<probe_dir>/<pid>.json``; allocates ``--hog_mb`` MB first when ``--x`` is 0 (a memory hog).
"""

import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--probe_dir", required=True)
parser.add_argument("--hold", type=float, default=0.4)
parser.add_argument("--hog_mb", type=int, default=0)
args = parser.parse_args()

start = time.time()
ballast = b"x" * (args.hog_mb * 2**20) if args.x == 0 else b""  # written, so resident
time.sleep(args.hold)
seen = {
    "x": args.x,
    "start": start,
    "end": time.time(),
    "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
    "cpus": sorted(os.sched_getaffinity(0)),
    "threads": os.environ.get("OMP_NUM_THREADS"),
}
with open(os.path.join(args.probe_dir, f"{os.getpid()}.json"), "w") as out:
    json.dump(seen, out)
print(f"loss={args.x}")
