"""The Optuna study behind a sweep, and the budget that decides when the sweep is done.

The storage is the one source of truth: every trial, its parameters, value and failure reason
live there, and a sweep opened again on the same storage picks up its counts from it. A sweep
alone on its storage only remembers counts, so that deciding "ask another trial?" costs no query;
a sweep that shares its storage with other workers (``sweeps.workers``) reads the counts again
before it decides, under a lock, and its trials carry heartbeats.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps.config import SweepConfig
from sweeps.samplers import STARTUP_TRIALS, make_sampler
from sweeps.space import QUANTILE_SUFFIX
from sweeps.storage import is_shared, open_storage
from sweeps.trial import COMPLETE, PRUNED, TrialResult, script_args
from sweeps.workers import CONTROL_ATTR, RUN, STOP, Heartbeats, ask_without_heartbeat_warning, budget_lock, stale_trial_ids

#: Where a FAIL trial keeps its reason, in the trial's user attributes.
REASON_ATTR = "fail_reason"
#: Where a trial keeps the values of parameters Optuna sampled as quantiles (normal, beta, ...).
PARAMS_ATTR = "params"
#: On a retry: the number of the FAIL trial whose parameters it tries again, and which attempt it is.
RETRY_OF_ATTR, ATTEMPT_ATTR = "retry_of", "attempt"
#: On a PRUNED trial: the step at which the pruner said stop (the script may print a few more).
PRUNED_AT_ATTR = "pruned_at_step"
#: The reason of a trial that was RUNNING when its process died.
INTERRUPTED = "interrupted"
#: The reason of a trial whose worker stopped sending heartbeats (killed, or its machine lost).
WORKER_LOST = "worker lost"
#: Failures that are not the trial's: they use no retry attempt and do not count towards max_failures.
NOT_THE_TRIALS_FAULT = (INTERRUPTED, WORKER_LOST)
#: A shared sweep reads the other workers' trials (and the Run/Stop control) at most this often.
SYNC_SECONDS = 1.0


def trial_params(trial: FrozenTrial | optuna.Trial) -> dict[str, Any]:
    """What the trial's script received: Optuna's own values and those mapped from quantiles."""
    params = {k: v for k, v in trial.params.items() if not k.endswith(QUANTILE_SUFFIX)}
    params.update(trial.user_attrs.get(PARAMS_ATTR, {}))
    return params


@dataclass(frozen=True)
class TrialRequest:
    """A trial that has been asked for: what its script is to receive."""

    number: int
    params: dict[str, Any]

    @property
    def args(self) -> list[str]:
        return script_args(self.params)


class Sweep:
    def __init__(self, config: SweepConfig, study: optuna.Study, shared: bool = False) -> None:
        self.config = config
        self.study = study
        self.shared = shared  # other workers run trials of this study too
        self.counts: Counter[str] = Counter()
        self.failures = 0  # FAIL trials that count towards max_failures (not the interrupted)
        self.best: FrozenTrial | None = None
        self.target_reached = False
        self.stopped = False  # the user asked for no more trials
        self._asked: dict[int, optuna.Trial] = {}  # trials this process is running, by number
        self._reported: dict[int, int] = {}  # of those, how many intermediate values the study has
        self._configurations = config.space.choices()  # None unless the space is small and discrete
        self._tried: set[tuple[Any, ...]] = set()
        self._running_params: dict[int, dict[str, Any]] = {}
        self._heartbeats = Heartbeats(study)
        self._synced = self._checked_lost = 0.0  # when the shared storage was last read, last searched
        self._full_until = 0.0  # a shared sweep with no room left: when to look again
        trials = study.get_trials(deepcopy=False)
        self._waiting = self._recount(trials)
        if self._configurations is not None:
            self._tried.update(self._key(trial_params(t)) for t in trials)

    @classmethod
    def open(cls, config: SweepConfig, sole_writer: bool | None = None) -> Sweep:
        """Create the study, or load it when the storage already has one of this name.

        ``sole_writer`` (default: unless the storage is one workers share, PostgreSQL): no other
        process runs this sweep's trials, so a RUNNING trial in the storage was left by a process
        that died; it is marked FAIL (``interrupted``) and its parameters are tried again.
        Retries a crash kept from being queued are queued too. In a shared storage, such trials
        are found by their heartbeat instead (``worker lost``), by whichever worker looks first.
        """
        if sole_writer is None:
            sole_writer = not is_shared(config.storage)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            storage=open_storage(config.storage, config.heartbeat_interval, config.grace_period),
            study_name=config.name,
            direction=config.metric.goal,
            sampler=make_sampler(config),
            pruner=config.early_terminate.build() if config.early_terminate else None,
            load_if_exists=True,
        )
        if sole_writer:
            _recover(study, config.max_retries)
        sweep = cls(config, study, shared=not sole_writer)
        if sweep.shared:
            sweep.sync()
        return sweep

    @property
    def finished(self) -> int:
        """Trials that count towards ``run_cap``: COMPLETE and PRUNED."""
        return self.counts[COMPLETE] + self.counts[PRUNED]

    @property
    def done(self) -> bool:
        return self.finished >= self.config.budget or self.gave_up or self.target_reached or self.stopped

    def stop(self) -> None:
        """Start no more trials; the running ones finish and are told as usual.

        In a shared storage every worker of the sweep stops: each reads the control within a second.
        """
        self.stopped = True
        if self.shared:
            self.study.set_user_attr(CONTROL_ATTR, STOP)

    def resume(self) -> None:
        """Run (again): for a shared sweep, every worker that was told to stop may start trials again."""
        self.stopped = False
        if self.shared:
            self.study.set_user_attr(CONTROL_ATTR, RUN)

    def sync(self, force: bool = True) -> None:
        """A shared sweep: read what every worker did (counts, best, Run/Stop); fail lost trials.

        Optuna's cached storage fetches only the trials that are new or were unfinished, so this
        costs one query plus a pass over the trials in memory.
        """
        now = time.monotonic()
        if not self.shared or (not force and now - self._synced < SYNC_SECONDS):
            return
        self._synced = now
        if now - self._checked_lost >= self.config.heartbeat_interval:
            self._checked_lost = now
            self._fail_lost_trials()
        trials = self.study.get_trials(deepcopy=False)
        self._waiting = self._recount(trials)
        if self._configurations is not None:  # a small discrete space: what the others tried too
            self._tried.update(self._key(trial_params(t)) for t in trials)
        if self.study.user_attrs.get(CONTROL_ATTR) == STOP:
            self.stopped = True

    @property
    def gave_up(self) -> bool:
        return self.failures >= self.config.failure_budget

    def wants_more(self, running: int) -> bool:
        """Whether another trial should start while ``running`` trials (of this process) are out.

        For a shared sweep this is a first look; :meth:`ask` decides, as the other workers' trials
        count too.
        """
        if self.shared:
            return not self.done and time.monotonic() >= self._full_until
        return not self.done and self.finished + running < self.config.budget

    def ask(self) -> TrialRequest | None:
        """A new trial; None if, counting every worker's running trials, the budget is taken."""
        with budget_lock(self.study):
            if self.shared:
                self.sync()
                if self.done or self.finished + self.counts["RUNNING"] >= self.config.budget:
                    self._full_until = time.monotonic() + SYNC_SECONDS
                    return None
            trial = self._new_trial()
            self._heartbeats.start(trial)  # at once: a RUNNING trial without heartbeat is never found lost
        params = self.config.space.sample(trial)
        derived = {p.name: params[p.name] for p in self.config.space.parameters if p.inverse_cdf and p.name in params}
        if derived:
            trial.set_user_attr(PARAMS_ATTR, derived)
        self._asked[trial.number] = trial
        if self._configurations is not None:
            self._tried.add(self._key(params))
            self._running_params[trial.number] = params
        return TrialRequest(trial.number, params)

    def _new_trial(self) -> optuna.Trial:
        queued = self.shared  # other workers may have queued retries since this one last looked
        if self._waiting:
            self._waiting -= 1  # a queued retry: study.ask() takes it
            queued = True
        else:
            untried = self._untried_configuration()
            if untried is not None:
                self.study.enqueue_trial(untried)
                queued = True
        return ask_without_heartbeat_warning(self.study) if queued else _create_trial(self.study)

    def report(self, number: int, values: Sequence[tuple[int, float]], ended: bool = False) -> bool:
        """Record a trial's intermediate values not recorded yet; whether to prune it now.

        ``values`` are all of the trial's ``(step, value)`` so far, as its script printed them;
        ``ended``: the last of them, the trial having ended. A trial that ended having printed its
        metric once has no curve: that value is its result, and is not written a second time.
        """
        trial, known = self._asked[number], self._reported.get(number, 0)
        if ended and len(values) <= 1 and not known:
            return False
        with warnings.catch_warnings():  # a step printed twice: Optuna keeps the first, and says so
            warnings.simplefilter("ignore", UserWarning)
            for step, value in values[known:]:
                trial.report(value, step)
        self._reported[number] = len(values)
        if not ended and len(values) > known and self.config.early_terminate is not None and trial.should_prune():
            if PRUNED_AT_ATTR not in trial.user_attrs:  # values printed while it stops are not the decision
                trial.set_user_attr(PRUNED_AT_ATTR, values[-1][0])
            return True
        return False

    def tell_can_wait(self, result: TrialResult) -> bool:
        """Whether another trial may start before ``result`` is told.

        Not a FAIL (its retry goes first, and it may exhaust ``max_failures``), nor a value that
        reaches the target (the sweep ends with it). Otherwise the next trial's sampler merely
        misses this one result, as it misses those of the trials still running.
        """
        if result.state not in (COMPLETE, PRUNED):
            return False
        target = self.config.metric.target
        return target is None or result.value is None or self._better(target, result.value)

    def tell(self, result: TrialResult) -> FrozenTrial:
        trial = self._asked.pop(result.number)
        self._reported.pop(result.number, None)
        self._running_params.pop(result.number, None)
        self._heartbeats.stop(result.number)
        try:
            if result.reason is not None:
                trial.set_user_attr(REASON_ATTR, result.reason)
            for key, value in result.user_attrs.items():
                trial.set_user_attr(key, value)
            if result.state == COMPLETE:
                frozen = self.study.tell(trial, result.value, skip_if_finished=True)
            else:
                frozen = self.study.tell(trial, state=TrialState[result.state], skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            frozen = self.study._storage.get_trial(trial._trial_id)
        if frozen.user_attrs.get(REASON_ATTR) == WORKER_LOST:
            # Another worker took this one for lost (no heartbeat for grace_period) and retried it.
            print(f"sweeps: trial {result.number} ended {result.state}, but was failed as {WORKER_LOST!r} before; kept FAIL", flush=True)
            return frozen
        if self.shared:
            self._full_until = 0.0  # a place may be free again
            if frozen.state == TrialState.FAIL and _attempt(frozen) < self.config.max_retries:
                _retry(self.study, frozen)
            self.sync()
            return frozen
        self._count(frozen)
        if frozen.state == TrialState.FAIL and _attempt(frozen) < self.config.max_retries:
            _retry(self.study, frozen)
            self._waiting += 1
        return frozen

    def _fail_lost_trials(self) -> None:
        """Fail, as ``worker lost``, the running trials of workers that stopped sending heartbeats.

        Optuna's ``fail_stale_trials`` does the same without a reason: here the reason is written
        first (the trial cannot be changed once failed); of several workers doing this at once, the
        one whose FAIL lands queues the retry.
        """
        storage = self.study._storage
        for trial_id in stale_trial_ids(self.study):
            try:
                storage.set_trial_user_attr(trial_id, REASON_ATTR, WORKER_LOST)
                if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue  # told meanwhile, by its worker or by another that found it lost
            lost = storage.get_trial(trial_id)
            print(f"sweeps: trial {lost.number} failed: {WORKER_LOST} (no heartbeat for {self._grace_period} s)", flush=True)
            if lost.params:
                _retry(self.study, lost, count=False)

    @property
    def _grace_period(self) -> int:
        return self.config.grace_period or 2 * self.config.heartbeat_interval

    def _untried_configuration(self) -> dict[str, Any] | None:
        """For a small discrete space while proposals are random: a configuration not run before.

        Random draws (``random``, and every model-based sampler's first trials) repeat
        configurations of a small space, and several trials at once would run the same one;
        drawing among those not tried yet, and never one that is running, avoids both.
        """
        configurations = self._configurations
        if configurations is None or self.config.method == "grid":
            return None
        if self.config.method != "random" and len(self._tried) >= STARTUP_TRIALS:
            return None
        rng = random.Random(None if self.config.seed is None else f"{self.config.seed}:{len(self._tried)}")
        for _ in range(64):  # cheap while most configurations are untried
            candidate = rng.choice(configurations)
            if self._key(candidate) not in self._tried:
                return candidate
        running = {self._key(p) for p in self._running_params.values()}
        untried = [c for c in configurations if self._key(c) not in self._tried]
        return rng.choice(untried or [c for c in configurations if self._key(c) not in running] or configurations)

    def _key(self, params: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(params.get(name) for name in self.config.space.names)

    def _recount(self, trials: Sequence[FrozenTrial]) -> int:
        """Count ``trials`` (every trial of the study) from scratch; returns how many are WAITING."""
        self.counts, self.failures, self.best, self.target_reached = Counter(), 0, None, False
        for trial in trials:
            self._count(trial)
        return self.counts["WAITING"]

    def _count(self, trial: FrozenTrial) -> None:
        self.counts[trial.state.name] += 1
        if trial.state == TrialState.FAIL and trial.user_attrs.get(REASON_ATTR) not in NOT_THE_TRIALS_FAULT:
            self.failures += 1
        if trial.state != TrialState.COMPLETE or trial.value is None or math.isnan(trial.value):
            return
        if self.best is None or self._better(trial.value, self.best.value):
            self.best = trial
        target = self.config.metric.target
        if target is not None and not self._better(target, trial.value):
            self.target_reached = True

    def _better(self, a: float, b: float | None) -> bool:
        if b is None:
            return True
        return a > b if self.config.metric.goal == "maximize" else a < b


def _create_trial(study: optuna.Study) -> optuna.Trial:
    """``study.ask()`` for a study known to hold no queued (WAITING) trial.

    ``ask`` first looks for a queued trial, a query that takes a fifth of the flow's storage time
    per trial with SQLite; a sole writer knows there is none, having queued every one itself.
    """
    study._thread_local.cached_all_trials = None  # as ask() does: samplers read the trials afresh
    return optuna.Trial(study, study._storage.create_new_trial(study._study_id))


def _attempt(trial: FrozenTrial) -> int:
    """0 for a trial as first proposed, n for its n-th retry."""
    return int(trial.user_attrs.get(ATTEMPT_ATTR, 0))


def _retry(study: optuna.Study, failed: FrozenTrial, count: bool = True) -> None:
    """Queue the failed trial's parameters as a new trial; the next ask() takes it.

    (Optuna's RetryFailedTrialCallback would copy the failed trial's user attributes, its failure
    reason among them, into the retry.)
    """
    study.enqueue_trial(
        failed.params,
        user_attrs={RETRY_OF_ATTR: failed.number, ATTEMPT_ATTR: _attempt(failed) + int(count)},
        skip_if_exists=False,
    )


def _recover(study: optuna.Study, max_retries: int) -> None:
    """Mark the trials a dead process left RUNNING as FAIL (interrupted) and queue every retry owed."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF_ATTR) for t in trials}
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            # No Trial object survives the crash: the storage is told directly, reason first.
            study._storage.set_trial_user_attr(trial._trial_id, REASON_ATTR, INTERRUPTED)
            study.tell(trial.number, state=TrialState.FAIL)
            if trial.params:  # killed before its parameters were drawn, it never ran: nothing to retry
                _retry(study, trial, count=False)  # not the trial's fault: no attempt used
        elif trial.state == TrialState.FAIL and trial.number not in retried and trial.params:
            interrupted = trial.user_attrs.get(REASON_ATTR) in NOT_THE_TRIALS_FAULT
            if interrupted or _attempt(trial) < max_retries:
                _retry(study, trial, count=not interrupted)
