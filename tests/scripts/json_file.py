"""A trial script that reads its parameters from a JSON file (W&B's ${args_json_file})."""

import json
import sys

given = json.load(open(sys.argv[1]))
print("received " + json.dumps(given), file=sys.stderr)
print(f"loss={given['x']}")
