"""A trial script with two objectives whose Pareto front is known: a bigger model is slower and more
accurate, and any noise only costs accuracy. The front is every trial with ``noise`` 0.

Prints ``latency`` (to minimise) and ``acc`` (to maximise), and two metrics that are no objective.
"""

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--size", type=float, required=True)
parser.add_argument("--noise", type=float, default=0.0)
args = parser.parse_args()

print(f"epoch=0 train_loss={2 - args.size}")
print(f"epoch=1 train_loss={1 - args.size} params_m={10 * args.size}")
print(f"latency={args.size} acc={args.size - args.noise}")
