"""Several workers on one sweep in PostgreSQL (directly, and through the gRPC proxy): exactly run_cap,
lost workers, Run/Stop for all."""

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.config import parse_config
from sweeps.control import Request
from sweeps.errors import ConfigError
from sweeps.record import ATTEMPT_ATTR, NOT_RUN, REASON_ATTR, RETRY_OF_ATTR, WORKER_LOST
from sweeps.record import params as trial_params
from sweeps.result import COMPLETE, TrialResult
from sweeps.storage import open_storage
from sweeps.sweep import Sweep
from tests.conftest import SCRIPTS, report_config
from tests.harness import kill_group, start_app, start_worker


def shared_config(tmp_path, shared_storage, **overrides):
    url, name = shared_storage
    settings = {"method": "random", "run_cap": 30, "parameters": {"x": {"min": 0.0, "max": 1.0}}, **overrides}
    raw = report_config(tmp_path, name=name, storage=url, **settings)
    return parse_config(raw, base_dir=SCRIPTS)


def stored_trials(config):
    return optuna.load_study(study_name=config.name, storage=open_storage(config.storage)).trials


def test_workers_racing_for_the_last_places_finish_exactly_run_cap_trials(tmp_path, workers_storage):
    config = shared_config(tmp_path, workers_storage)
    workers = [Sweep.open(config) for _ in range(3)]
    told = {index: 0 for index in range(3)}

    def work(index: int) -> None:
        sweep, running = workers[index], []
        while not (sweep.done and not running):
            while len(running) < 2 and sweep.wants_more():
                request = sweep.ask()
                if request is None:
                    break
                running.append(request)
            if running:
                request = running.pop(0)
                sweep.tell(TrialResult(request.number, COMPLETE, value=request.params["x"]))
                told[index] += 1
            else:
                time.sleep(0.05)
                sweep.sync()

    threads = [threading.Thread(target=work, args=(index,)) for index in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    trials = stored_trials(config)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 30
    assert sum(told.values()) == 30 and all(told.values()), told
    given_back = [t for t in trials if t.state != TrialState.COMPLETE]
    assert all(t.state == TrialState.FAIL and t.user_attrs[REASON_ATTR] == NOT_RUN and not t.params for t in given_back)
    if not config.storage.startswith("grpc://"):
        assert not given_back  # PostgreSQL's lock: no two workers ask at the same instant


def test_a_trial_whose_worker_stopped_beating_is_failed_as_lost_and_retried(tmp_path, workers_storage):
    config = shared_config(tmp_path, workers_storage, heartbeat_interval=1, grace_period=2)
    dying, survivor = Sweep.open(config), Sweep.open(config)
    lost = dying.ask()
    dying._heartbeats.stop(lost.number)  # its process dies: no more heartbeats, no tell
    survivor.sync()
    assert survivor.tally.running == 1  # still within its grace period

    time.sleep(3.2)
    survivor.sync()
    trials = stored_trials(config)
    assert trials[lost.number].state == TrialState.FAIL
    assert trials[lost.number].user_attrs[REASON_ATTR] == WORKER_LOST
    assert survivor.tally.failures == 0  # not the trial's fault: max_failures is not used up
    retry = survivor.ask()
    assert retry.params == lost.params
    retried = stored_trials(config)[retry.number]
    assert retried.user_attrs[RETRY_OF_ATTR] == lost.number and retried.user_attrs[ATTEMPT_ATTR] == 0

    # The lost worker was only slow: its late result is kept out, the trial stays FAIL.
    late = dying.tell(TrialResult(lost.number, COMPLETE, value=0.5))
    assert late.state == TrialState.FAIL
    survivor.tell(TrialResult(retry.number, COMPLETE, value=0.5))
    assert [t.state for t in stored_trials(config)] == [TrialState.FAIL, TrialState.COMPLETE]


def test_a_trial_whose_worker_died_before_its_first_heartbeat_is_failed_as_lost(tmp_path, workers_storage):
    """A worker killed between Optuna creating its trial and its first heartbeat: the trial has no
    heartbeat at all, which Optuna's own stale check passes over; the sweep must not wait for it."""
    config = shared_config(tmp_path, workers_storage, heartbeat_interval=1, grace_period=2)
    survivor = Sweep.open(config)
    orphan = optuna.load_study(study_name=config.name, storage=open_storage(config.storage)).ask()
    time.sleep(1.1)  # a heartbeat interval: the survivor looks for lost trials, and sees this one
    survivor.sync()
    assert survivor.tally.running == 1  # silent for less than the grace period, so far as it saw

    time.sleep(2.2)
    survivor.sync()
    trial = stored_trials(config)[orphan.number]
    assert trial.state == TrialState.FAIL and trial.user_attrs[REASON_ATTR] == WORKER_LOST
    assert survivor.tally.running == 0


def test_a_running_worker_keeps_its_trials_alive(tmp_path, workers_storage):
    config = shared_config(tmp_path, workers_storage, heartbeat_interval=1, grace_period=2)
    busy, other = Sweep.open(config), Sweep.open(config)
    request = busy.ask()
    other.sync()  # it sees the trial now (through the proxy, it times the heartbeat's silence from here)
    time.sleep(3.2)  # longer than the grace period: only the heartbeat thread keeps it alive
    other.sync()
    assert other.tally.running == 1
    assert stored_trials(config)[request.number].state == TrialState.RUNNING
    busy.tell(TrialResult(request.number, COMPLETE, value=0.1))


def test_of_two_trials_asked_for_the_last_place_at_once_the_first_runs_the_second_is_given_back(
    tmp_path, shared_storage, storage_proxy
):
    """Through the proxy there is no lock: both workers see room, both create a trial; the trial
    numbered first takes the place, the other is given back unrun (FAIL, no parameters)."""
    config = shared_config(tmp_path, (storage_proxy, shared_storage[1]), run_cap=1)
    one, two = Sweep.open(config), Sweep.open(config)
    both_saw_room = threading.Barrier(2)
    for sweep in (one, two):
        create = sweep._new_trial
        sweep._new_trial = lambda create=create: (both_saw_room.wait(timeout=10), create())[1]
    asked = {}
    threads = [threading.Thread(target=lambda s=s: asked.update({s: s.ask()})) for s in (one, two)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(r is None for r in asked.values()) == [False, True]
    (request,) = [r for r in asked.values() if r is not None]
    first, second = stored_trials(config)
    assert request.number == first.number == 0 and first.state == TrialState.RUNNING and first.params
    assert second.state == TrialState.FAIL and not second.params
    assert second.user_attrs[REASON_ATTR] == NOT_RUN
    (giver,) = [s for s, r in asked.items() if r is None]
    assert giver.tally.failures == 0 and giver.tally.running == 1  # not a failure; the other's trial runs
    assert owner_of(asked, request).tell(TrialResult(0, COMPLETE, value=0.5)).state == TrialState.COMPLETE
    giver.sync()
    assert giver.done and giver.ask() is None


def owner_of(asked, request):
    return next(s for s, r in asked.items() if r is request)


def test_stop_and_run_reach_every_worker(tmp_path, workers_storage):
    config = shared_config(tmp_path, workers_storage)
    one, two = Sweep.open(config), Sweep.open(config)
    one.request(Request.STOP)
    two.sync()
    assert two.stopped and two.done and two.ask() is None
    assert Sweep.open(config).stopped  # a worker joining a stopped sweep sees it stopped
    two.request(Request.RUN)  # a worker started (or Run clicked) after the Stop runs the sweep again
    assert two.ask() is not None
    assert not Sweep.open(config).stopped
    one.sync()
    assert one.stopped  # a worker that stopped stays stopped: its trials ended, it has left


def test_a_stop_pressed_elsewhere_holds_for_a_worker_whose_trial_just_ended(tmp_path, workers_storage):
    config = shared_config(tmp_path, workers_storage)
    one, two = Sweep.open(config), Sweep.open(config)
    request = two.ask()
    one.request(Request.STOP)
    time.sleep(1.1)  # a worker reads Run/Stop once a second; its trial ends, the slot asks at once
    two.tell(TrialResult(request.number, COMPLETE, value=0.5))
    assert two.ask() is None and two.stopped


def test_counts_include_every_workers_trials(tmp_path, workers_storage):
    config = shared_config(tmp_path, workers_storage, run_cap=3)
    one, two = Sweep.open(config), Sweep.open(config)
    for _ in range(2):
        request = one.ask()
        one.tell(TrialResult(request.number, COMPLETE, value=request.params["x"]))
    last = one.ask()
    two.sync()
    assert two.finished == 2 and two.tally.running == 1 and two.best is not None
    assert two.ask() is None  # the third place is taken by a running trial
    one.tell(TrialResult(last.number, COMPLETE, value=last.params["x"]))
    two.sync()
    assert two.done and two.finished == 3


def test_several_objectives_are_shared_retried_and_resumed_as_one(tmp_path, workers_storage):
    two = [{"name": "loss", "goal": "minimize"}, {"name": "acc", "goal": "maximize"}]
    config = shared_config(
        tmp_path, workers_storage, metric=None, metrics=two, run_cap=6, heartbeat_interval=1, grace_period=2
    )
    dying, survivor = Sweep.open(config), Sweep.open(config)
    lost = dying.ask()
    dying._heartbeats.stop(lost.number)  # its process dies: no more heartbeats, no tell
    survivor.sync()  # (through the proxy, a worker times a trial's silence from when it first sees it)
    time.sleep(3.2)
    survivor.sync()
    assert stored_trials(config)[lost.number].user_attrs[REASON_ATTR] == WORKER_LOST
    assert dying.tell(TrialResult(lost.number, COMPLETE, values=[0.0, 1.0])).state == TrialState.FAIL, "kept out"

    def told(sweep, request):
        x = request.params["x"]
        return sweep.tell(TrialResult(request.number, COMPLETE, values=[x, x * x]))

    retry = survivor.ask()
    assert retry.params == lost.params
    told(survivor, retry)
    for _ in range(2):
        told(dying, dying.ask())
    resumed = Sweep.open(config)  # a worker started later: it reads what the others stored
    while (request := resumed.ask()) is not None:
        told(resumed, request)
    trials = stored_trials(config)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 6 and resumed.done
    told_values = [(t.number, t.params, t.values, t.user_attrs) for t in trials]
    # x * x as told: x ** 2 (libm's pow) differs from it in the last bit for about 1 x in 1,200
    assert all(t.values == [t.params["x"], t.params["x"] * t.params["x"]] for t in complete), told_values
    study = optuna.load_study(study_name=config.name, storage=open_storage(config.storage))
    assert study.metric_names == ["loss", "acc"]
    assert len(study.best_trials) == 6, [(t.number, t.values) for t in complete]  # x against x²: all on the front


def test_an_unknown_storage_is_one_line_naming_the_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        parse_config(report_config(tmp_path, storage="mysql://host/db"), base_dir=SCRIPTS)
    assert str(err.value).startswith("storage: should start with sqlite:/// (one app), postgresql:// (workers")


# -- the real app: several `lightning run app app_wo_ui.py` on one sweep -------------------------


def trials_run_by(log_text: str) -> set[int]:
    return {int(n) for n in re.findall(r"\] trial (\d+) ", log_text)}


def workers_config(tmp_path, shared_storage, sleep: float, **overrides) -> dict:
    """30 trials of ``sleep`` s on a PostgreSQL sweep, 2 at a time per worker, heartbeats every second."""
    url, name = shared_storage
    parameters = {"x": {"min": 0.0, "max": 1.0}, "sleep": {"value": sleep}}
    return report_config(
        tmp_path,
        name=name,
        storage=url,
        method="random",
        run_cap=30,
        parallel=2,
        heartbeat_interval=1,
        parameters=parameters,
        **overrides,
    )


def wait_for_next_finished_trial(log: Path, worker: subprocess.Popen, timeout: float = 60) -> None:
    """Return as soon as ``log`` shows one more finished trial than now."""
    seen, deadline = len(trials_run_by(log.read_text())), time.monotonic() + timeout
    while len(trials_run_by(log.read_text())) == seen:
        assert worker.poll() is None and time.monotonic() < deadline, f"no trial finished:\n{log.read_text()}"
        time.sleep(0.02)


def run_workers(tmp_path, write_config, shared_storage, kill_one: bool):
    url, name = shared_storage
    config = workers_config(tmp_path, shared_storage, sleep=1.0, grace_period=3)
    path = write_config(config)
    logs = [tmp_path / f"worker{i}.log" for i in range(3)]
    workers = []
    try:
        workers.append(start_worker(path, tmp_path / "worker0", logs[0]))  # back once it runs trials
        for i in (1, 2):  # not waited for: each start takes seconds on a busy machine, worker 0 running the sweep
            cwd = tmp_path / f"worker{i}"
            cwd.mkdir()
            workers.append(start_app("app_wo_ui.py", path, cwd, open(logs[i], "w"), subprocess.STDOUT))
        if kill_one:  # as worker 0 ends a trial its slot has its next one: it dies mid-trial, whatever the clock
            wait_for_next_finished_trial(logs[0], workers[0])
            os.killpg(workers[0].pid, signal.SIGKILL)
        for worker in workers[kill_one:]:
            try:
                code = worker.wait(timeout=120)
            except subprocess.TimeoutExpired:
                code = "still running after 120 s"
            assert code == 0, "\n".join(log.read_text() for log in logs)
    finally:
        for worker in workers:
            kill_group(worker)
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).trials
    return trials, [log.read_text() for log in logs]


def assert_exactly_run_cap_and_no_parameters_twice(trials):
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 30 and not any(t.state == TrialState.RUNNING for t in trials)
    by_params = {}
    for t in finished:
        by_params.setdefault(t.params["x"], []).append(t)
    assert all(len(group) == 1 for group in by_params.values())
    failed = {t.number: t for t in trials if t.state == TrialState.FAIL}
    for t in trials:
        if RETRY_OF_ATTR in t.user_attrs:  # a retry: the parameters of a FAIL trial, recorded as such
            assert trial_params(t) == trial_params(failed[t.user_attrs[RETRY_OF_ATTR]])


@pytest.mark.slow
def test_four_workers_started_at_the_same_moment_each_get_a_port_and_finish_exactly_run_cap(
    tmp_path, write_config, shared_storage
):
    """A job array starts its workers together on one machine: each claims a port of its own."""
    url, name = shared_storage
    path = write_config(workers_config(tmp_path, shared_storage, sleep=0.3))
    logs = [tmp_path / f"worker{i}.log" for i in range(4)]
    workers = []
    try:
        for i, log in enumerate(logs):  # no wait between them
            (tmp_path / f"worker{i}").mkdir()
            workers.append(start_app("app_wo_ui.py", path, tmp_path / f"worker{i}", open(log, "w"), subprocess.STDOUT))
        codes = [worker.wait(timeout=120) for worker in workers]
    finally:
        for worker in workers:
            kill_group(worker)
    texts = [log.read_text() for log in logs]
    assert codes == [0, 0, 0, 0], "\n".join(texts)
    ports = [re.search(r"View it in your browser: http://127.0.0.1:(\d+)/view", text)[1] for text in texts]
    assert len(set(ports)) == 4, ports
    assert_exactly_run_cap_and_no_parameters_twice(optuna.load_study(study_name=name, storage=open_storage(url)).trials)


@pytest.mark.slow
def test_three_workers_finish_exactly_run_cap_trials_together(tmp_path, write_config, shared_storage):
    trials, logs = run_workers(tmp_path, write_config, shared_storage, kill_one=False)
    assert_exactly_run_cap_and_no_parameters_twice(trials)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 30
    runs = [trials_run_by(log) for log in logs]
    assert all(runs), [sorted(r) for r in runs]  # every worker ran some
    assert set().union(*runs) == set(range(30)) and sum(map(len, runs)) == 30


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_recovered_by_the_others(tmp_path, write_config, shared_storage):
    trials, logs = run_workers(tmp_path, write_config, shared_storage, kill_one=True)
    assert_exactly_run_cap_and_no_parameters_twice(trials)
    lost = [t for t in trials if t.state == TrialState.FAIL]
    # What worker 0 was running, and at most one that had ended but was not yet told: a slot gets its
    # next trial before the study is told of its last one (Worker._schedule), a window that a busy
    # machine (PostgreSQL, three apps on two cores) widens enough for a kill to land in.
    assert 1 <= len(lost) <= 3, [(t.number, t.state) for t in trials]
    assert all(t.user_attrs[REASON_ATTR] == WORKER_LOST for t in lost)
    retries = {t.user_attrs[RETRY_OF_ATTR]: t for t in trials if RETRY_OF_ATTR in t.user_attrs}
    assert sorted(retries) == sorted(t.number for t in lost)
    assert all(r.state == TrialState.COMPLETE for r in retries.values())
    survivors = "".join(logs[1:])
    assert all(f"trial {t.number} failed: worker lost" in survivors for t in lost)


def test_workers_on_a_small_discrete_space_try_distinct_configurations(tmp_path, workers_storage):
    config = shared_config(tmp_path, workers_storage, run_cap=6, parameters={"x": {"values": [1, 2, 3, 4, 5, 6]}})
    one, two = Sweep.open(config), Sweep.open(config)
    asked = [sweep.ask().params["x"] for sweep in (one, two, one, two, one, two)]
    assert sorted(asked) == [1, 2, 3, 4, 5, 6]
