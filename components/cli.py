"""The ``lightning`` command: ``lightning run app app_wi_ui.py``, the user's own words.

lightning-app 2.3.2 installs its command as ``lightning_app`` (``lightning`` was the umbrella
package's, which dropped apps in 2.4 and ships no command of that name). This one hands every
command and flag to lightning-app's own CLI, so ``lightning run app`` takes exactly what
``lightning_app run app`` takes, with one exception: ``--cloud`` ran the works on Lightning's cloud,
which was shut down upstream. Asked for, it says how Sweeps spreads trials over machines instead,
and exits 2 (a usage error), before anything starts.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

#: What ``--cloud`` answers.
NO_CLOUD = (
    "sweeps: --cloud: Lightning's cloud was shut down upstream, so there is nothing to run on; to spread trials "
    "over machines, start the same command without --cloud on each machine, with a shared PostgreSQL storage "
    "(README: Several machines on one sweep)"
)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["run", "app"] and any(arg == "--cloud" or arg.startswith("--cloud=") for arg in args):
        print(NO_CLOUD, file=sys.stderr)
        return 2
    from lightning_app.cli.lightning_cli import main as lightning_app

    sys.argv = ["lightning", *args]  # lightning-app's CLI reads its arguments (and click its name) from here
    return lightning_app()
