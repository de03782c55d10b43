"""Trials that fail, hang or are interrupted, through the real headless app."""

import csv
import json
import os
import random
import re
import signal
import subprocess
import time

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.record import REASON_ATTR, RETRY_OF_ATTR, WORK_LOST
from sweeps.record import params as trial_params
from tests.conftest import report_config
from tests.harness import kill_group, run_headless, slot_processes, start_app

pytestmark = pytest.mark.slow

EXPECTED_REASON = {
    0: r"ValueError: bad x 0\.0 \(at report\.py:\d+\)\n--- last output ---\nepoch=1 loss=1\.0\nepoch=2 loss=0\.0",
    1: r"exit code 3\n",
    2: r"exit code 1\n",
    3: r"killed by signal SIGABRT\n",
    4: r"killed by signal SIGSEGV\n",
    5: r"timeout after 2 s\n",
    6: r"metric is NaN$",
    7: r"no metric loss reported$",
}


def test_every_kind_of_failure_is_recorded_and_the_sweep_gives_up_at_max_failures(tmp_path, write_config):
    # x = 0..7 fail in eight different ways, 8..11 are fine. Random proposals on this small space
    # try every x once before any twice, so all eight failures happen within the first 12 trials,
    # before run_cap (5 successes) can be reached: the sweep gives up at the eighth.
    config = report_config(
        tmp_path,
        method="random",
        seed=0,
        run_cap=5,
        max_failures=8,
        trial_timeout=2,
        parameters={"x": {"distribution": "int_uniform", "min": 0, "max": 11}, "mode": {"value": "by_x"}},
    )
    started = time.monotonic()
    done = run_headless(write_config(config), cwd=tmp_path)
    assert time.monotonic() - started < 60
    assert done.returncode == 1, done.stdout + done.stderr
    (summary,) = [line for line in done.stderr.splitlines() if line.startswith("sweeps: gave up")]
    assert summary.startswith("sweeps: gave up after 8 failed trials (max_failures=8): ")
    for reason in [
        "ValueError: bad x 0.0",
        "exit code 3",
        "exit code 1",
        "killed by signal SIGABRT",
        "killed by signal SIGSEGV",
        "timeout after 2 s",
        "metric is NaN",
        "no metric loss reported",
    ]:
        assert f"1x {reason}" in summary

    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    failed = {int(t.params["x"]): t.user_attrs[REASON_ATTR] for t in trials if t.state == TrialState.FAIL}
    assert sorted(failed) == list(range(8))
    for x, pattern in EXPECTED_REASON.items():
        assert re.match(pattern, failed[x]), (x, failed[x])
    good = [t for t in trials if t.params["x"] >= 8]
    assert good and all(t.state == TrialState.COMPLETE and t.value == t.params["x"] for t in good)
    assert not any(t.state == TrialState.RUNNING for t in trials)
    assert (tmp_path / "results" / "trials.csv").exists()


def start(config_path, cwd):
    return start_app("app_wo_ui.py", config_path, cwd, subprocess.DEVNULL, subprocess.DEVNULL)


#: The whole app kill -9-ed this many times at random moments, then run to the end.
KILLS, RUN_CAP = 5, 40


def test_kill_9_at_random_moments_loses_nothing_and_runs_nothing_twice(tmp_path, write_config):
    config = report_config(
        tmp_path,
        method="random",
        run_cap=RUN_CAP,
        parameters={"x": {"min": -100.0, "max": 100.0}, "sleep": {"value": 0.5}},
    )
    path = write_config(config)
    rng = random.Random(1)
    kills = 0
    logs = tmp_path / "results" / "logs"
    for _ in range(KILLS):
        before = len(list(logs.glob("*.log")))
        app = start(path, tmp_path)
        # The app starts in ~3 s (~5 s with torch installed: lightning-app then imports it in every
        # process); wait for its first trial, then kill at a random moment while trials (0.5 s each) run.
        deadline = time.monotonic() + 60
        while len(list(logs.glob("*.log"))) <= before and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.5, 3.0))
        os.killpg(app.pid, signal.SIGKILL)
        app.wait()
        kills += 1
    mid = optuna.load_study(study_name="test", storage=config["storage"]).trials
    assert any(t.state == TrialState.COMPLETE for t in mid), "trials ran between the kills"

    done = run_headless(path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert kills == KILLS and len(complete) == RUN_CAP, "exactly run_cap finished trials"
    assert len({t.params["x"] for t in complete}) == RUN_CAP, "no finished trial ran twice"
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert len(interrupted) >= KILLS - 1, "the kills landed while trials ran"
    assert not any(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials)
    for t in trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs[REASON_ATTR] == "interrupted"
            retries = [r for r in trials if r.user_attrs.get(RETRY_OF_ATTR) == t.number]
            if not t.params:  # killed between asking and drawing its parameters: it never ran
                assert retries == []
                continue
            (retry,) = retries
            # a kill between two parameters leaves the rest to be drawn by the retry
            assert trial_params(retry).items() >= trial_params(t).items(), "an interrupted trial's parameters ran again"
    for t in complete:  # what the script printed is what was recorded
        log = (tmp_path / "results" / "logs" / f"{t.number}.log").read_text()
        assert float(re.findall(r"loss=(\S+)", log)[-1]) == t.value == t.params["x"]
    rows = list(csv.DictReader((tmp_path / "results" / "trials.csv").open()))
    assert len(rows) == len(trials)
    best = json.loads((tmp_path / "results" / "best.json").read_text())
    assert best["value"] == min(t.value for t in complete)


def test_a_second_app_on_the_same_sqlite_file_says_so_and_exits(tmp_path, write_config):
    path = write_config(report_config(tmp_path, method="random", run_cap=50, parameters={"mode": {"value": "hang"}}))
    first = start(path, tmp_path)
    try:
        time.sleep(4)
        second = run_headless(path, cwd=tmp_path, timeout=60)
        assert second.returncode != 0
        assert second.stderr.strip().splitlines() == [
            f"sweeps: storage: sqlite:///{tmp_path / 'sweep.db'} is in use by another Sweeps app (pid {first.pid}); "
            "SQLite takes one writer: stop that app, or use a PostgreSQL storage to share a sweep"
        ]
        assert first.poll() is None, "the first app goes on"
    finally:
        kill_group(first)


def test_a_work_killed_mid_trial_fails_its_trial_as_work_lost_and_a_fresh_work_takes_the_slot(tmp_path, write_config):
    config = report_config(
        tmp_path,
        method="random",
        run_cap=8,
        max_failures=2,
        parameters={"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": 1.5}},
    )
    app = start_app("app_wo_ui.py", write_config(config), tmp_path, subprocess.PIPE, subprocess.PIPE)
    try:
        logs = tmp_path / "results" / "logs"
        deadline = time.monotonic() + 60
        while not list(logs.glob("*.log")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # trials of 1.5 s: both works are mid-trial
        works = slot_processes(app.pid)
        assert len(works) == 2
        works[0].kill()  # as the OOM killer would: the biggest process, without warning
        killed = time.time()
        stdout, stderr = app.communicate(timeout=120)
    finally:
        kill_group(app)
    assert app.returncode == 0, stderr
    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    lost = [t for t in trials if t.state == TrialState.FAIL]
    assert [t.user_attrs[REASON_ATTR] for t in lost] == [WORK_LOST]
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 8, "the sweep went on, with a fresh work"
    (line,) = [line for line in stdout.splitlines() if f"trial {lost[0].number} FAIL" in line]
    assert "(work lost)" in line
    noticed = lost[0].datetime_complete.timestamp() - killed
    assert noticed < 5, f"noticed {noticed:.1f} s after the kill"
