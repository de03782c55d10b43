"""How a trial is launched: W&B's ``command`` with its macros, the trial's files, and its command line.

The default, ``${env} ${interpreter} ${program} ${args}``, runs the Python program *warm*, in a
child of the work's fork server (``sweeps.forkserver``), and so does any command that only changes
what follows ``${program}`` (:func:`warm_args`); any other command is executed as it is written,
in the same supervised child, so exit codes, signals, timeouts and pruning apply to it alike.
:class:`Launch` is the one place that says what a trial runs and where its files go, for the work
that runs it and for the page that shows the command line re-running it.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sweeps import wandb_runs
from sweeps.child import ScriptRun
from sweeps.errors import ConfigError
from sweeps.trainer import RESUME_CHECKPOINT, TrialHooks

DEFAULT = ("${env}", "${interpreter}", "${program}", "${args}")
#: The default command as a user runs it by hand (``${env}`` adds nothing there).
BY_HAND = ("${interpreter}", "${program}", "${args}")
MACROS = (
    "${env}",
    "${interpreter}",
    "${program}",
    "${args}",
    "${args_no_hyphens}",
    "${args_json}",
    "${args_json_file}",
    "${args_no_boolean_flags}",
)
_MACRO = re.compile(r"\$\{[^}]*\}")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")


def check(command: Sequence[str] | None) -> tuple[str, ...] | None:
    """The command if it is not the default (None when it is), or a ConfigError naming ``command[i]``."""
    if command is None:
        return None
    if not isinstance(command, list) or not command:
        raise ConfigError(
            "command", "must be a non-empty list of strings, e.g. [${env}, ${interpreter}, ${program}, ${args}]"
        )
    for i, part in enumerate(command):
        if not isinstance(part, str):
            raise ConfigError(f"command[{i}]", f"must be a string (got {part!r})")
        for macro in _MACRO.findall(part):
            if macro not in MACROS:
                raise ConfigError(f"command[{i}]", f"unknown macro {macro}; valid: {', '.join(MACROS)}")
    if tuple(command) == DEFAULT:
        return None
    first = 1 if command[0] == "${env}" else 0
    while first and first < len(command) and _ASSIGNMENT.match(command[first]):  # ${env} VAR=value ...
        first += 1
    if first < len(command) and not _MACRO.search(command[first]) and shutil.which(command[first]) is None:
        raise ConfigError(f"command[{first}]", f"{command[first]!r} is not a program on PATH")
    return tuple(command)


#: Given to every trial's process: the directory it and its retries share, for its checkpoints.
TRIAL_DIR_VARIABLE = "SWEEPS_TRIAL_DIR"
#: ``1`` when the run continues an interrupted trial: a script resumes from its checkpoint in the trial directory.
RESUME_VARIABLE = "SWEEPS_RESUME"


def trial_environment(trial_dir: Path, resume: bool) -> dict[str, str]:
    """What every trial's process finds in its environment about its directory and whether it resumes."""
    return {TRIAL_DIR_VARIABLE: str(trial_dir), RESUME_VARIABLE: "1" if resume else "0"}


def script_args(params: dict[str, Any]) -> list[str]:
    """W&B's ``${args}``: ``--name=value``, each value as recorded (``str`` of a float is its ``repr``)."""
    return [f"--{name}={value}" for name, value in params.items()]


@dataclass(frozen=True)
class TrialRequest:
    """A trial that has been asked for: what its script is to receive."""

    number: int
    params: dict[str, Any]
    first_trial: int  # the first trial of these parameters (its own number unless a retry): its directory's
    resume: bool = False  # it continues an interrupted trial, from that trial's last checkpoint

    @property
    def args(self) -> list[str]:
        return script_args(self.params)


def warm_args(command: Sequence[str] | None) -> tuple[str, ...] | None:
    """What follows ``${program}`` when the command runs the program with this Python
    (``[${env}, ${interpreter}, ${program}, ...]``, ``${env}`` optional), else None.

    Such a command runs the program warm like the default one (``sweeps.forkserver``), so that a
    Lightning script's Trainer is traced (``sweeps.trainer``): LightningCLI scripts need a
    subcommand first, ``[${env}, ${interpreter}, ${program}, fit, ${args}]``.
    """
    command = tuple(command or DEFAULT)
    first = 1 if command[:1] == ("${env}",) else 0
    if command[first : first + 2] != ("${interpreter}", "${program}"):
        return None
    return command[first + 2 :]


def expand(
    command: Sequence[str], program: str, params: dict[str, Any], json_file: Path, write: bool = True
) -> list[str]:
    """The argv of one trial. ``${args_json_file}`` names ``json_file``, and writes the parameters
    to it unless ``write`` is false (the file of a trial that has run already)."""
    argv: list[str] = []
    for part in command:
        if part == "${env}":
            argv.append("/usr/bin/env")
        elif part == "${interpreter}":
            argv.append(sys.executable)
        elif part == "${program}":
            argv.append(program)
        elif part == "${args}":
            argv += script_args(params)
        elif part == "${args_no_hyphens}":
            argv += [f"{k}={v}" for k, v in params.items()]
        elif part == "${args_no_boolean_flags}":
            argv += [f"--{k}" if v is True else f"--{k}={v}" for k, v in params.items() if v is not False]
        elif part == "${args_json}":
            argv.append(json.dumps(params))
        elif part == "${args_json_file}":
            if write:
                json_file.write_text(json.dumps(params))
            argv.append(str(json_file))
        else:  # a literal, possibly with ${program} inside ("--script=${program}")
            argv.append(part.replace("${program}", program))
    return argv


@dataclass(frozen=True)
class Launch:
    """What a trial runs and where its files go: the same for the work and for the page."""

    program: str
    command: tuple[str, ...] | None  # the config's ``command`` unless it is W&B's default
    output_dir: str  # absolute

    def to_dict(self) -> dict[str, Any]:
        """As it travels in the app's state, to the page."""
        return {"program": self.program, "command": list(self.command or ()), "output_dir": self.output_dir}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Launch:
        return cls(data["program"], tuple(data["command"]) or None, data["output_dir"])

    @property
    def log_dir(self) -> Path:
        """Each trial's output (``<number>.log``) and the files of its macros."""
        return Path(self.output_dir) / "logs"

    def log_file(self, number: int) -> Path:
        return self.log_dir / f"{number}.log"

    def args_file(self, number: int) -> Path:
        """``${args_json_file}`` of trial ``number``."""
        return self.log_dir / f"{number}.args.json"

    def trial_dir(self, number: int) -> Path:
        """The directory of trial ``number`` and its retries (``SWEEPS_TRIAL_DIR``): a traced Trainer's logs
        and checkpoints, a W&B run's files."""
        return Path(self.output_dir) / "trials" / str(number)

    @property
    def runs_warm(self) -> bool:
        """Whether the program runs in a child of the fork server (:func:`warm_args`), not through ``exec``."""
        return warm_args(self.command) is not None

    def warm_argv(self, number: int, params: dict[str, Any]) -> list[str]:
        """The program's arguments (its ``sys.argv[1:]``) when the trial runs warm."""
        warm = warm_args(self.command)
        assert warm is not None, "the command does not run the program warm"
        return expand(warm, self.program, params, self.args_file(number))

    def argv(self, number: int, params: dict[str, Any], write: bool = True) -> list[str]:
        """The trial's whole command line, as a user would run it by hand."""
        return expand(self.command or BY_HAND, self.program, params, self.args_file(number), write)

    def command_line(self, number: int, params: dict[str, Any]) -> str:
        """A shell command that re-runs trial ``number`` exactly as the sweep ran it; its files are not written."""
        return shlex.join(self.argv(number, params, write=False))

    def prune_file(self, number: int) -> Path:
        """Created when the pruner stops trial ``number``: a traced Trainer watches for it."""
        return self.log_dir / f"{number}.prune"

    def script_run(self, request: TrialRequest, wandb: bool) -> ScriptRun:
        """What the trial's child runs: the program with the trial's arguments, or the sweep's command,
        told its directory and whether it resumes; a W&B program's (``wandb``) runs offline, in the
        trial's directory, with the trial's parameters. Creates the trial's directory."""
        trial_dir = self.trial_dir(request.first_trial)
        trial_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = trial_environment(trial_dir, request.resume)
        if wandb:
            params_file = trial_dir / "sweep-params.yaml"
            params_file.write_text(wandb_runs.params_file_text(request.params))
            env.update(wandb_runs.environment(trial_dir, params_file, request.resume))
        if not self.runs_warm:
            return ScriptRun(self.program, command=self.argv(request.number, request.params), env=env, wandb=wandb)
        hooks = TrialHooks(str(self.prune_file(request.number)), str(trial_dir), request.resume)
        args = self.warm_argv(request.number, request.params)
        return ScriptRun(self.program, args, hooks=asdict(hooks), env=env, wandb=wandb)

    def trial_ended(self, request: TrialRequest) -> None:
        """Remove what only the running trial needed. Whatever its state, no run will continue it (an
        interrupted trial's work is gone, and keeps its checkpoint): model-sized files, one per trial,
        would fill a disk."""
        self.prune_file(request.number).unlink(missing_ok=True)
        (self.trial_dir(request.first_trial) / RESUME_CHECKPOINT).unlink(missing_ok=True)

    def relocated(self, program_dir: str, output_dir: str) -> Launch:
        """This launch on a machine that has the program's directory and the output directory elsewhere."""
        return replace(self, program=os.path.join(program_dir, os.path.basename(self.program)), output_dir=output_dir)
