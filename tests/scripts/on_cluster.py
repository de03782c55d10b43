"""A trial script for the --cloud tests: a curve settling at `--x`, one epoch per `--sleep` seconds.

`--mode by_x`: x = 0 hangs (for a timeout); x = 1 writes a checkpoint in its trial directory, its pid
to `--pid_file`, and waits for its node to be killed, unless it resumes from that checkpoint.
"""

import argparse
import os
import time
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--mode", default="ok")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--sleep", type=float, default=0.1)
parser.add_argument("--pid_file", default="")
args = parser.parse_args()

if args.mode == "by_x" and args.x == 0:
    print("hanging", flush=True)
    time.sleep(600)
if args.mode == "by_x" and args.x == 1:
    checkpoint = Path(os.environ["SWEEPS_TRIAL_DIR"]) / "state.txt"
    if os.environ.get("SWEEPS_RESUME") == "1" and checkpoint.exists():
        print(f"resumed from {checkpoint.read_text()}")
    else:
        checkpoint.write_text("epoch 3")
        Path(args.pid_file).write_text(str(os.getpid()))
        print("checkpoint written, waiting", flush=True)
        time.sleep(600)
for epoch in range(1, args.epochs + 1):
    time.sleep(args.sleep)
    print(f"epoch={epoch} loss={args.x + 1.0 / epoch}")
print(f"loss={args.x}")
