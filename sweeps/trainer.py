"""Sweeping a PyTorch Lightning script unchanged: its ``Trainer`` is traced, and a callback added.

When the trial's script builds a ``lightning.pytorch.Trainer`` or a ``pytorch_lightning.Trainer``,
the trial's child wraps ``Trainer.__init__`` (as ``TracerPythonScript``'s tracer would) and appends a
callback that, after each validation, prints one tagged line on stdout (``[sweeps] validation
epoch=3 val_loss=0.41``) and checks the trial's prune file. Lines, not a side channel, because the work
already reads the trial's stdout live for the metric (``sweeps.metrics``), in order with what the
script prints itself, and keeps it in the trial's log. When the pruner has said stop, the callback
sets ``trainer.should_stop``: Lightning ends ``fit`` cleanly (checkpoints and loggers written), so
the work gives such a trial a grace period before it kills it (:func:`prune_grace`).
At the end of ``fit`` it prints the metric's final value (when it changed since the last
validation) and the best checkpoint's path.

This module imports neither torch nor Lightning at import time: the core app runs without them.
Lightning is imported only by :func:`trace_trainers`, in the child of a script that uses it.
"""

from __future__ import annotations

import ast
import functools
import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Any

#: Starts every line the callback prints; the rest of the line says what it is.
TAG = "[sweeps]"
#: After each validation: ``[sweeps] validation epoch=3 val_loss=0.41`` (the metric when the trainer has it).
VALIDATION = "validation"
#: Once, when the callback is in place: ``[sweeps] traced``. The work then lets the trial stop by itself.
TRACED = "traced"
#: At the end of fit: ``[sweeps] final epoch=10 val_loss=0.39``, when it differs from the last validation's.
FINAL = "final"
#: At the end of fit, when a ModelCheckpoint saved one: ``[sweeps] checkpoint: /abs/path/epoch=9-step=230.ckpt``.
CHECKPOINT = "checkpoint:"
#: When fit continues from the trial's last checkpoint, first each validation the checkpoint's run made
#: (``[sweeps] restored epoch=2 val_loss=0.52``), then ``[sweeps] resumed epoch=6`` (the first epoch it runs).
RESTORED = "restored"
RESUMED = "resumed"
#: The trial's last checkpoint, in its directory: saved after each validation, continued from by a retry.
RESUME_CHECKPOINT = "resume.ckpt"

#: The Lightning packages whose Trainer is traced, by the name a script imports them under.
PACKAGES = {"lightning": "lightning.pytorch", "pytorch_lightning": "pytorch_lightning"}

#: A pruned traced trial gets at least this long to end by itself before it is killed.
MIN_GRACE_SECONDS = 5.0
#: A metric's name as a ``name=value`` line carries it (``sweeps.metrics``).
_NAME = re.compile(r"[A-Za-z_][\w.\-/]*")


def validation_line(metrics: Mapping[str, float], step_name: str, step: int, kind: str = VALIDATION) -> str:
    """What the callback prints after a validation (``kind=FINAL``: at the end of fit): every metric."""
    return f"{TAG} {kind} {step_name}={step}" + "".join(f" {name}={value!r}" for name, value in metrics.items())


def checkpoint_line(path: str) -> str:
    return f"{TAG} {CHECKPOINT} {path}"


def prune_grace(validation_times: Sequence[float], started: float) -> float:
    """How long a pruned traced trial may take to stop by itself.

    The callback acts at the end of the next validation, so twice the longest time seen between
    two validations (or from the start to the first), and at least ``MIN_GRACE_SECONDS``. A
    script that does not stop by then is killed, and still ends PRUNED.
    """
    times = [started, *validation_times]
    longest = max((b - a for a, b in pairwise(times)), default=0.0)
    return max(MIN_GRACE_SECONDS, 2 * longest)


def lightning_imports(source: str) -> set[str]:
    """The Lightning packages (``PACKAGES`` values) that a script's source imports, anywhere in it."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module]
        else:
            continue
        found |= {PACKAGES[top] for top in (name.split(".")[0] for name in names) if top in PACKAGES}
    return found


def trainer_packages(program: str) -> list[str]:
    """The Lightning packages whose Trainer to trace for this script: those already imported here
    (the script's imports, loaded by the fork server, reach them through any module) and those its
    source imports (at the top or inside a function), when installed."""
    try:
        source = Path(program).read_text()
    except OSError:
        source = ""
    wanted = lightning_imports(source) | {p for p in PACKAGES.values() if p in sys.modules}
    return sorted(p for p in wanted if p in sys.modules or _installed(p))


def _installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class TrialHooks:
    """What the callback of one trial needs to know."""

    prune_file: str  # the work creates it when the pruner says stop
    root_dir: str  # the trial's directory: the Trainer's default_root_dir unless the script sets one
    resume: bool = False  # fit continues from the last checkpoint in root_dir

    @property
    def checkpoint(self) -> str:
        return os.path.join(self.root_dir, RESUME_CHECKPOINT)


def trace_trainers(packages: Sequence[str], hooks: TrialHooks) -> None:
    """In the trial's child: add the callback to every Trainer the script builds, by wrapping
    ``Trainer.__init__`` (a Trainer subclass and LightningCLI's Trainer go through it too), as
    ``TracerPythonScript``'s tracer would with a ``pre_fn``."""
    for package in packages:
        trainer = importlib.import_module(package).Trainer
        trainer.__init__ = _traced(trainer.__init__, package, hooks)
        trainer.fit = _resuming(trainer.fit, hooks)


def _traced(init: Callable[..., None], package: str, hooks: TrialHooks) -> Callable[..., None]:
    @functools.wraps(init)
    def traced_init(trainer: Any, *args: Any, **kwargs: Any) -> None:
        init(trainer, *args, **_with_callback(package, hooks, kwargs))

    return traced_init


def _resuming(fit: Callable[..., Any], hooks: TrialHooks) -> Callable[..., Any]:
    """``Trainer.fit`` that, in a run continuing an interrupted trial, starts from the trial's last
    checkpoint, unless the script names one itself."""

    signature = inspect.signature(fit)

    @functools.wraps(fit)
    def resuming_fit(trainer: Any, *args: Any, **kwargs: Any) -> Any:
        call = signature.bind(trainer, *args, **kwargs)
        if hooks.resume and call.arguments.get("ckpt_path") is None and os.path.exists(hooks.checkpoint):
            call.arguments["ckpt_path"] = hooks.checkpoint
        return fit(*call.args, **call.kwargs)

    return resuming_fit


def _with_callback(package: str, hooks: TrialHooks, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A Trainer's keyword arguments plus the callback, and a root dir of the trial's own.

    Without its own ``default_root_dir``, every trial would write ``lightning_logs/version_N`` into
    the app's working directory, and two trials starting at once could pick the same N.
    """
    callbacks = kwargs.get("callbacks") or []
    if not isinstance(callbacks, (list, tuple)):
        callbacks = [callbacks]
    kwargs["callbacks"] = [*callbacks, callback_class(package)(hooks)]
    if kwargs.get("default_root_dir") is None:
        kwargs["default_root_dir"] = hooks.root_dir
    print(f"{TAG} {TRACED}", flush=True)
    return kwargs


@cache
def callback_class(package: str) -> type:
    """The callback, subclassing ``package``'s ``Callback`` (``lightning.pytorch`` and
    ``pytorch_lightning`` each have their own, and a Trainer accepts only its package's)."""
    base = importlib.import_module(package).Callback

    class SweepsCallback(base):  # type: ignore[misc, valid-type]
        """Reports the metrics after each validation, stops when the pruner said so, names the best
        checkpoint; keeps the trial's last checkpoint, and says where a run continuing from it started."""

        def __init__(self, hooks: TrialHooks) -> None:
            self.hooks = hooks
            self.last: dict[str, float] = {}
            self.pruned = False
            self.curve: list[list[Any]] = []  # every validation of the trial so far: step name, step, metrics
            self.restored: dict[str, Any] | None = None  # what the checkpoint fit continues from holds

        def state_dict(self) -> dict[str, Any]:
            """Saved in each checkpoint: the random generators' states, so that a run continuing from it
            draws what the interrupted one would have (Lightning's checkpoints do not keep them), and the
            trial's curve up to it. The whole curve, not the last value: a killed run's last values may
            not have reached the storage (they travel from the work to the flow in batches), and its
            script may outlive the work long enough to write another checkpoint."""
            return {"rng": _rng_states(), "curve": self.curve}

        def load_state_dict(self, state_dict: dict[str, Any]) -> None:
            # Only a run continuing this trial takes its checkpoint's generators and curve: a script may
            # also fit from a checkpoint of another trial (fine-tuning the best of an earlier sweep), whose
            # randomness and curve are not this trial's.
            self.restored = state_dict if self.hooks.resume else None

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            # Here, not when loaded: fit draws from the generators between the two (its sanity check,
            # its first data loader), which the interrupted run did before it saved them.
            if self.restored is not None:
                _set_rng_states(self.restored["rng"])

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            if self.restored is None:
                return
            self.curve = self.restored.get("curve", [])
            if trainer.is_global_zero:  # the first epoch this run trains
                for step_name, step, metrics in self.curve:
                    print(validation_line(metrics, step_name, step, RESTORED), flush=True)
                step_name, step = _step(trainer)
                print(f"{TAG} {RESUMED} {step_name}={step}", flush=True)
            self.restored = None

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            # Not the sanity check, nor a trainer.validate() after fit: those are no epoch of training.
            if trainer.sanity_checking or trainer.state.fn != "fit":
                return
            self.curve.append([*_step(trainer), _metrics(trainer)])
            if trainer.checkpoint_callbacks:  # first: a value reported is never ahead of the checkpoint
                self._save_checkpoint(trainer)
            if trainer.is_global_zero:
                self._print(trainer, VALIDATION)
            if os.path.exists(self.hooks.prune_file):  # every rank that has the callback stops
                self.pruned = True
                trainer.should_stop = True

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            if not trainer.is_global_zero:
                return
            changed = {k: v for k, v in _metrics(trainer).items() if self.last.get(k) != v}
            if not self.pruned and changed:  # only what changed: an unchanged objective is no new value
                self._print(trainer, FINAL, changed)
            path = best_checkpoint(trainer)
            if path:
                print(checkpoint_line(os.path.abspath(path)), flush=True)

        def _save_checkpoint(self, trainer: Any) -> None:
            """The trial's last checkpoint, replaced whole (a kill while it is written leaves the previous one)."""
            partial = self.hooks.checkpoint + ".partial"
            trainer.save_checkpoint(partial)  # every rank takes part; rank 0 writes
            if trainer.is_global_zero:
                os.replace(partial, self.hooks.checkpoint)

        def _print(self, trainer: Any, kind: str, metrics: dict[str, float] | None = None) -> None:
            metrics = _metrics(trainer) if metrics is None else metrics
            step_name, step = _step(trainer)
            print(validation_line(metrics, step_name, step, kind), flush=True)
            self.last.update(metrics)

    return SweepsCallback


def _rng_states() -> dict[str, Any]:
    import random

    import numpy as np
    import torch

    name, keys, position, has_gauss, gauss = np.random.get_state()
    # Plain lists and tensors: torch.load reads checkpoints with weights_only, which refuses numpy arrays.
    numpy_state = [name, keys.tolist(), position, has_gauss, gauss]
    states = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: Mapping[str, Any]) -> None:
    import random

    import numpy as np
    import torch

    random.setstate(states["python"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _metrics(trainer: Any) -> dict[str, float]:
    """The trainer's ``callback_metrics`` now, the scalars whose names a ``name=value`` line can carry
    (a NaN too: the trial then fails ``metric is NaN``)."""
    found = {}
    for name, value in trainer.callback_metrics.items():
        if not _NAME.fullmatch(name) or name in ("epoch", "step"):
            continue
        try:
            found[name] = float(value)
        except (TypeError, ValueError, RuntimeError):  # not a scalar
            continue
    return found


def _step(trainer: Any) -> tuple[str, int]:
    """The epoch (0-based, as in Lightning's logs and checkpoint names), or the global step when
    validation runs more often than once an epoch (``val_check_interval``)."""
    interval = getattr(trainer, "val_check_interval", 1.0)
    if isinstance(interval, float) and interval == 1.0:
        return "epoch", int(trainer.current_epoch)
    return "step", int(trainer.global_step)


def best_checkpoint(trainer: Any) -> str | None:
    """The best checkpoint of the trainer's first ModelCheckpoint that saved one (its last
    checkpoint when it monitors nothing)."""
    for callback in getattr(trainer, "checkpoint_callbacks", []):
        path = getattr(callback, "best_model_path", "") or getattr(callback, "last_model_path", "")
        if path:
            return path
    return None
