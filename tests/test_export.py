import csv
import io
import json

from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeps.export import best_json, trials_csv, write_exports


def trial(number, state, value=None, params=None, user_attrs=None, values=None):
    params = params or {"lr": 0.1}
    t = create_trial(
        state=state,
        value=value,
        values=values,
        params=params,
        user_attrs=user_attrs or {},
        distributions={name: FloatDistribution(0, 100) for name in params},
    )
    t.number = number
    return t


TRIALS = [
    trial(0, TrialState.COMPLETE, 0.5, {"lr": 0.1}),
    trial(1, TrialState.FAIL, None, {"lr": 0.2}, {"fail_reason": "exit code 3\n--- last output ---\nx"}),
    trial(2, TrialState.COMPLETE, 0.25, {"lr": 0.2}, {"retry_of": 1, "attempt": 1}),
    trial(3, TrialState.COMPLETE, 0.75, {"lr:quantile": 0.3}, {"params": {"lr": 7.0}}),
]


def test_trials_csv_has_a_row_per_trial_with_what_the_script_received():
    rows = list(csv.DictReader(io.StringIO(trials_csv(TRIALS))))
    assert [r["number"] for r in rows] == ["0", "1", "2", "3"]
    assert [r["state"] for r in rows] == ["COMPLETE", "FAIL", "COMPLETE", "COMPLETE"]
    assert [r["lr"] for r in rows] == ["0.1", "0.2", "0.2", "7.0"]
    assert rows[1]["value"] == "" and rows[1]["fail_reason"].startswith("exit code 3")
    assert (rows[2]["retry_of"], rows[2]["attempt"]) == ("1", "1")


def test_write_exports_replaces_files_whole(tmp_path):
    write_exports(TRIALS, tmp_path / "out", ["loss"], ["minimize"])
    write_exports(TRIALS[:1], tmp_path / "out", ["loss"], ["minimize"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["best.json", "trials.csv"]
    assert len(list(csv.reader((tmp_path / "out" / "trials.csv").open()))) == 2
    assert json.loads((tmp_path / "out" / "best.json").read_text()) == {
        "number": 0,
        "metric": "loss",
        "value": 0.5,
        "params": {"lr": 0.1},
    }
    write_exports(TRIALS, tmp_path / "max", ["acc"], ["maximize"])
    assert json.loads((tmp_path / "max" / "best.json").read_text())["params"] == {"lr": 7.0}


def test_best_json_is_the_file_the_page_offers():
    assert json.loads(best_json(TRIALS, ["loss"], ["maximize"])) == {
        "number": 3,
        "metric": "loss",
        "value": 0.75,
        "params": {"lr": 7.0},
    }
    assert json.loads(best_json(TRIALS, ["loss"], ["minimize"]))["number"] == 2
    assert best_json(TRIALS[1:2], ["loss"], ["minimize"]) is None


def test_every_metric_a_trial_reported_has_a_column_after_the_parameters():
    trials = [
        trial(0, TrialState.COMPLETE, 0.5, user_attrs={"metrics": {"loss": 0.5, "train_loss": 0.7, "lr": 9.0}}),
        trial(1, TrialState.PRUNED, 0.9, user_attrs={"metrics": {"epoch": 3.0, "train_loss": 1.5}}),
        trial(2, TrialState.FAIL),
    ]
    rows = list(csv.DictReader(io.StringIO(trials_csv(trials, ["loss"]))))
    assert list(rows[0])[:6] == ["number", "state", "value", "lr", "train_loss", "epoch"], "no column twice"
    assert "loss" not in rows[0], "the objective is the value column"
    assert [(r["train_loss"], r["epoch"]) for r in rows] == [("0.7", ""), ("1.5", "3.0"), ("", "")]


PARETO = [
    trial(0, TrialState.COMPLETE, values=[1.0, 0.9], params={"lr": 0.1}),
    trial(1, TrialState.COMPLETE, values=[2.0, 0.8], params={"lr": 0.2}),  # worse on both than trial 0
    trial(2, TrialState.COMPLETE, values=[0.5, 0.5], params={"lr": 0.3}),
    trial(3, TrialState.FAIL, params={"lr": 0.4}),
]


def test_several_objectives_have_a_column_each_and_best_json_holds_the_pareto_set():
    rows = list(csv.DictReader(io.StringIO(trials_csv(PARETO, ["latency", "acc"]))))
    assert list(rows[0])[:4] == ["number", "state", "latency", "acc"] and "value" not in rows[0]
    assert [(r["latency"], r["acc"]) for r in rows] == [("1.0", "0.9"), ("2.0", "0.8"), ("0.5", "0.5"), ("", "")]
    assert json.loads(best_json(PARETO, ["latency", "acc"], ["minimize", "maximize"])) == {
        "metrics": [{"name": "latency", "goal": "minimize"}, {"name": "acc", "goal": "maximize"}],
        "pareto": [
            {"number": 0, "values": {"latency": 1.0, "acc": 0.9}, "params": {"lr": 0.1}},
            {"number": 2, "values": {"latency": 0.5, "acc": 0.5}, "params": {"lr": 0.3}},
        ],
    }
    flipped = json.loads(best_json(PARETO, ["latency", "acc"], ["maximize", "minimize"]))
    assert [p["number"] for p in flipped["pareto"]] == [1, 2], "the goals decide the front"
