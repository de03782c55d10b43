"""The worker's loop (one HPOFlow.run per step), driven here by plain slots that end a trial on the next pass."""

import ast
import re
import time

import pytest
from optuna.trial import TrialState

from sweeps.config import parse_config
from sweeps.control import Request, Status
from sweeps.record import REASON_ATTR
from sweeps.result import COMPLETE, TrialResult
from sweeps.sweep import Sweep
from sweeps.worker import Worker
from tests.conftest import SCRIPTS, report_config


class Slot:
    """Runs a trial "in the background": its result appears on the next pass of the loop."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.started: list[int] = []
        self.pending: TrialResult | None = None
        self.result: TrialResult | None = None

    def start_trial(self, request):
        self.started.append(request.number)
        self.pending = self.outcome(request.number, request.params)

    def values_of(self, number):
        return []

    def prune_trial(self, number):
        raise AssertionError("no pruner here")

    def result_of(self, number):
        if self.pending is not None:
            self.result, self.pending = self.pending, None
            return None
        return self.result if self.result and self.result.number == number else None


def open_sweep(tmp_path, **overrides):
    return Sweep.open(parse_config(report_config(tmp_path, **overrides), base_dir=SCRIPTS))


def run(worker, requests=()):
    """Step until the worker's sweep is over; ``requests``: what the user asks at which pass."""
    requests = dict(requests)
    for passes in range(1000):
        worker.step(requests.get(passes, Request.RUN if passes == 0 else None))
        assert worker.busy <= len(worker.slots)
        if worker.status.over:
            return
    raise AssertionError("the sweep never ended")


def test_runs_exactly_run_cap_trials_in_parallel_with_zero_and_negative_metrics(tmp_path):
    sweep = open_sweep(tmp_path)  # grid over x in -2.5..2.5
    slots = [Slot(lambda n, p: TrialResult(n, COMPLETE, value=p["x"])) for _ in range(2)]
    lines = []
    run(Worker(sweep, slots, say=lines.append))

    assert sorted(n for slot in slots for n in slot.started) == [0, 1, 2, 3, 4]
    assert all(slot.started for slot in slots), "both slots were used"
    stored = sweep.study.get_trials()
    assert [t.state for t in stored] == [TrialState.COMPLETE] * 5
    assert all(t.value == t.params["x"] for t in stored)
    assert lines[0] == "sweep test: 0/5 trials already finished, 2 at once"
    assert sum(line.startswith("[") and " trial " in line for line in lines) == 5, "a line per ended trial"
    assert lines[-2] == "sweep test: finished, 5/5 trials finished"
    values, best = lines[-1].splitlines()
    assert sorted(ast.literal_eval(values).values()) == [-2.5, -1, 0, 1, 2.5] and best.endswith(": value=-2.5 x=-2.5")


def test_failed_trials_are_replaced_until_run_cap_finish(tmp_path):
    sweep = open_sweep(tmp_path, method="random", run_cap=3, seed=1, max_failures=10)

    def every_other_fails(n, params):
        return TrialResult.failed(n, "exit code 3") if n % 2 else TrialResult(n, COMPLETE, value=1.0)

    worker = Worker(sweep, [Slot(every_other_fails), Slot(every_other_fails)], say=lambda line: None)
    run(worker)
    trials = sweep.study.get_trials()
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 3 and worker.status == Status.FINISHED
    assert all(t.user_attrs[REASON_ATTR] == "exit code 3" for t in trials if t.state == TrialState.FAIL)
    assert not any(t.state == TrialState.RUNNING for t in trials), "no trial left running"


def test_a_slot_gets_its_next_trial_before_the_study_is_told_unless_the_trial_failed(tmp_path):
    sweep = open_sweep(tmp_path, method="random", run_cap=4, max_retries=1)
    states_at_start: list[list[str]] = []  # the stored states of the earlier trials, when each starts

    def outcome(number, params):
        states_at_start.append([t.state.name for t in sweep.study.get_trials(deepcopy=False)][:number])
        if number == 1:
            return TrialResult.failed(number, "boom")
        return TrialResult(number, COMPLETE, value=float(number))

    run(Worker(sweep, [Slot(outcome)], say=lambda line: None))
    assert states_at_start[1] == ["RUNNING"], "trial 0 completed: trial 1 started before it was told"
    assert states_at_start[2] == ["COMPLETE", "FAIL"], "trial 1 failed: told first, and its retry is trial 2"
    assert sweep.study.trials[2].params == sweep.study.trials[1].params
    assert [t.state.name for t in sweep.study.trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]


def test_nothing_starts_before_run(tmp_path):
    slot = Slot(lambda n, p: TrialResult(n, COMPLETE, value=1.0))
    worker = Worker(open_sweep(tmp_path), [slot], say=lambda line: None)
    for _ in range(3):
        worker.step(None)
    worker.step(Request.STOP)  # nothing to stop yet
    assert (worker.status, slot.started, worker.started_at) == (Status.WAITING, [], 0.0)


@pytest.mark.parametrize("target, finished", [(None, 5), (10.0, 1)])  # every value reaches 10: the first ends it
def test_a_sweep_found_complete_ends_finished_without_run(tmp_path, target, finished):
    metric = {"name": "loss", "goal": "minimize", "target": target}
    first = Worker(open_sweep(tmp_path, metric=metric), [Slot(lambda n, p: TrialResult(n, COMPLETE, value=p["x"]))])
    run(first)
    slot = Slot(lambda n, p: TrialResult(n, COMPLETE, value=1.0))
    lines = []
    again = Worker(open_sweep(tmp_path, metric=metric), [slot], say=lines.append)  # the app restarted on its storage
    again.step(None)
    assert (again.status, slot.started) == (Status.FINISHED, []), "no Run needed, and none would start a trial"
    assert again.started_at == again.ended_at > 0, "ended as it started: the page shows its trials' span"
    assert lines[0] == f"sweep test: finished, {finished}/5 trials finished"


def test_a_worker_waiting_for_run_ends_finished_once_other_workers_complete_the_shared_sweep(tmp_path, shared_storage):
    storage, name = shared_storage
    slot = Slot(lambda n, p: TrialResult(n, COMPLETE, value=1.0))
    waiting = Worker(open_sweep(tmp_path, storage=storage, name=name, heartbeat_interval=1), [slot], say=print)
    waiting.step(None)
    assert waiting.status == Status.WAITING
    other = Worker(
        open_sweep(tmp_path, storage=storage, name=name), [Slot(lambda n, p: TrialResult(n, COMPLETE, value=0.0))]
    )
    run(other)  # another worker (another machine, in a real sweep) runs all of it
    deadline = time.monotonic() + 10  # it reads the storage once a heartbeat interval
    while waiting.status == Status.WAITING and time.monotonic() < deadline:
        waiting.step(None)
        time.sleep(0.05)
    assert (waiting.status, slot.started, waiting.sweep.finished) == (Status.FINISHED, [], 5)


def test_stop_lets_running_trials_end_and_starts_no_more(tmp_path):
    sweep = open_sweep(tmp_path, method="random", run_cap=20)
    slots = [Slot(lambda n, p: TrialResult(n, COMPLETE, value=1.0)) for _ in range(2)]
    lines = []
    worker = Worker(sweep, slots, say=lines.append)
    run(worker, requests={3: Request.STOP})
    started = [n for slot in slots for n in slot.started]
    assert worker.status == Status.STOPPED and 0 < worker.started_at <= worker.ended_at
    assert sweep.finished == len(started) < 20, "the trials running at the Stop ended and were told"
    assert "sweep test: stopping, 2 trials still running" in lines
    assert f"sweep test: stopped, {len(started)}/20 trials finished" in lines


def test_max_failures_gives_up_and_says_why(tmp_path, capsys):
    sweep = open_sweep(tmp_path, method="random", run_cap=5, max_failures=3)
    worker = Worker(sweep, [Slot(lambda n, p: TrialResult.failed(n, "exit code 3\n--- last output ---\nx"))])
    run(worker)
    assert worker.status == Status.GAVE_UP and sweep.tally.failures == 3
    assert capsys.readouterr().err == "sweeps: gave up after 3 failed trials (max_failures=3): 3x exit code 3\n"


def test_exports_are_written_at_the_end(tmp_path):
    from sweeps.export import Exports

    sweep = open_sweep(tmp_path)
    exports = Exports(tmp_path / "out", ["loss"], ["minimize"])
    run(Worker(sweep, [Slot(lambda n, p: TrialResult(n, COMPLETE, value=p["x"]))], exports, say=lambda line: None))
    assert len((tmp_path / "out" / "trials.csv").read_text().splitlines()) == 6
    assert '"value": -2.5' in (tmp_path / "out" / "best.json").read_text()


def test_a_sweep_without_a_metric_completes_the_trials_that_exit_0(tmp_path):
    import csv

    from sweeps.export import Exports

    config = parse_config(report_config(tmp_path, method="grid", metric=None), base_dir=SCRIPTS)
    sweep = Sweep.open(config)
    lines = []
    exports = Exports(tmp_path / "out", config.metric_names, config.directions)

    def outcome(n, params):  # x = -2.5 fails; the rest exit 0
        if params["x"] == -2.5:
            return TrialResult.failed(n, "exit code 2")
        return TrialResult(n, COMPLETE, user_attrs={"metrics": {"acc": params["x"]}})

    run(Worker(sweep, [Slot(outcome)], exports, say=lines.append))
    trials = sweep.study.get_trials()
    assert sweep.best is None and sweep.finished == 5
    assert all(t.value == 0.0 for t in trials if t.state.name == "COMPLETE"), "Optuna's placeholder, shown nowhere"
    assert any(line.startswith("[1/5] trial ") and " COMPLETE | x=" in line and "best" not in line for line in lines)
    assert lines[-1].splitlines()[-1] == "no metric: no best trial"
    rows = list(csv.DictReader((tmp_path / "out" / "trials.csv").open()))
    assert {r["value"] for r in rows} == {""} and rows[0]["acc"] != ""
    assert not (tmp_path / "out" / "best.json").exists()


def test_each_trial_records_the_share_of_the_slot_that_ran_it(tmp_path):
    from sweeps.record import RESOURCES_ATTR
    from sweeps.resources import Share

    sweep = open_sweep(tmp_path)
    slots = [Slot(lambda n, p: TrialResult(n, COMPLETE, value=p["x"])) for _ in range(2)]
    shares = [Share(gpus=("0",), cpus=(0, 1)), Share(gpus=("1",), cpus=(2, 3))]
    lines = []
    run(Worker(sweep, slots, say=lines.append, shares=shares))

    by_number = {t.number: t for t in sweep.study.get_trials()}
    for slot, expected in zip(slots, [{"gpus": "0", "cpus": "0-1"}, {"gpus": "1", "cpus": "2-3"}], strict=True):
        assert slot.started and all(by_number[n].user_attrs[RESOURCES_ATTR] == expected for n in slot.started)
    ended = [line for line in lines if line.startswith("[")]
    assert all(re.search(r"\| [\d.]+s gpus [01] cpus [02]-[13] \|", line) for line in ended), ended
