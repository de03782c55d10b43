"""A Hydra-style trial script: `key=value` arguments, no dashes (W&B's ${args_no_hyphens})."""

import argparse
import json
import sys

parser = argparse.ArgumentParser()
parser.add_argument("overrides", nargs="*", help="key=value")
given = dict(o.split("=", 1) for o in parser.parse_args().overrides)
print("received " + json.dumps(given), file=sys.stderr)
print(f"loss={float(given['x'])}")
