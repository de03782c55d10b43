"""Scripts written for W&B, run unchanged: offline, in the trial's directory, their logged values read.

A W&B script calls ``wandb.init()``, reads its parameters from ``wandb.config`` and reports with
``wandb.log``. Under Sweeps each trial's run is offline unless the user set ``WANDB_MODE``: no
login, no network, every file W&B writes under the trial's directory (``wandb sync`` uploads it
later), and ``wandb.config`` filled with the trial's parameters through W&B's own sweep hook
(``WANDB_SWEEP_PARAM_PATH``, the file its agent writes).

In a warm trial's child (``sweeps.child``), the run's ``log`` and ``finish`` are traced: each
``log`` prints one tagged line on stdout with the step and every numeric value logged, and the
run's end prints its summary, which holds the trial's value as W&B would take it (the last logged,
unless the script set the summary). Lines, as for a traced Lightning Trainer (``sweeps.trainer``):
the work already reads the trial's output live, for pruning. Only the first run of the trial's own
process is read: child processes that call ``wandb.init`` themselves (W&B's cross-validation
pattern) run offline too, but are not the trial.

This module imports wandb only in the trial's child: the core app runs without it.
"""

from __future__ import annotations

import ast
import atexit
import importlib.util
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

#: Starts the lines the tracer prints: ``[sweeps-wandb] log {"step": 3, "logged": {"loss": 0.4}}``.
TAG = "[sweeps-wandb]"
LOG, SUMMARY = "log", "summary"

#: W&B's own settings, read from the environment by ``wandb.init``.
MODE = "WANDB_MODE"
#: In the trial's directory: the id of the trial's own W&B run, which a run continuing the trial takes again.
RUN_ID_FILE = "wandb-run-id"
#: Read by the tracer only (children's ``wandb.init`` ignore them): where to write the run's id, and the id
#: of the run to continue.
_ID_FILE, _CONTINUE_ID = "SWEEPS_WANDB_ID_FILE", "SWEEPS_WANDB_CONTINUE_ID"

#: How to get wandb when a script needs it and it is missing.
INSTALL = "pip install -r requirements-wandb.txt"


def uses_wandb(program: str) -> bool:
    """Whether the program's source imports wandb, anywhere in it."""
    try:
        tree = ast.parse(Path(program).read_text())
    except (OSError, SyntaxError, ValueError):
        return False
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        if any(name.split(".")[0] == "wandb" for name in names):
            return True
    return False


def installed() -> bool:
    return importlib.util.find_spec("wandb") is not None


def environment(trial_dir: Path, params_file: Path, resume: bool = False) -> dict[str, str]:
    """What a trial's process needs in its environment for its W&B runs: offline (unless the user chose
    a mode), every directory W&B writes in under ``trial_dir`` (nothing in ``HOME``), its parameters;
    when it continues an interrupted trial, the id of that trial's run, which it takes again (offline,
    W&B writes a new run directory under the same id: ``wandb sync`` makes them one run)."""
    wandb_dir = trial_dir / "wandb-files"
    env = {
        "WANDB_DIR": str(trial_dir),  # the run itself: trial_dir/wandb/offline-run-.../
        "WANDB_CONFIG_DIR": str(wandb_dir / "config"),
        "WANDB_CACHE_DIR": str(wandb_dir / "cache"),
        "WANDB_DATA_DIR": str(wandb_dir / "data"),
        "WANDB_ARTIFACT_DIR": str(wandb_dir / "artifacts"),
        "WANDB_SWEEP_PARAM_PATH": str(params_file),
        _ID_FILE: str(trial_dir / RUN_ID_FILE),
    }
    if resume and (trial_dir / RUN_ID_FILE).is_file():
        env[_CONTINUE_ID] = (trial_dir / RUN_ID_FILE).read_text().strip()
    if MODE not in os.environ:
        env[MODE] = "offline"
    return env


def params_file_text(params: Mapping[str, Any]) -> str:
    """The parameters as W&B's agent writes them for ``wandb.config``: ``{name: {value: v}}``, nested
    parameters (``optimizer.lr``) as one value holding a mapping (``optimizer: {value: {lr: ...}}``)."""
    import yaml  # here, not at the top: every trial's fork server imports this module, and most never write it

    nested: dict[str, Any] = {}
    for name, value in params.items():
        *parents, leaf = name.split(".")
        node = nested
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return yaml.safe_dump({name: {"value": value} for name, value in nested.items()}, sort_keys=False)


def trace() -> None:
    """In the trial's child, before the script runs: report what its first W&B run logs, and its
    summary when it finishes (``run.finish()``, or the script's end).

    The summary is kept here as W&B keeps it (each key's last value logged, unless the script set it
    since): W&B's own still lacks the last step's values when the run is about to finish.
    """
    import wandb
    import wandb.sdk.wandb_run as wandb_run
    import wandb.sdk.wandb_summary as wandb_summary

    original_init, original_update = wandb.init, wandb_summary.Summary.update
    original_log, original_finish = wandb_run.Run.log, wandb_run.Run._finish
    pid = os.getpid()
    state: dict[str, Any] = {"run": None, "step": 0, "summary": {}, "summarised": False}

    def ours(run: Any) -> bool:
        if os.getpid() != pid:  # a child process of the script's, forked with this tracer
            return False
        if state["run"] is None:
            state["run"] = run
        return state["run"] is run

    def summarise(run: Any) -> None:
        if ours(run) and not state["summarised"]:
            state["summarised"] = True
            _say(SUMMARY, state["summary"])

    def init(*args: Any, **kwargs: Any) -> Any:
        first = state["run"] is None and os.getpid() == pid
        continued = os.environ.get(_CONTINUE_ID)
        if first and continued and "id" not in kwargs and "WANDB_RUN_ID" not in os.environ:
            kwargs.update(id=continued, resume="allow")
        run = original_init(*args, **kwargs)
        if ours(run):
            atexit.register(summarise, run)
            if os.environ.get(_ID_FILE):
                Path(os.environ[_ID_FILE]).write_text(run.id)
        return run

    def log(self: Any, data: dict[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        original_log(self, data, step=step, commit=commit)
        if not ours(self):
            return
        at = state["step"] if step is None else int(step)
        if commit is not False:
            state["step"] = at + 1
        logged = _numbers(data)
        state["summary"].update(logged)
        _say(LOG, {"step": at, "logged": logged})

    def update(self: Any, values: dict[str, Any]) -> None:
        original_update(self, values)
        if state["run"] is not None and os.getpid() == pid and self is state["run"].summary:
            state["summary"].update(_numbers(values))

    def finish(self: Any, exit_code: int | None = None) -> None:
        summarise(self)
        original_finish(self, exit_code)

    wandb.init, wandb_summary.Summary.update = init, update
    wandb_run.Run.log, wandb_run.Run._finish = log, finish


def trace_after_exec() -> None:
    """In a trial's child about to exec its ``command``: a Python program it execs into (this very
    process) traces its W&B run from ``sweeps/site/sitecustomize.py``."""
    site = str(Path(__file__).resolve().parent / "site")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))
    os.environ["SWEEPS_TRACE_WANDB_PID"] = str(os.getpid())


def line(kind: str, content: Mapping[str, Any]) -> str:
    return f"{TAG} {kind} {json.dumps(content)}"


def read(rest: str) -> tuple[str, dict[str, Any]]:
    """A tagged line without its tag: its kind and content."""
    kind, _, content = rest.partition(" ")
    return kind, json.loads(content)


def _say(kind: str, content: Mapping[str, Any]) -> None:
    """One whole line on the process's stdout, past any wrapper W&B put around ``sys.stdout``."""
    os.write(1, (line(kind, content) + "\n").encode())


def _numbers(data: Mapping[str, Any]) -> dict[str, float]:
    """The numbers logged (images, tables and histograms are not a trial's metrics; a NaN is the
    trial's to fail on), without W&B's own (``_step``, ``_runtime``, ``_timestamp``)."""
    found = {}
    for name, value in data.items():
        if isinstance(value, bool) or str(name).startswith("_"):
            continue
        try:
            found[str(name)] = float(value)
        except (TypeError, ValueError):
            continue
    return found
