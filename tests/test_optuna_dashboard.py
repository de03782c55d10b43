"""optuna-dashboard reads a real Sweeps storage as Optuna does.

The README sends users to ``optuna-dashboard sqlite:///sweeps.db`` for the storage a sweep leaves. That
only holds while what Sweeps writes (states, values, intermediate values, user attributes, metric
names, the quantiles of some parameters, queued retries) is something the dashboard reads. So the real
headless app runs small sweeps, the dashboard's own WSGI app (what its CLI serves) is started on the
storage, and every study and trial its JSON API and CSV download show is checked against
``optuna.load_study`` of the same storage. Needs optuna-dashboard (requirements-dev.txt; in CI: must run).
"""

import csv
import importlib.util
import io
import json
import numbers
import os
import socketserver
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from sweeps import record
from tests.conftest import SCRIPTS, report_config, tradeoff_config
from tests.harness import kill_group, run_headless, start_app, write_config

if importlib.util.find_spec("optuna_dashboard") is None:
    if os.environ.get("CI"):
        raise ImportError("the optuna-dashboard test needs optuna-dashboard (requirements-dev.txt installs it)")
    pytest.skip("pip install -r requirements-dev.txt (optuna-dashboard)", allow_module_level=True)

pytestmark = pytest.mark.slow


# -- the sweeps --------------------------------------------------------------------------------------


def mixed_config(tmp_path: Path, storage: str, name: str) -> dict:
    """COMPLETE and FAIL trials (report.py fails by x: `ValueError: bad x` or exit code 3), each FAIL
    retried once (``retry_of``/``attempt``, a queued trial), and ``sleep`` a weighted choice, which
    Optuna samples as its quantile (``sleep:quantile``; the value in the ``params`` user attribute)."""
    return report_config(
        tmp_path,
        name=name,
        storage=storage,
        output_dir=str(tmp_path / name),
        method="random",
        seed=3,
        run_cap=3,
        max_failures=30,
        max_retries=1,
        parameters={
            "x": {"distribution": "int_uniform", "min": 0, "max": 8},
            "mode": {"value": "auto"},
            "sleep": {"values": [0.0, 0.01], "probabilities": [0.7, 0.3]},
        },
    )


def pruned_config(tmp_path: Path, storage: str) -> dict:
    """A learning curve per trial (tests/scripts/curve.py), the median pruner stopping the worse ones."""
    return report_config(
        tmp_path,
        name="pruned",
        storage=storage,
        output_dir=str(tmp_path / "pruned"),
        program=str(SCRIPTS / "curve.py"),
        method="random",
        seed=3,
        run_cap=8,
        parameters={"x": {"min": 0.0, "max": 10.0}, "epochs": {"value": 20}},
        early_terminate={"type": "median", "n_startup_trials": 2, "n_warmup_steps": 3},
    )


# -- the dashboard -----------------------------------------------------------------------------------


class _ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
    """What ``optuna-dashboard``'s CLI serves with (wsgiref, a thread per request)."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # one stderr line per request otherwise
        pass


@dataclass
class Dashboard:
    """optuna-dashboard's app on a storage, served on a free port of 127.0.0.1."""

    url: str
    _server: WSGIServer

    @classmethod
    def start(cls, storage: str) -> "Dashboard":
        """``optuna_dashboard.wsgi(storage)``: the CLI's own app (``create_app`` on the storage it opens
        from the URL, as ``optuna-dashboard URL`` does)."""
        import optuna_dashboard

        server = make_server(
            "127.0.0.1", 0, optuna_dashboard.wsgi(storage), server_class=_ThreadedServer, handler_class=_QuietHandler
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return cls(f"http://127.0.0.1:{server.server_port}", server)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def api(self, path: str) -> dict:
        status, body = self.get(path)
        assert status == 200, f"GET {path}: {status} {body}"
        return json.loads(body)

    def study_ids(self) -> dict[str, int]:
        return {s["study_name"]: s["study_id"] for s in self.api("/api/studies")["study_summaries"]}

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class Storage:
    """A storage the real app wrote, the dashboard serving it, and what the dashboard showed meanwhile."""

    url: str  # as Optuna (and the dashboard) open it
    dashboard: Dashboard
    studies: list[str]
    #: While the pruned sweep ran: (HTTP status, trial states shown) of each look at its study.
    live: list[tuple[int, list[str]]] = field(default_factory=list)


def sweep(config: dict, tmp_path: Path) -> None:
    done = run_headless(write_config(config, tmp_path / f"{config['name']}.yaml"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr


def watch(dashboard: Dashboard, config: dict, tmp_path: Path) -> list[tuple[int, list[str]]]:
    """Run a sweep to its end while looking at its study in the dashboard, as a user watching it does."""
    path = write_config(config, tmp_path / f"{config['name']}.yaml")
    with open(tmp_path / f"{config['name']}.log", "w") as log:
        proc = start_app("app_wo_ui.py", path, tmp_path, log, log)
    seen: list[tuple[int, list[str]]] = []
    try:
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            study_id = dashboard.study_ids().get(config["name"])
            if study_id is not None:
                status, body = dashboard.get(f"/api/studies/{study_id}")
                seen.append((status, [t["state"] for t in json.loads(body)["trials"]] if status == 200 else []))
            time.sleep(0.2)
        log_text = (tmp_path / f"{config['name']}.log").read_text()
        assert proc.poll() is not None, f"the sweep did not end in 180 s:\n{log_text}"
        assert proc.returncode == 0, log_text
    finally:
        kill_group(proc)
    return seen


@pytest.fixture(scope="module")
def sqlite_storage(tmp_path_factory) -> Iterator[Storage]:
    """One SQLite file, three sweeps: failures and retries, a pruned sweep (run while the dashboard
    watches), and a two-objective one."""
    tmp_path = tmp_path_factory.mktemp("sqlite")
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    sweep(mixed_config(tmp_path, url, "mixed"), tmp_path)
    dashboard = Dashboard.start(url)  # started on the file the first sweep made, as a user would
    try:
        live = watch(dashboard, pruned_config(tmp_path, url), tmp_path)
        sweep(tradeoff_config(tmp_path, name="tradeoff", storage=url, output_dir=str(tmp_path / "tradeoff")), tmp_path)
        yield Storage(url, dashboard, ["mixed", "pruned", "tradeoff"], live)
    finally:
        dashboard.stop()


@pytest.fixture(scope="module")
def postgresql_storage(postgres_url, tmp_path_factory) -> Iterator[Storage]:
    """The sweep with failures and retries, on the PostgreSQL storage workers share; the dashboard opens it
    under the URL the config names (SQLAlchemy 2.1 reads ``postgresql://`` as psycopg 3: requirements.txt)."""
    tmp_path = tmp_path_factory.mktemp("postgresql")
    name = f"dashboard-mixed-{uuid.uuid4().hex[:8]}"
    sweep(mixed_config(tmp_path, postgres_url, name), tmp_path)
    dashboard = Dashboard.start(postgres_url)
    try:
        yield Storage(postgres_url, dashboard, [name])
    finally:
        dashboard.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def storage(request) -> Storage:
    return request.getfixturevalue(f"{request.param}_storage")


# -- what the dashboard shows, from what Optuna reads ------------------------------------------------


def shown_attr(value: Any) -> str:
    """How the dashboard shows an attribute (its ``serialize_attrs``): a string as it is, a number
    (a bool too) by ``str``, anything else as JSON, cut at 1024 characters."""
    if isinstance(value, str):
        return value
    if isinstance(value, numbers.Real):
        return str(value)
    return json.dumps(value)[:1024]


def shown_trial(trial: FrozenTrial) -> dict[str, Any]:
    """The fields of a trial the dashboard's tables and charts read, as they should be."""
    expected: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name.capitalize(),
        "params": {
            name: {
                "external": str(value),
                "internal": trial.distributions[name].to_internal_repr(value),
                "type": type(trial.distributions[name]).__name__,
            }
            for name, value in trial.params.items()
        },
        "user_attrs": {key: shown_attr(value) for key, value in trial.user_attrs.items()},
        "intermediate_values": [{"step": s, "value": v} for s, v in sorted(trial.intermediate_values.items())],
        "values": trial.values,
        "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "datetime_complete": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
    }
    return expected


def as_shown(trial: dict[str, Any]) -> dict[str, Any]:
    """The same fields of a trial of the dashboard's ``/api/studies/<id>``."""
    return {
        "number": trial["number"],
        "state": trial["state"],
        "params": {
            p["name"]: {
                "external": p["param_external_value"],
                "internal": p["param_internal_value"],
                "type": p["distribution"]["type"],
            }
            for p in trial["params"]
        },
        "user_attrs": {a["key"]: a["value"] for a in trial["user_attrs"]},
        "intermediate_values": trial["intermediate_values"],
        "values": trial.get("values"),
        "datetime_start": trial.get("datetime_start"),
        "datetime_complete": trial.get("datetime_complete"),
    }


def load(storage: Storage, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage.url)


def detail(storage: Storage, name: str) -> dict[str, Any]:
    return storage.dashboard.api(f"/api/studies/{storage.dashboard.study_ids()[name]}")


# -- the tests ---------------------------------------------------------------------------------------


def test_the_sweeps_wrote_what_the_comparison_needs(storage):
    """The comparisons below are only worth what the storage holds: FAIL with reasons, retries, a
    quantile parameter, PRUNED with their curves, two objectives."""
    mixed = load(storage, storage.studies[0]).trials
    states = {t.state for t in mixed}
    assert {TrialState.COMPLETE, TrialState.FAIL} <= states, states
    assert all(t.user_attrs[record.REASON_ATTR] for t in mixed if t.state == TrialState.FAIL)
    assert any(record.RETRY_OF_ATTR in t.user_attrs for t in mixed), "a FAIL was retried"
    asked = [t for t in mixed if t.state != TrialState.WAITING]  # a queued retry has no parameters yet
    assert all("sleep:quantile" in t.params and "sleep" in t.user_attrs[record.PARAMS_ATTR] for t in asked)
    if "pruned" in storage.studies:
        pruned = load(storage, "pruned").trials
        assert any(t.state == TrialState.PRUNED for t in pruned) and any(t.state == TrialState.COMPLETE for t in pruned)
        assert all(t.intermediate_values for t in pruned)
    if "tradeoff" in storage.studies:
        study = load(storage, "tradeoff")
        assert len(study.directions) == 2 and study.metric_names == ["latency", "acc"]


def test_the_dashboard_lists_every_sweep_as_its_study(storage):
    summaries = {s["study_name"]: s for s in storage.dashboard.api("/api/studies")["study_summaries"]}
    optuna_studies = {s.study_name: s for s in optuna.get_all_study_summaries(storage=storage.url)}
    if storage.url.startswith("sqlite"):
        assert sorted(summaries) == sorted(optuna_studies) == sorted(storage.studies)
    for name in storage.studies:
        shown, study = summaries[name], optuna_studies[name]
        assert shown["study_id"] == study._study_id
        assert shown["directions"] == [d.name.lower() for d in study.directions]
        assert {a["key"]: a["value"] for a in shown["user_attrs"]} == {
            k: shown_attr(v) for k, v in study.user_attrs.items()
        }
        assert shown["is_preferential"] is False


def test_every_trial_shows_as_optuna_reads_it(storage):
    """Number, state, parameters (external and internal values, distribution), values, user
    attributes (``fail_reason``, ``retry_of``, ``metrics``, ...), intermediate values, start and end."""
    for name in storage.studies:
        study, shown = load(storage, name), detail(storage, name)
        assert shown["name"] == name
        assert shown["directions"] == [d.name.lower() for d in study.directions]
        trials = study.trials
        assert [as_shown(t) for t in shown["trials"]] == [shown_trial(t) for t in trials], name
        assert [t["trial_id"] for t in shown["trials"]] == [t._trial_id for t in trials]


def test_retries_show_the_parameters_they_were_queued_with(storage):
    """A retry is an enqueued trial: the dashboard shows its ``fixed_params``, which are the FAIL's."""
    study, shown = load(storage, storage.studies[0]), detail(storage, storage.studies[0])
    by_number = {t.number: t for t in study.trials}
    retries = [t for t in shown["trials"] if record.RETRY_OF_ATTR in by_number[t["number"]].user_attrs]
    assert retries
    for retry in retries:
        failed = by_number[by_number[retry["number"]].user_attrs[record.RETRY_OF_ATTR]]
        fixed = {p["name"]: p["param_external_value"] for p in retry["fixed_params"]}
        assert fixed == {k: str(v) for k, v in failed.params.items()}
        if by_number[retry["number"]].state != TrialState.WAITING:
            assert {p["name"]: p["param_external_value"] for p in retry["params"]} == fixed


def test_metric_names_best_trials_and_search_space(storage):
    """The objectives are named as the config names them; the best trial (or the Pareto set) is
    Optuna's; the search space columns are every parameter of a trial that did not fail."""
    for name in storage.studies:
        study, shown = load(storage, name), detail(storage, name)
        assert study.metric_names is not None
        assert shown["objective_names"] == study.metric_names
        best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
        assert sorted(t["number"] for t in shown["best_trials"]) == sorted(t.number for t in best)
        # The dashboard leaves FAIL trials out. Its intersection is built as it first sees trials: a queued
        # retry (WAITING), or a trial seen RUNNING before its parameters were drawn while it watched, leaves it
        # empty (timing), and the parallel-coordinate plot starts with no parameter ticked (nothing wrong in
        # the storage). It never holds a parameter some trial lacks.
        ran = [t for t in study.trials if t.state != TrialState.FAIL]
        assert {p["name"] for p in shown["union_search_space"]} == {p for t in ran for p in t.params}
        assert {p["name"] for p in shown["intersection_search_space"]} <= set.intersection(
            *(set(t.params) for t in ran)
        )
        assert {a["key"] for a in shown["union_user_attrs"]} == {k for t in study.trials for k in t.user_attrs}
        assert shown["has_intermediate_values"] == any(t.intermediate_values for t in ran)


def test_the_csv_download_has_every_trial(storage):
    for name in storage.studies:
        study = load(storage, name)
        status, body = storage.dashboard.get(f"/csv/{storage.dashboard.study_ids()[name]}")
        assert status == 200, body
        header, *rows = list(csv.reader(io.StringIO(body)))
        trials = study.trials
        params = sorted({p for t in trials for p in t.params})
        attrs = sorted({a for t in trials for a in t.user_attrs})
        assert header == ["Number", "State", *study.metric_names, *(f"Param {p}" for p in params)] + [
            f"UserAttribute {a}" for a in attrs
        ]
        n = len(study.directions)
        for row, trial in zip(rows, trials, strict=True):
            assert row[:2] == [str(trial.number), trial.state.name]
            assert row[2 : 2 + n] == ([str(v) for v in trial.values] if trial.values else [""] * n)
            assert row[2 + n : 2 + n + len(params)] == [str(trial.params.get(p, "")) for p in params]


def test_parameter_importance_answers(storage):
    """The dashboard's importance chart (PED-ANOVA on the COMPLETE trials), one list per objective."""
    for name in storage.studies:
        study = load(storage, name)
        shown = storage.dashboard.api(f"/api/studies/{storage.dashboard.study_ids()[name]}/param_importances")
        assert len(shown["param_importances"]) == len(study.directions)
        params = {p for t in study.trials for p in t.params}
        for importances in shown["param_importances"]:
            assert {i["name"] for i in importances} <= params


def test_the_dashboard_page_is_served(storage):
    status, body = storage.dashboard.get("/dashboard")
    assert status == 200 and "<html" in body.lower()


def test_a_running_sweep_shows_live(sqlite_storage):
    """Watched while the pruned sweep ran (SQLite in WAL mode, the app writing): every look answered,
    and showed RUNNING trials, then more trials ended."""
    live = sqlite_storage.live
    assert live, "the study appeared in the dashboard while the sweep ran"
    assert all(status == 200 for status, _ in live), [status for status, _ in live]
    assert any("Running" in states for _, states in live)
    ended = [sum(s != "Running" for s in states) for _, states in live]
    assert ended == sorted(ended) and ended[-1] > ended[0], "trials end as the sweep goes on"
