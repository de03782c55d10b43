"""A trial script for the tests: records its argv (on stderr, kept in the trial's log) and
reports `loss` = the number of arguments it received, or `--loss` when given."""

import json
import sys

print("argv " + json.dumps(sys.argv[1:]), file=sys.stderr)
given = dict(arg[2:].split("=", 1) for arg in sys.argv[1:])
print(f"loss={given.get('loss', len(given))}")
