"""W&B's `command` and its macros: checked like the rest of the config, then run for real."""

import json
import re
import shlex
import sys
from pathlib import Path

import pytest

from sweeps.command import MACROS, Launch, check, expand, warm_args
from sweeps.errors import ConfigError
from tests.conftest import PROJECT, SCRIPTS, make_work

PARAMS = {"x": 0.1 + 0.2, "opt.name": "adam", "flag": True, "off": False, "n": 3}


def test_the_default_command_runs_warm():
    assert check(None) is None
    assert check(["${env}", "${interpreter}", "${program}", "${args}"]) is None
    assert check(["bash", "${program}", "${args}"]) == ("bash", "${program}", "${args}")
    with_env = ["${env}", "OMP_NUM_THREADS=1", "${interpreter}", "${program}", "${args}"]
    assert check(with_env) == tuple(with_env), "variables after ${env} are not the program"


@pytest.mark.parametrize(
    "command, rest",
    [
        (None, ("${args}",)),
        (["${env}", "${interpreter}", "${program}", "fit", "${args}"], ("fit", "${args}")),
        (["${interpreter}", "${program}", "${args_json_file}"], ("${args_json_file}",)),
        (["${env}", "OMP_NUM_THREADS=1", "${interpreter}", "${program}", "${args}"], None),
        (["${interpreter}", "-m", "pkg.train", "${args}"], None),
        (["bash", "${program}", "${args}"], None),
    ],
)
def test_commands_that_run_the_program_with_this_python_run_it_warm(command, rest):
    assert warm_args(command) == rest


@pytest.mark.parametrize(
    "command, key, words",
    [
        ([], "command", "non-empty list"),
        ("python train.py", "command", "non-empty list"),
        (["${env}", "${interpreter}", "${progam}"], "command[2]", "unknown macro ${progam}; valid: ${env}"),
        (["no-such-tool-here", "${args}"], "command[0]", "'no-such-tool-here' is not a program on PATH"),
        (["${env}", "torchrunx", "${program}"], "command[1]", "'torchrunx' is not a program on PATH"),
        (["${env}", "OMP_NUM_THREADS=1", "torchrunx"], "command[2]", "'torchrunx' is not a program on PATH"),
        (["bash", 3], "command[1]", "must be a string"),
    ],
)
def test_bad_commands_are_one_line_errors_naming_the_element(command, key, words):
    with pytest.raises(ConfigError) as caught:
        check(command)
    assert caught.value.key == key and words in str(caught.value)


def test_every_macro_expands_as_wandb_does(tmp_path):
    json_file = tmp_path / "args.json"
    argv = expand([*MACROS, "--out=${program}.log"], "train.py", PARAMS, json_file)  # every macro, in turn
    assert argv == [
        "/usr/bin/env",
        sys.executable,
        "train.py",
        "--x=0.30000000000000004",
        "--opt.name=adam",
        "--flag=True",
        "--off=False",
        "--n=3",
        "x=0.30000000000000004",
        "opt.name=adam",
        "flag=True",
        "off=False",
        "n=3",
        json.dumps(PARAMS),
        str(json_file),
        "--x=0.30000000000000004",
        "--opt.name=adam",
        "--flag",
        "--n=3",
        "--out=train.py.log",
    ]
    assert json.loads(json_file.read_text()) == PARAMS


def received(tmp_path, number):
    log = (tmp_path / "logs" / f"{number}.log").read_text()
    return re.search(r"^received (.*)$", log, re.M).group(1)


@pytest.mark.parametrize(
    "program, command, parse",
    [
        ("hydra_style.py", ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"], json.loads),
        ("json_file.py", ["${interpreter}", "${program}", "${args_json_file}"], json.loads),
        ("wrapper.sh", ["bash", "${program}", "${args}"], lambda text: dict(a[2:].split("=", 1) for a in text.split())),
        (
            "record_args.py",
            ["${env}", f"PYTHONPATH={PROJECT}", "${interpreter}", "-m", "tests.scripts.record_args", "${args}"],
            lambda text: dict(a[2:].split("=", 1) for a in json.loads(text.removeprefix("argv "))),
        ),
    ],
    ids=["hydra", "json-file", "bash", "python-m"],
)
def test_each_command_receives_exactly_the_recorded_parameters(tmp_path, program, command, parse):
    work = make_work(SCRIPTS / program, tmp_path, timeout=30, command=command)
    params = {"x": 0.1 + 0.2, "opt.name": "adam"}
    work.run(4, params)
    assert work.result["state"] == "COMPLETE", work.result
    if program == "record_args.py":
        log = (tmp_path / "logs" / "4.log").read_text()
        got = parse(re.search(r"^(argv .*)$", log, re.M).group(1))
    else:
        got = parse(received(tmp_path, 4))
    assert {k: str(v) for k, v in got.items()} == {k: str(v) for k, v in params.items()}


def test_a_command_that_fails_gets_its_reason(tmp_path):
    work = make_work(SCRIPTS / "wrapper.sh", tmp_path, command=["bash", "-c", "exit 7"])
    work.run(0, {})
    assert work.result["reason"].startswith("exit code 7")


@pytest.mark.slow
def test_a_sweep_with_a_hydra_style_command_end_to_end(tmp_path, write_config):
    import optuna

    from sweeps.record import params as trial_params
    from tests.conftest import report_config
    from tests.harness import run_headless

    config = report_config(
        tmp_path,
        program=str(SCRIPTS / "hydra_style.py"),
        method="random",
        run_cap=4,
        command=["${env}", "${interpreter}", "${program}", "${args_no_hyphens}"],
        parameters={"x": {"min": 0.0, "max": 1.0}, "model": {"parameters": {"depth": {"values": [2, 4]}}}},
    )
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "W&B keys not acted on" not in done.stderr
    for t in optuna.load_study(study_name="test", storage=config["storage"]).trials:
        got = json.loads(received(tmp_path / "results", t.number))
        assert got == {k: str(v) for k, v in trial_params(t).items()} and t.value == t.params["x"]


# -- Launch: what a trial runs, for the work and for the page's command line --------------------------


def test_the_command_line_of_the_default_command_is_what_a_user_runs_by_hand():
    launch = Launch("/s/train.py", None, "/out")
    line = launch.command_line(3, {"lr": 0.000123456789, "kernel": "poly"})
    assert shlex.split(line) == [sys.executable, "/s/train.py", "--lr=0.000123456789", "--kernel=poly"]
    assert launch.runs_warm and launch.warm_argv(3, {"lr": 0.5}) == ["--lr=0.5"]


def test_the_command_line_of_a_custom_command_names_its_json_file_without_writing_it(tmp_path):
    command = ("${env}", "A=1", "${interpreter}", "${program}", "${args_json_file}", "${args_json}")
    launch = Launch("/s/train.py", command, str(tmp_path))
    argv = shlex.split(launch.command_line(7, {"lr": 0.01, "kernel": "rbf"}))
    assert argv == [
        "/usr/bin/env",
        "A=1",
        sys.executable,
        "/s/train.py",
        str(tmp_path / "logs" / "7.args.json"),
        json.dumps({"lr": 0.01, "kernel": "rbf"}),
    ]
    assert not launch.args_file(7).exists() and not launch.runs_warm


def test_the_page_shows_the_command_line_the_work_ran(tmp_path):
    """The work writes the args file and runs the command; the page's line names the same file and arguments."""
    command = ["${interpreter}", "${program}", "${args_json_file}"]
    work = make_work(SCRIPTS / "json_file.py", tmp_path, command=command)
    work.run(5, PARAMS)
    assert work.result["state"] == "COMPLETE", work.result
    shown = shlex.split(work._launch.command_line(5, PARAMS))
    assert shown == [sys.executable, str(SCRIPTS / "json_file.py"), str(tmp_path / "logs" / "5.args.json")]
    assert json.loads(Path(shown[-1]).read_text()) == PARAMS


def test_a_launch_travels_through_the_apps_state_unchanged():
    for launch in (Launch("/s/t.py", None, "/o"), Launch("/s/t.py", ("bash", "${program}"), "/o")):
        assert Launch.from_dict(json.loads(json.dumps(launch.to_dict()))) == launch
