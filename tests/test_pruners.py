"""sweeps.pruners: each `early_terminate` becomes the Optuna pruner it names, with the user's arguments.

Each case runs the built pruner on a study: 40 good trials (low values at every step), then 20
bad ones (high and rising), and reads the first step at which a bad trial was pruned. That step
is where the arguments show: W&B's min_iter, or max_iter / eta^s, is the first rung.
"""

import optuna
import pytest
from pydantic import TypeAdapter, ValidationError

from sweeps.pruners import EarlyTerminate

STEPS = 30


def first_pruned_step(spec: dict) -> int | None:
    pruner = TypeAdapter(EarlyTerminate).validate_python(spec).build()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # A fixed name: Hyperband puts each trial in a bracket by a hash of the study's name and its number.
    study = optuna.create_study(study_name="pruners", pruner=pruner, sampler=optuna.samplers.RandomSampler(0))
    for i in range(40):
        trial = study.ask()
        for step in range(1, STEPS + 1):
            trial.report(0.001 * i, step)
            trial.should_prune()  # the pruner records the rungs a trial reached when asked
        study.tell(trial, 0.001 * i)
    pruned_at = []
    for i in range(20):
        trial = study.ask()
        for step in range(1, STEPS + 1):
            trial.report(100.0 + i + step, step)
            if trial.should_prune():
                pruned_at.append(step)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, 100.0)
    return min(pruned_at, default=None)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize(
    "spec, first",
    [
        ({"type": "hyperband", "min_iter": 3, "eta": 3}, 3),
        ({"type": "hyperband", "max_iter": 27, "s": 2, "eta": 3}, 3),  # 27 / 3^2
        ({"type": "hyperband", "max_iter": 27, "s": 1, "eta": 3}, 9),  # 27 / 3^1
        ({"type": "hyperband", "min_resource": 4, "max_resource": 30, "reduction_factor": 3}, 4),
        ({"type": "asha", "min_resource": 3, "reduction_factor": 3}, 3),
        ({"type": "median", "n_warmup_steps": 5}, 5),
        ({"type": "median"}, 1),
        ({"type": "percentile", "percentile": 25, "n_warmup_steps": 2}, 2),
        ({"type": "threshold", "upper": 2.0, "n_warmup_steps": 2}, 2),
        ({"type": "patient", "patience": 2}, 4),  # rising since step 1: two steps without improvement after step 2
    ],
    ids=lambda value: (
        value.get("type", "") + "-" + "-".join(f"{k}{v}" for k, v in value.items() if k != "type")
        if isinstance(value, dict)
        else str(value)
    ),
)
def test_the_first_rung_is_where_the_arguments_put_it(spec, first):
    assert first_pruned_step(spec) == first


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"type": "hyperband", "max_iter": 27}, "max_iter needs s"),
        ({"type": "threshold"}, "give lower, upper or both"),
        ({"type": "hyperband", "min_iter": 3, "eta": 1}, "greater than or equal to 2"),
        ({"type": "asha", "rate": 3}, "Extra inputs are not permitted"),
    ],
)
def test_arguments_that_name_no_pruner_are_refused(spec, message):
    with pytest.raises(ValidationError, match=message):
        TypeAdapter(EarlyTerminate).validate_python(spec)
