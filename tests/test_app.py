"""The headless app end to end, through the real `lightning run app` command."""

import re

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.record import REASON_ATTR
from tests.conftest import report_config, tradeoff_config
from tests.harness import run_headless

pytestmark = pytest.mark.slow


def load(config):
    return optuna.load_study(study_name=config["name"], storage=config["storage"]).trials


def test_headless_sweep_runs_exactly_run_cap_trials_with_the_printed_values(tmp_path, write_config):
    config = report_config(tmp_path)  # grid over x in [-2.5, -1, 0, 1, 2.5]; the script prints loss=x
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    trials = load(config)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 5
    assert sorted(t.params["x"] for t in trials) == [-2.5, -1, 0, 1, 2.5]
    for t in trials:
        log = (tmp_path / "results" / "logs" / f"{t.number}.log").read_text()
        printed = float(re.findall(r"loss=(\S+)", log)[-1])
        assert t.value == printed == t.params["x"]

    progress = [line for line in done.stdout.splitlines() if re.match(r"\[\d/5\] trial \d COMPLETE loss=", line)]
    assert len(progress) == 5
    assert "best trial" in done.stdout and "value=-2.5" in done.stdout
    assert re.search(r"^\{0: .*4: .*\}$", done.stdout, re.M), "the final {trial_number: value} dict"
    assert re.search(r"^sweep \S+: finished, 5/5 trials finished\n\{0: .*\}\nbest trial ", done.stdout, re.M), (
        "how the sweep ended, then the dict and the best trial"
    )


def test_failing_trials_keep_their_reason_and_the_sweep_goes_on(tmp_path, write_config):
    config = report_config(
        tmp_path,
        method="random",
        seed=3,
        run_cap=3,
        max_failures=30,
        parameters={"x": {"distribution": "int_uniform", "min": 0, "max": 8}, "mode": {"value": "auto"}},
    )
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    trials = load(config)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 3
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert failed, "the seed was chosen to mix failures in"
    for t in failed:
        expected = "ValueError: bad x" if t.params["x"] % 3 == 1 else "exit code 3"
        assert t.user_attrs[REASON_ATTR].startswith(expected)
    assert all(t.state != TrialState.RUNNING for t in trials)


def test_invalid_config_exits_at_once_with_one_line_naming_the_key(tmp_path, write_config):
    config = report_config(tmp_path, parameters={"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}})
    done = run_headless(write_config(config), cwd=tmp_path, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert lines == ["sweeps: invalid sweep config: parameters.lr.min: must be > 0 on a log scale (got 0)"]
    assert not (tmp_path / "sweep.db").exists(), "nothing started"


def dominates(a, b, signs):
    """Whether values ``a`` are at least as good as ``b`` on every objective and better on one."""
    a, b = [s * v for s, v in zip(signs, a, strict=True)], [s * v for s, v in zip(signs, b, strict=True)]
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def test_two_objectives_keep_the_pareto_set_and_every_metric(tmp_path, write_config):
    import csv
    import json

    config = tradeoff_config(tmp_path)
    done = run_headless(write_config(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr

    study = optuna.load_study(study_name=config["name"], storage=config["storage"])
    assert study.metric_names == ["latency", "acc"] and len(study.directions) == 2
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 10
    for t in trials:
        assert t.values == [t.params["size"], t.params["size"] - t.params["noise"]], "as the script printed them"
    front = {a.number for a in trials if not any(dominates(b.values, a.values, (1, -1)) for b in trials)}
    assert front == {t.number for t in trials if t.params["noise"] == 0.0}, "the script's known front"
    assert {t.number for t in study.best_trials} == front

    best = json.loads((tmp_path / "results" / "best.json").read_text())
    assert best["metrics"] == config["metrics"]
    assert {p["number"] for p in best["pareto"]} == front
    for p in best["pareto"]:
        assert p["values"] == {"latency": p["params"]["size"], "acc": p["params"]["size"]}

    lines = done.stdout.splitlines()
    at = lines.index("Pareto set: 5 trials")
    assert re.match(r"^\{0: \[.*\]\}$", lines[at - 1]), "the final {trial_number: values} dict"
    shown = [re.match(r"  trial (\d+): latency=\S+ acc=\S+ size=\S+ noise=0\.0$", line) for line in lines[at + 1 :]]
    assert all(shown) and {int(m.group(1)) for m in shown} == front, lines[at:]
    assert re.search(r"^\[ ?\d+/10\] trial \d+ COMPLETE latency=\S+ acc=\S+ \| ", done.stdout, re.M)

    rows = list(csv.DictReader((tmp_path / "results" / "trials.csv").open()))
    assert list(rows[0])[:4] == ["number", "state", "latency", "acc"]
    for row in rows:
        size = float(row["size"])
        assert float(row["train_loss"]) == 1 - size and float(row["params_m"]) == 10 * size, "each metric's last value"


def test_cloud_without_a_cluster_says_how_to_name_one_or_spread_trials_and_exits_2(tmp_path, write_config):
    import subprocess

    from sweeps.cluster import NO_CLUSTER
    from tests.harness import app_env, lightning_command

    path = write_config(report_config(tmp_path))
    command = lightning_command("app_wo_ui.py", "--cloud")
    env = app_env(path)
    env.pop("RAY_ADDRESS", None)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [NO_CLUSTER]
    assert "RAY_ADDRESS" in NO_CLUSTER and "PostgreSQL" in NO_CLUSTER
    assert not (tmp_path / "sweep.db").exists() and not (tmp_path / ".storage").exists(), "nothing started"
