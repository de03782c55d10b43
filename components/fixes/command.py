"""What lightning-app's command does before any command runs, which the ``lightning`` command skips.

Unless ``LIGHTING_TESTING`` is set, lightning-app 2.3.2's ``main`` (``lightning_app/cli/lightning_cli.py``)
first:

- runs ``python -c "import sys; print(sys.executable)"`` with the ``python`` found on PATH, and when
  that is another interpreter than the command's own (a venv's command started by a process
  manager or a job script whose PATH has the system's python) it says it is "switching to your
  current environment" and asks on stdin whether to install lightning-app there: at a terminal the
  app waits for an answer, and on an input that stays open without data it waits for ever;
- asks PyPI for lightning-app's latest release (``requests.get`` without a timeout) on every start:
  on a node whose firewall drops the packets the start waits for TCP's own timeout, minutes, and
  a newer release would be offered as an upgrade, which Sweeps' pins forbid.

Neither belongs in an app started by a process manager, on a node without internet, under pinned
requirements. The ``lightning`` command (``components/cli.py``) skips both. ``lightning_app run app``
runs them before any of Sweeps is imported; lightning-app's own switch, ``LIGHTING_TESTING=1``,
skips them there.
"""

from __future__ import annotations

import lightning_app.cli.lightning_cli

from components.fixes import Fix


def _skip() -> None:
    pass


def _no_checks_at_start() -> None:
    lightning_app.cli.lightning_cli._check_environment_and_redirect = _skip
    lightning_app.cli.lightning_cli._check_version_and_upgrade = _skip


FIXES = (
    Fix(
        "lightning-app",
        "2.3.2",
        "each start asks PyPI for a newer lightning-app without a timeout, and asks on stdin to install "
        "lightning-app into the `python` on PATH when that is another interpreter",
        _no_checks_at_start,
    ),
)
