"""The no-op trial of the overhead benchmarks: prints its metric at once, with when and from where."""

import argparse
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, default=0.0)
args = parser.parse_args()
print(f"loss={args.x} t={time.time()} slot={os.getppid()}")
