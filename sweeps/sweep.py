"""One worker's handle on a sweep: the Optuna study behind it, asked for trials within ``run_cap``.

The storage is the one source of truth: every trial, its parameters, value and failure reason live
there, and a sweep opened again on the same storage picks up where it was. What the stored trials
say (how many finished, failed, run; the best) is a :class:`~sweeps.tally.Tally`, fed the trials
this worker writes as it writes them and, on a storage other workers share, everything stored at
most once a second and before each ask, under a lock (``sweeps.shared``). The same rule decides
for both whether another trial may start: finished plus running trials below ``run_cap``.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps import optuna_internals, record, recovery
from sweeps.command import TrialRequest
from sweeps.config import SweepConfig, goals_text
from sweeps.control import Control, Request
from sweeps.errors import ConfigError
from sweeps.resources import Share
from sweeps.result import COMPLETE, TrialResult
from sweeps.samplers import make_sampler
from sweeps.shared import Heartbeats, LostTrials, ask_lock, ask_study
from sweeps.storage import is_shared, open_storage
from sweeps.tally import Tally
from sweeps.untried import UntriedConfigurations

#: A shared sweep reads the other workers' trials (and Run/Stop) at most this often.
SYNC_SECONDS = 1.0
#: ... and a worker waiting for room, at least this often.
WAIT_SECONDS_MAX = 8.0


def check_objectives(config: SweepConfig) -> None:
    """Refuse to resume a stored sweep on other objectives than it was created with: their values
    would be mixed in one study, and its best trials be meaningless."""
    try:
        study = optuna.load_study(study_name=config.name, storage=open_storage(config.storage))
    except KeyError:  # a new sweep
        return
    if study.user_attrs.get(record.NO_METRIC_ATTR):
        stored = "no metric"
    else:  # a study made before Sweeps named its objectives has its directions only
        stored = goals_text([d.name.lower() for d in study.directions], study.metric_names)
    wanted = goals_text(config.directions, config.metric_names) or "no metric"
    if stored not in (wanted, goals_text(config.directions)):
        raise ConfigError(
            "metrics" if config.metrics else "metric",
            f"the stored sweep {config.name!r} optimises {stored}, not {wanted}: "
            "keep its metrics, or give the sweep a new name",
        )


class Sweep:
    def __init__(self, config: SweepConfig, study: optuna.Study, shared: bool = False) -> None:
        self.config = config
        self.study = study
        self.shared = shared  # other workers run trials of this study too
        self.tally = Tally(config.directions, config.target)
        self.control = Control(study, shared)
        self._asked: dict[int, optuna.Trial] = {}  # trials this worker is running, by number
        self._reported: dict[int, int] = {}  # of those, how many intermediate values the study has
        self._untried = UntriedConfigurations(config.space, config.method, config.seed)
        interval = config.heartbeat_interval if shared else None
        self._heartbeats = Heartbeats(study, interval)  # records nothing unless the storage is shared
        self._grace = config.grace_period or 2 * config.heartbeat_interval  # as open_storage gives Optuna
        self._lost = LostTrials(study, self._grace)
        self._read_mark = 0  # what the trials last read were, to read only those that may have changed since
        self._synced = self._checked_lost = 0.0  # when the storage was last read, and searched for lost trials
        self._controlled = 0.0  # when Run/Stop was last read
        self._waits = 0  # reads in a row that found no room
        self._last_number = self._pace = 0  # this worker's last trial, and how many were asked for before it
        self._full_until = 0.0  # a shared sweep with no room left: when to look again
        self.sync()
        if shared:  # workers started together would read the study together ever after: each takes its own phase
            self._synced -= random.Random().uniform(0, config.heartbeat_interval)

    @classmethod
    def open(cls, config: SweepConfig, sole_writer: bool | None = None) -> Sweep:
        """Create the study, or load it when the storage already has one of this name.

        ``sole_writer`` (default: unless the storage is one workers share, PostgreSQL): no other
        process runs this sweep's trials, so a RUNNING trial in the storage was left by a process
        that died (``sweeps.recovery``). In a shared storage, such trials are found by their
        heartbeat instead, by whichever worker looks first.
        """
        if sole_writer is None:
            sole_writer = not is_shared(config.storage)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            storage=open_storage(config.storage, config.heartbeat_interval, config.grace_period),
            study_name=config.name,
            directions=config.directions or ["minimize"],  # Optuna's study needs one, even without a metric
            sampler=make_sampler(config.sampler, config.space, config.seed),
            pruner=config.early_terminate.build() if config.early_terminate else None,
            load_if_exists=True,
        )
        # What the study optimises, for optuna-dashboard and for the next start (``check_objectives``).
        if not config.objectives:
            study.set_user_attr(record.NO_METRIC_ATTR, True)
        elif study.metric_names is None:
            with warnings.catch_warnings():  # "experimental" since Optuna 3.2: nothing the user can act on
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(config.metric_names)
        if sole_writer:
            recovery.recover_interrupted(study, config.max_retries)
        return cls(config, study, shared=not sole_writer)

    # -- what the stored trials say ----------------------------------------------------------------

    @property
    def finished(self) -> int:
        """Trials that count towards ``run_cap``: COMPLETE and PRUNED."""
        return self.tally.finished

    @property
    def best(self) -> FrozenTrial | None:
        return self.tally.best

    @property
    def gave_up(self) -> bool:
        return self.tally.failures >= self.config.max_failures

    @property
    def stopped(self) -> bool:
        return self.control.stopped

    @property
    def complete(self) -> bool:
        """``run_cap`` trials finished, or one reached the target: nothing is left to run, whatever Run says."""
        return self.tally.finished >= self.config.run_cap or self.tally.target_reached

    @property
    def done(self) -> bool:
        """No trial is to start any more (those running are still to be told)."""
        return self.complete or self.gave_up or self.stopped

    def has_room(self) -> bool:
        """Whether another trial may start: finished and running trials (every worker's) below ``run_cap``."""
        return not self.done and self.tally.finished + self.tally.running < self.config.run_cap

    def wants_more(self) -> bool:
        """A first look, without reading the storage; :meth:`ask` decides."""
        return self.has_room() and time.monotonic() >= self._full_until

    def request(self, request: Request) -> None:
        """Run (again) or Stop: no new trial starts after a Stop, the running ones finish and are told."""
        self.control.request(request)

    # -- reading the storage -------------------------------------------------------------------------

    def sync(self) -> None:
        """Read the stored trials (those that may have changed); on a shared storage, also Run/Stop,
        and fail lost workers' trials. One query, for the trials that are new or were not ended."""
        now = time.monotonic()
        self._synced = self._controlled = now
        self._read_trials()  # first: through the proxy, the heartbeats just read say which trials are lost
        if self.shared and now - self._checked_lost >= self.config.heartbeat_interval:
            self._checked_lost = now
            lost = recovery.fail_lost_trials(self.study, self._lost.find(), self.config.max_retries)
            for trial in lost:
                print(
                    f"sweeps: trial {trial.number} failed: {record.WORKER_LOST} (no heartbeat for {self._grace} s)",
                    flush=True,
                )
            if lost:
                self._read_trials()  # their FAILs, and the retries queued
        if self.shared:
            self.control.read(self.study.user_attrs)

    def _read_trials(self) -> None:
        """Take the stored trials that may have changed since the last read: new ones and those not
        ended then (every running trial among them), so that a read costs the same at 20,000 trials."""
        trials, self._read_mark = optuna_internals.trials_changed_since(
            self.study, self._read_mark, self.tally.open_numbers
        )
        self.tally.update(trials)
        if self.shared:
            self._lost.watch(trials)
        if self._untried.active:
            self._untried.tried(record.params(t) for t in trials)

    def poll(self) -> None:
        """What the worker does on each pass, on a shared storage: read the study once a heartbeat
        interval (lost trials, progress), or after 1, 2, 4, 8 s while it waits for room (the last
        trials run); Run/Stop once a second while it has a slot free. Each read of the study
        carries every running trial: a hundred workers reading it every second would keep the
        database (or the proxy) busy."""
        if not self.shared:
            return
        now, idle = time.monotonic(), len(self._asked) < self.config.parallel
        waiting = idle and not self.has_room()
        every = min(SYNC_SECONDS * 2**self._waits, WAIT_SECONDS_MAX) if waiting else self.config.heartbeat_interval
        if now - self._synced >= every:
            self.sync()
            self._waits = self._waits + 1 if waiting and not self.has_room() else 0
        elif idle:  # the ask reads what else it needs
            self._read_control()

    def _read_control(self) -> None:
        """Run/Stop, as the other workers left it: at most once a second."""
        now = time.monotonic()
        if now - self._controlled >= SYNC_SECONDS:
            self._controlled = now
            self.control.read(self.study.user_attrs)

    # -- trials --------------------------------------------------------------------------------------

    def ask(self, share: Share | None = None) -> TrialRequest | None:
        """A new trial, to be run with ``share`` of the machine; None when, counting every worker's
        running trials, ``run_cap`` is taken."""
        with ask_lock(self.study) as serialised:
            # Read first under the lock, on a small space (what other workers took), or near the end
            # through the proxy (no trial created only to be given back); else Run/Stop alone.
            if self.shared and (serialised or self._untried.active or self._near_the_end()):
                self.sync()
            elif self.shared:  # a slot that just freed: a Stop pressed elsewhere a second ago holds
                self._read_control()
            if not self.has_room():
                self._full_until = time.monotonic() + SYNC_SECONDS
                return None
            trial = self._new_trial()
            created = optuna_internals.as_created(trial)
            self._heartbeats.start(trial)  # at once: a RUNNING trial without one is never found lost
            if not serialised and not self._has_place(trial.number):
                self._give_back(trial)
                return None
            self.tally.update([created])
            self._pace, self._last_number = trial.number - self._last_number, trial.number
        params = self.config.space.sample(trial)
        derived = {p.name: params[p.name] for p in self.config.space.parameters if p.inverse_cdf and p.name in params}
        if derived:
            trial.set_user_attr(record.PARAMS_ATTR, derived)
        used = share.describe() if share is not None else {}
        if used:
            trial.set_user_attr(record.RESOURCES_ATTR, used)
        self._asked[trial.number] = trial
        self._untried.started(trial.number, params)
        resume = bool(created.user_attrs.get(record.RESUME_ATTR))
        return TrialRequest(trial.number, params, record.first_trial(created), resume)

    def _near_the_end(self) -> bool:
        """Whether the next trial may come after the last place, by what this worker last saw: then
        it reads the study before asking, rather than create a trial only to give it back.

        Each trial it asks for tells it how many exist; since its previous one, about as many were
        asked for (by every worker) as between its previous two: twice that is the margin.
        """
        seen = self.tally.trials_seen
        margin = 2 * max(self._pace, self.tally.running)
        return seen + margin - self.tally.places_free_below(seen) >= self.config.run_cap

    def _has_place(self, number: int) -> bool:
        """Whether the trial just created as ``number`` is within ``run_cap``, when other workers may
        have asked at the same moment: the trials before it decide (``Tally.places_taken_below``).
        Far from the end of a sweep this needs no read of the study (``Tally.places_free_below``)."""
        if number - self.tally.places_free_below(number) < self.config.run_cap:
            return True
        self._read_trials()  # everything numbered below this trial is stored by now
        return self.tally.places_taken_below(number) < self.config.run_cap

    def _give_back(self, trial: optuna.Trial) -> None:
        """End a trial that came after the last place was taken: FAIL, unrun, without parameters."""
        self._heartbeats.stop(trial.number)
        self._full_until = time.monotonic() + SYNC_SECONDS
        given_back = optuna_internals.fail_trial(
            self.study, optuna_internals.trial_id(trial), record.REASON_ATTR, record.NOT_RUN
        )
        if given_back is not None:
            self.tally.update([given_back])

    def _new_trial(self) -> optuna.Trial:
        """A queued retry first, then an untried configuration of a small space, then the sampler's.

        Asking Optuna for a trial first reads every queued one; the tally knows whether there are
        any (on a shared storage, as of the last read: a retry queued since waits for the next ask).
        """
        if not self.tally.waiting:
            proposal = self._untried.propose()
            if proposal is None:
                return optuna_internals.create_trial(self.study)
            self.study.enqueue_trial(proposal)
        return ask_study(self.study)

    def report(self, number: int, values: Sequence[tuple[int, float]], ended: bool = False) -> bool:
        """Record a trial's intermediate values not recorded yet; whether the pruner stops it now.

        ``values`` are all of the trial's ``(step, value)`` so far, as its script printed them;
        ``ended``: the last of them, the trial having ended. A trial that ended having printed its
        metric once has no curve: that value is its result, and is not written a second time. A
        sweep of several objectives has no curves (Optuna keeps intermediate values of one).
        """
        trial, known = self._asked[number], self._reported.get(number, 0)
        if (ended and len(values) <= 1 and not known) or len(self.config.objectives) != 1:
            return False
        with warnings.catch_warnings():  # a step printed twice: Optuna keeps the first, and says so
            warnings.simplefilter("ignore", UserWarning)
            for step, value in values[known:]:
                trial.report(value, step)
        self._reported[number] = len(values)
        if ended or len(values) <= known or self.config.early_terminate is None or not trial.should_prune():
            return False
        if record.PRUNED_AT_ATTR not in trial.user_attrs:  # values reported while it stops are not the decision
            trial.set_user_attr(record.PRUNED_AT_ATTR, values[-1][0])
        return True

    def tell_can_wait(self, result: TrialResult) -> bool:
        """Whether another trial may start before ``result`` is told.

        Not a FAIL (its retry goes first, and it may exhaust ``max_failures``), nor a value that
        reaches the target (the sweep ends with it). Otherwise the next trial's sampler merely
        misses this one result, as it misses those of the trials still running.
        """
        target = self.config.target
        if not result.finished or target is None or result.value is None:
            return result.finished
        return record.better(target, result.value, self.config.directions[0])

    def tell(self, result: TrialResult) -> FrozenTrial:
        """Store how the trial ended; queue its retry if one is owed. The trial as stored."""
        trial = self._asked.pop(result.number)
        self._reported.pop(result.number, None)
        self._untried.ended(result.number)
        self._heartbeats.stop(result.number)
        try:
            if result.reason is not None:
                trial.set_user_attr(record.REASON_ATTR, result.reason)
            for key, value in result.user_attrs.items():
                trial.set_user_attr(key, value)
            if record.RESUMED_FROM_ATTR in result.user_attrs:
                self._continue_curve(trial, result.user_attrs[record.RESUMED_FROM_ATTR])
            if result.state == COMPLETE:
                frozen = self.study.tell(trial, _values(result), skip_if_finished=True)
            else:
                frozen = self.study.tell(trial, state=TrialState[result.state], skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            frozen = optuna_internals.stored_trial(self.study, trial)
        self.tally.update([frozen])
        if frozen.user_attrs.get(record.REASON_ATTR) == record.WORKER_LOST:
            # Another worker took this one for lost (no heartbeat for grace_period) and retried it.
            print(
                f"sweeps: trial {result.number} ended {result.state}, but was failed as "
                f"{record.WORKER_LOST!r} before; kept FAIL",
                flush=True,
            )
            return frozen
        self._full_until = 0.0  # a place may be free again
        queued = recovery.owes_retry(frozen, self.config.max_retries)
        if queued:
            recovery.queue_retry(self.study, frozen)
        if queued:
            self.sync()
        return frozen

    def _continue_curve(self, trial: optuna.Trial, resumed_from: int) -> None:
        """A run that continued an interrupted trial reported its checkpoint's curve, then from
        ``resumed_from`` on. The interrupted trial's stored values fill the steps before it that the
        run did not report: those of a metric the script printed itself, which no checkpoint keeps."""
        interrupted = optuna_internals.as_created(trial).user_attrs.get(record.RETRY_OF_ATTR)
        if interrupted is None or len(self.config.objectives) != 1:
            return
        earlier = optuna_internals.trial_by_number(self.study, interrupted).intermediate_values
        with warnings.catch_warnings():  # a step the run reported too: Optuna keeps the first
            warnings.simplefilter("ignore", UserWarning)
            for step in sorted(s for s in earlier if s < resumed_from):
                trial.report(earlier[step], step)


def _values(result: TrialResult) -> float | list[float]:
    """What Optuna's ``tell`` takes for a COMPLETE trial: its value, its values (several objectives),
    or, without a metric, the value Optuna needs and no reader shows."""
    if result.values is not None:
        return result.values
    return record.NO_METRIC_VALUE if result.value is None else result.value
