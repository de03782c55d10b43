"""A trial script for the tests: prints `loss=<x>` and then behaves as `--mode` says."""

import argparse
import math
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, default=0.0)
parser.add_argument("--mode", default="ok")
parser.add_argument("--sleep", type=float, default=0.0)
args = parser.parse_args()
FAULTS = ["raise", "exit3", "os_exit", "abort", "segfault", "hang", "nan", "silent"]
time.sleep(args.sleep)

mode = args.mode
if mode == "auto":  # a failure chosen by x, so that a random sweep mixes them
    mode = ["ok", "raise", "exit3"][int(args.x) % 3]
if mode == "by_x":  # x = 0..7: every kind of failure; x >= 8: fine
    mode = FAULTS[int(args.x)] if args.x < len(FAULTS) else "ok"

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
if mode == "os_exit":
    os._exit(1)
if mode == "abort":
    os.abort()
if mode == "segfault":
    import ctypes

    ctypes.string_at(0)
if mode == "hang":
    time.sleep(3600)
if mode == "stderr":
    print("a warning", file=sys.stderr)
