"""Run at the start of a trial's Python process that Sweeps did not fork itself (a ``command:`` that
execs Python), through ``PYTHONPATH``: traces its W&B run as a warm trial's child is traced.

Only in the trial's own process (the one the trial's child exec'd into), and only when the sweep
asks for it; a ``sitecustomize`` of the user's own, further on the path, is run after this one.
"""

import importlib.util
import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _trace_wandb() -> None:
    if os.environ.get("SWEEPS_TRACE_WANDB_PID") != str(os.getpid()):
        return
    # By file, not through the sweeps package: the user's program sees no module of Sweeps on its path.
    spec = importlib.util.spec_from_file_location("_sweeps_wandb_runs", _HERE.parent / "wandb_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.trace()


def _chain() -> None:
    """Run the next ``sitecustomize`` on the path, which this one hides."""
    for entry in sys.path:
        if entry and Path(entry).resolve() != _HERE:
            candidate = Path(entry) / "sitecustomize.py"
            if candidate.is_file():
                spec = importlib.util.spec_from_file_location("_user_sitecustomize", candidate)
                spec.loader.exec_module(importlib.util.module_from_spec(spec))
                return


try:
    _trace_wandb()
except Exception as err:  # noqa: BLE001 - the trial runs untraced rather than not at all
    print(f"sweeps: could not trace the trial's W&B run: {err}", file=sys.stderr)
_chain()
