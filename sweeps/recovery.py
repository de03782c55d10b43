"""Trials whose process died, and failed trials owed a retry.

A trial left RUNNING by a dead process is failed with a reason that says it was not its fault
(``interrupted`` when this app is the storage's only writer and finds it at start-up, ``worker
lost`` when workers share the storage and its worker's heartbeats stopped), and its parameters are
queued again. A trial that failed by its own fault is retried up to ``max_retries`` times. A retry
is a queued (WAITING) trial that exactly one ``ask`` takes, recorded as such (``retry_of``,
``attempt``).
"""

from __future__ import annotations

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps import optuna_internals, record


def owes_retry(trial: FrozenTrial, max_retries: int) -> bool:
    """Whether a FAIL trial's parameters are to be tried again."""
    if trial.state != TrialState.FAIL or not trial.params:  # no parameters: it never ran
        return False
    return not record.counts_as_failure(trial) or record.attempt(trial) < max_retries


def queue_retry(study: optuna.Study, failed: FrozenTrial) -> None:
    """Queue the failed trial's parameters as a new trial; the next ask takes it. It shares the first
    trial's directory, and continues from its checkpoint when the failed trial was interrupted.

    A failure that was not the trial's fault uses no attempt. (Optuna's RetryFailedTrialCallback
    would copy the failed trial's user attributes, its failure reason among them, into the retry.)
    """
    attempt = record.attempt(failed) + int(record.counts_as_failure(failed))
    attrs = {
        record.RETRY_OF_ATTR: failed.number,
        record.ATTEMPT_ATTR: attempt,
        record.FIRST_TRIAL_ATTR: record.first_trial(failed),
        record.RESUME_ATTR: record.was_interrupted(failed),
    }
    study.enqueue_trial(failed.params, user_attrs=attrs, skip_if_exists=False)


def recover_interrupted(study: optuna.Study, max_retries: int) -> None:
    """For the storage's only writer, at start-up: fail what a dead process left RUNNING as
    ``interrupted``, and queue every retry owed (a crash may have come between a FAIL and its retry)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(record.RETRY_OF_ATTR) for t in trials}
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            trial = optuna_internals.fail_trial(
                study, optuna_internals.trial_id(trial), record.REASON_ATTR, record.INTERRUPTED
            )
        if trial is not None and trial.number not in retried and owes_retry(trial, max_retries):
            queue_retry(study, trial)


def fail_lost_trials(study: optuna.Study, trial_ids: list[int], max_retries: int) -> list[FrozenTrial]:
    """On a shared storage: fail, as ``worker lost``, the running trials whose worker stopped
    recording heartbeats (``sweeps.shared.LostTrials``), and queue their retries; the trials this call failed.

    Optuna's ``fail_stale_trials`` does the same without a reason. Of several workers doing this
    at once, the one whose FAIL lands queues the retry.
    """
    lost = []
    for trial_id in trial_ids:
        trial = optuna_internals.fail_trial(study, trial_id, record.REASON_ATTR, record.WORKER_LOST)
        if trial is None:
            continue  # told meanwhile, by its worker or by another that found it lost
        lost.append(trial)
        if owes_retry(trial, max_retries):
            queue_retry(study, trial)
    return lost
