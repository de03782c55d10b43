"""W&B's ``command``: the command line a trial runs, with its macros.

The default, ``${env} ${interpreter} ${program} ${args}``, runs the Python program warm, in a child
of the work's fork server (``sweeps.forkserver``), and so does any command that only changes what follows
``${program}`` (:func:`in_process_args`); any other command is executed as it is written, in the
same supervised child, so exit codes, signals, timeouts and pruning apply to it alike.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweeps.errors import ConfigError
from sweeps.trial import script_args

DEFAULT = ("${env}", "${interpreter}", "${program}", "${args}")
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


def check(command: Sequence[str] | None) -> tuple[str, ...] | None:
    """The command if it is not the default (None when it is), or a ConfigError naming ``command[i]``."""
    if command is None:
        return None
    if not isinstance(command, list) or not command:
        raise ConfigError("command", "must be a non-empty list of strings, e.g. [${env}, ${interpreter}, ${program}, ${args}]")
    for i, part in enumerate(command):
        if not isinstance(part, str):
            raise ConfigError(f"command[{i}]", f"must be a string (got {part!r})")
        for macro in _MACRO.findall(part):
            if macro not in MACROS:
                raise ConfigError(f"command[{i}]", f"unknown macro {macro}; valid: {', '.join(MACROS)}")
    if tuple(command) == DEFAULT:
        return None
    first = 1 if command[0] == "${env}" else 0
    if first < len(command) and not _MACRO.search(command[first]) and shutil.which(command[first]) is None:
        raise ConfigError(f"command[{first}]", f"{command[first]!r} is not a program on PATH")
    return tuple(command)


def in_process_args(command: Sequence[str] | None) -> tuple[str, ...] | None:
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


def expand(command: Sequence[str], program: str, params: dict[str, Any], json_file: Path) -> list[str]:
    """The argv of one trial. ``${args_json_file}`` writes the parameters to ``json_file``."""
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
            json_file.write_text(json.dumps(params))
            argv.append(str(json_file))
        else:  # a literal, possibly with ${program} inside ("--script=${program}")
            argv.append(part.replace("${program}", program))
    return argv
