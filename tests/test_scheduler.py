"""The loop of HPOFlow.run, driven here by plain slots that finish a trial on the next pass."""

from typing import Any

from optuna.trial import TrialState

from sweeps.config import parse_config
from sweeps.scheduler import schedule
from sweeps.sweep import REASON_ATTR, Sweep
from sweeps.trial import COMPLETE, TrialResult
from tests.conftest import SCRIPTS, report_config


class Slot:
    """Runs a trial "in the background": its result appears on the next pass of the loop."""

    def __init__(self, outcome):
        self.outcome = outcome
        self.started: list[int] = []
        self.pending: dict[str, Any] | None = None
        self.result: dict[str, Any] | None = None

    def start_trial(self, trial_number, params):
        self.started.append(trial_number)
        self.pending = self.outcome(trial_number, params).to_dict()

    def values_of(self, trial_number):
        return []

    def stop_trial(self, trial_number):
        raise AssertionError("no pruner here")

    def result_of(self, trial_number):
        if self.pending is not None:
            self.result, self.pending = self.pending, None
            return None
        return self.result if self.result and self.result["number"] == trial_number else None


def run(sweep, slots):
    running, ended, passes = {}, [], 0
    while not (sweep.done and not running):
        schedule(sweep, slots, running, on_end=ended.append)
        passes += 1
        assert passes < 1000, "the sweep never ended"
        assert len(running) <= len(slots)
    return ended


def test_runs_exactly_run_cap_trials_in_parallel_with_zero_and_negative_metrics(tmp_path):
    config = parse_config(report_config(tmp_path), base_dir=SCRIPTS)  # grid over x in -2.5..2.5
    sweep = Sweep.open(config)
    slots = [Slot(lambda n, p: TrialResult(n, COMPLETE, value=p["x"])) for _ in range(2)]
    ended = run(sweep, slots)

    assert sorted(t.value for t in ended) == [-2.5, -1, 0, 1, 2.5]
    assert sorted(n for slot in slots for n in slot.started) == [0, 1, 2, 3, 4]
    assert all(slot.started for slot in slots), "both slots were used"
    stored = sweep.study.get_trials()
    assert [t.state for t in stored] == [TrialState.COMPLETE] * 5
    assert all(t.value == t.params["x"] for t in stored)


def test_failed_trials_are_replaced_until_run_cap_finish(tmp_path):
    config = parse_config(report_config(tmp_path, method="random", run_cap=3, seed=1, max_failures=10), base_dir=SCRIPTS)
    sweep = Sweep.open(config)

    def every_other_fails(n, params):
        return TrialResult.failed(n, "exit code 3") if n % 2 else TrialResult(n, COMPLETE, value=1.0)

    ended = run(sweep, [Slot(every_other_fails), Slot(every_other_fails)])
    states = [t.state for t in ended]
    assert states.count(TrialState.COMPLETE) == 3
    assert all(t.user_attrs[REASON_ATTR] == "exit code 3" for t in ended if t.state == TrialState.FAIL)
    assert len(sweep.study.get_trials()) == len(ended), "no trial left running"


def test_a_slot_gets_its_next_trial_before_the_study_is_told_unless_the_trial_failed(tmp_path):
    config = parse_config(report_config(tmp_path, method="random", run_cap=4, max_retries=1), base_dir=SCRIPTS)
    sweep = Sweep.open(config)
    states_at_start: list[list[str]] = []  # the stored states of the earlier trials, when each starts

    def outcome(number, params):
        states_at_start.append([t.state.name for t in sweep.study.get_trials(deepcopy=False)][:number])
        if number == 1:
            return TrialResult.failed(number, "boom")
        return TrialResult(number, COMPLETE, value=float(number))

    run(sweep, [Slot(outcome)])
    assert states_at_start[1] == ["RUNNING"], "trial 0 completed: trial 1 started before it was told"
    assert states_at_start[2] == ["COMPLETE", "FAIL"], "trial 1 failed: told first, and its retry is trial 2"
    assert sweep.study.trials[2].params == sweep.study.trials[1].params
    assert [t.state.name for t in sweep.study.trials] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE", "COMPLETE"]
