"""Trials as a HiPlot experiment: one line per ended trial across its parameters and metrics."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import hiplot as hip
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial

from sweeps import record


def trial_row(trial: FrozenTrial, objectives: Sequence[str], metrics: Sequence[str] = ()) -> dict[str, Any]:
    """The trial's number, parameters, state, each objective's value, and each of ``metrics`` it reported."""
    row: dict[str, Any] = {"uid": str(trial.number), "trial": trial.number, **record.params(trial)}
    reported = trial.user_attrs.get(record.METRICS_ATTR, {})
    row.update({name: reported[name] for name in metrics if name in reported and name not in row})
    row["state"] = trial.state.name
    if objectives and trial.values is not None:
        row.update(zip(objectives, trial.values, strict=True))
    return row


def experiment(trials: Iterable[FrozenTrial], objectives: Sequence[str], metrics: Sequence[str] = ()) -> hip.Experiment:
    """The parallel-coordinates view: the objectives as the last axes (the first one colours the lines),
    the other ``metrics`` chosen before them, log axes for log-scaled parameters.

    A sweep without a metric (no ``objectives``) has no objective axis, and is coloured by state.
    """
    trials = [t for t in trials if record.has_ended(t)]
    params = list(dict.fromkeys(name for t in trials for name in record.params(t)))
    metrics = [m for m in metrics if m not in objectives and m not in params]
    exp = hip.Experiment.from_iterable(trial_row(t, objectives, metrics) for t in trials)
    # Rows as lists under one list of columns, not one dict per trial: about half the JSON the page
    # receives (2.3 MB at 10,000 trials otherwise). HiPlot's own switch for it is private.
    exp._compress = True
    if not trials:
        # HiPlot's parallel plot fails without columns; the table alone mounts the component.
        exp.enabledDisplays = [hip.Displays.TABLE]
        return exp
    # Each numeric axis as the search space has it: HiPlot would pick a log scale by itself for any
    # positive values spanning two orders of magnitude (a uniform x in 0..1, or the metric).
    scales = {name: hip.ValueType.NUMERIC for name in [*objectives, *metrics]}
    for t in trials:
        for name, d in t.distributions.items():
            if isinstance(d, (FloatDistribution, IntDistribution)):
                scales[name] = hip.ValueType.NUMERIC_LOG if d.log else hip.ValueType.NUMERIC
    for name, scale in scales.items():
        exp.parameters_definition[name].type = scale
    exp.colorby = objectives[0] if objectives else "state"
    exp.enabledDisplays = [hip.Displays.PARALLEL_PLOT, hip.Displays.TABLE]
    # Axes left to right: when, what was tried, what else it reported, how it ended, the objectives
    # (compressed rows lose the order). HiPlot's ``order`` lists the axes from the right.
    order = [*reversed(objectives), "state", *reversed(metrics), *reversed(params), "trial"]
    exp.display_data(hip.Displays.PARALLEL_PLOT).update({"hide": ["uid", "from_uid"], "order": order})
    exp.display_data(hip.Displays.TABLE).update(
        {
            "hide": ["uid", "from_uid"],
            "order_by": [["trial", "desc"]],
            "order": order[::-1],
        }  # the table's: from the left
    )
    return exp


def standalone_html(trials: Iterable[FrozenTrial], objectives: Sequence[str], metrics: Sequence[str] = ()) -> str:
    """The plot as one HTML file that opens in any browser, without Sweeps or a server."""
    return experiment(trials, objectives, metrics).to_html()
