"""A trial script for the tests: prints `loss=<x>` and then behaves as `--mode` says."""

import argparse
import math
import os
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, default=0.0)
parser.add_argument("--mode", default="ok")
args = parser.parse_args()

mode = args.mode
if mode == "auto":  # a failure chosen by x, so that a random sweep mixes them
    mode = ["ok", "raise", "exit3"][int(args.x) % 3]

if mode == "global":
    loss = args.x  # reported through the script's globals, nothing printed
elif mode == "nan":
    print(f"loss={math.nan}")
elif mode == "silent":
    print("nothing to see")
else:
    print(f"epoch=1 loss={args.x + 1}")
    print(f"epoch=2 loss={args.x}")
if mode == "raise":
    raise ValueError(f"bad x {args.x}")
if mode == "exit3":
    sys.exit(3)
if mode == "stderr":
    print("a warning", file=sys.stderr)
