import csv
import io
import json

from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from sweeps.export import best_json, trials_csv, write_exports


def trial(number, state, value=None, params=None, user_attrs=None):
    params = params or {"lr": 0.1}
    t = create_trial(
        state=state,
        value=value,
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
    write_exports(TRIALS, tmp_path / "out", "loss", "minimize")
    write_exports(TRIALS[:1], tmp_path / "out", "loss", "minimize")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["best.json", "trials.csv"]
    assert len(list(csv.reader((tmp_path / "out" / "trials.csv").open()))) == 2
    assert json.loads((tmp_path / "out" / "best.json").read_text()) == {
        "number": 0,
        "metric": "loss",
        "value": 0.5,
        "params": {"lr": 0.1},
    }
    write_exports(TRIALS, tmp_path / "max", "acc", "maximize")
    assert json.loads((tmp_path / "max" / "best.json").read_text())["params"] == {"lr": 7.0}


def test_best_json_is_the_file_the_page_offers():
    assert json.loads(best_json(TRIALS, "loss", "maximize")) == {
        "number": 3,
        "metric": "loss",
        "value": 0.75,
        "params": {"lr": 7.0},
    }
    assert json.loads(best_json(TRIALS, "loss", "minimize"))["number"] == 2
    assert best_json(TRIALS[1:2], "loss", "minimize") is None
