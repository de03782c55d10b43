"""A GPU-bound trial for benchmarks/gpu.py: ``--steps`` large matrix products on the trial's device."""

import argparse

import torch

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--size", type=int, default=4096)
args = parser.parse_args()

assert torch.cuda.device_count() == 1, f"the trial sees {torch.cuda.device_count()} devices, not its one"
a = torch.randn(args.size, args.size, device="cuda")
for _ in range(args.steps):
    a = torch.tanh(a @ a / args.size**0.5)
torch.cuda.synchronize()
print(f"loss={float(a.abs().mean()) * args.x}")
