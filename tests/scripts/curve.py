"""A trial script for the pruning tests: a learning curve that settles at `--x`, one epoch per
`--sleep` seconds, each line stamped with the time it was printed."""

import argparse
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--epochs", type=int, default=30)
parser.add_argument("--sleep", type=float, default=0.05)
args = parser.parse_args()

for epoch in range(1, args.epochs + 1):
    time.sleep(args.sleep)
    print(f"epoch={epoch} loss={args.x + 1.0 / epoch} t={time.time()}")
