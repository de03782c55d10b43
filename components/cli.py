"""The ``lightning`` command: ``lightning run app app_wi_ui.py``, the user's own words.

lightning-app 2.3.2 installs its command as ``lightning_app`` (``lightning`` was the umbrella
package's, which dropped apps in 2.4 and ships no command of that name). This one hands every
command and flag to lightning-app's own CLI, so ``lightning run app`` takes exactly what
``lightning_app run app`` takes, with one exception: ``--cloud`` ran the works on Lightning's cloud,
which was shut down upstream. Here it runs the trials on a Ray cluster (``sweeps.cluster``): the app
is told so through its environment, as lightning-app would try its cloud with the flag.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from sweeps.cluster import CLOUD_VARIABLE


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:2] == ["run", "app"] and any(_is_cloud(arg) for arg in args):
        args = [arg for arg in args if not _is_cloud(arg)]
        os.environ[CLOUD_VARIABLE] = "1"  # for the app's every process: sweeps.config reads it
    from lightning_app.cli.lightning_cli import main as lightning_app

    from components import fixes
    from components.fixes import command

    fixes.apply(command.FIXES)  # no question to PyPI, nor on stdin, before the command runs
    sys.argv = ["lightning", *args]  # lightning-app's CLI reads its arguments (and click its name) from here
    return lightning_app()


def _is_cloud(arg: str) -> bool:
    return arg == "--cloud" or arg.startswith("--cloud=")
