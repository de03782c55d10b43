"""Defects of the pinned lightning-app, Streamlit and HiPlot that Sweeps works around at run time, all here.

A fix patches code that is not ours, so it is only right for the release it was read against:
each :class:`Fix` names its package and version, and applying one to any other release stops the
app with one line (the defect may be gone, or the patched code may have moved). ``tests/test_fixes.py``
shows each defect on the unpatched code and its absence once patched.

- ``command``: what lightning-app's command asks before it runs one (the ``lightning`` command);
- ``lean_imports``: what lightning-app imports into every app process for nothing;
- ``loop``, ``runtime``, ``shutdown``: the app's loop, its queues, its state diffs, its processes;
- ``streamlit_page``: the page's process, and how Lightning starts it;
- ``hiplot_component``: HiPlot's Streamlit component.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Fix:
    """One defect of one release, and the patch that works around it."""

    package: str  # the distribution, as pip names it
    version: str  # the release the patch was written for
    defect: str  # what goes wrong without it, in a line
    #: Idempotent (a process may apply it more than once); None for a fix the adapters call where
    #: they need it (its version is checked all the same).
    patch: Callable[[], None] | None = None


def check_version(package: str, version: str) -> None:
    """Stop with one line unless ``package`` is installed at ``version``."""
    installed = importlib.metadata.version(package)
    if installed != version:
        raise SystemExit(
            f"sweeps: {package} {installed} is installed; Sweeps' fixes (components/fixes) were written for "
            f"{package}=={version}: pip install -r requirements.txt"
        )


_applied: set[Fix] = set()


def apply(fixes: Iterable[Fix]) -> None:
    """Check each fix's version and patch, once per process."""
    for fix in fixes:
        if fix in _applied:
            continue
        check_version(fix.package, fix.version)
        if fix.patch is not None:
            fix.patch()
        _applied.add(fix)
