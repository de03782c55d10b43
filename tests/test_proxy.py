"""sweeps-proxy: Optuna's gRPC storage proxy in front of PostgreSQL, for many workers on one sweep."""

import socket
import subprocess
import sys
import threading
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from sweeps.proxy import SharedReads
from sweeps.record import REASON_ATTR, RETRY_OF_ATTR, WORKER_LOST
from sweeps.storage import StorageUnreachable, check_reachable, open_storage
from tests.conftest import PROXY_CONNECTIONS
from tests.harness import PROJECT
from tests.simulation import simulate, sweep_config


def run_proxy(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sweeps.proxy", *args], cwd=PROJECT, capture_output=True, text=True, timeout=60
    )


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_a_storage_other_than_postgresql_is_refused_in_one_line():
    done = run_proxy("sqlite:///sweeps.db")
    assert done.returncode == 2
    assert one_line(done.stderr).startswith("sweeps-proxy: url: a PostgreSQL storage (postgresql://...)")


def test_an_unreachable_database_is_one_line_without_the_password():
    done = run_proxy("postgresql://sweeps:secret@127.0.0.1:1/sweeps", "--port", "0")
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert line.startswith("sweeps-proxy: storage: cannot connect to postgresql://sweeps:***@127.0.0.1:1/sweeps")
    assert "secret" not in line


def test_a_port_in_use_is_one_line(postgres_url):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        done = run_proxy(postgres_url, "--host", "127.0.0.1", "--port", str(port))
    assert done.returncode == 1
    assert one_line(done.stderr).startswith(f"sweeps-proxy: cannot serve on 127.0.0.1:{port}")


def test_a_worker_with_no_proxy_answering_is_told_in_one_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free: nothing answers there
    with pytest.raises(StorageUnreachable) as err:
        check_reachable(f"grpc://127.0.0.1:{port}")
    assert str(err.value).startswith(f"storage: no gRPC storage proxy answers at grpc://127.0.0.1:{port} within")
    assert "sweeps-proxy postgresql://" in str(err.value)


class SlowReads:
    """A storage whose reads of a study take a while and are counted."""

    def __init__(self, storage) -> None:
        self.storage, self.reads = storage, 0

    def get_all_trials(self, study_id, deepcopy=True, states=None):
        self.reads += 1
        time.sleep(0.3)
        return self.storage.get_all_trials(study_id, deepcopy=deepcopy, states=states)


def test_simultaneous_reads_share_one_and_none_is_older_than_its_request(tmp_path):
    storage = optuna.storages.get_storage(f"sqlite:///{tmp_path / 'proxy.db'}")
    study = optuna.create_study(storage=storage)
    slow = SlowReads(storage)
    shared = SharedReads(slow)
    study_id = study._study_id

    results = []
    readers = [threading.Thread(target=lambda: results.append(shared.get_all_trials(study_id))) for _ in range(8)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    assert len(results) == 8 and slow.reads <= 2  # one read, and at most one that was running already

    study.ask()  # a trial created now is in every read asked for from now on
    assert len(shared.get_all_trials(study_id, states=(TrialState.RUNNING,))) == 1
    assert shared.get_all_trials(study_id, states=(TrialState.COMPLETE,)) == []


def test_the_proxy_passes_every_other_call_to_optunas_storage(tmp_path):
    storage = optuna.storages.get_storage(f"sqlite:///{tmp_path / 'proxy.db'}")
    study = optuna.create_study(storage=storage, study_name="through")
    assert SharedReads(storage).get_study_id_from_name("through") == study._study_id


@pytest.mark.slow
def test_twenty_workers_through_the_proxy_finish_exactly_run_cap_on_few_connections(
    tmp_path, shared_storage, postgres_url, storage_proxy
):
    """Twenty simulated workers (Sweeps' own asks, tells and heartbeats; no Lightning) share a sweep
    through the proxy; one process of five workers is killed mid-trial, and the others take its
    trials over. The database serves the proxy's connections and no worker's."""
    config = sweep_config(shared_storage[1], storage_proxy, 200, tmp_path, heartbeat_interval=1, grace_period=3)
    report = simulate(config, postgres_url, workers=20, processes=4, duration=0.5, workdir=tmp_path, kill_one_after=1.5)

    assert report.complete == 200
    assert 1 <= report.peak_connections <= PROXY_CONNECTIONS and report.peak_worker_connections == 0
    trials = optuna.load_study(study_name=config["name"], storage=open_storage(postgres_url)).trials
    assert not any(t.state == TrialState.RUNNING for t in trials)
    lost = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get(REASON_ATTR) == WORKER_LOST]
    assert 1 <= len(lost) <= 5, Counter((t.state.name, t.user_attrs.get(REASON_ATTR)) for t in trials)
    ran = [t for t in lost if t.params]  # (a trial killed between its creation and its parameters never ran)
    retries = {t.user_attrs[RETRY_OF_ATTR]: t for t in trials if RETRY_OF_ATTR in t.user_attrs}
    assert ran and sorted(retries) == sorted(t.number for t in ran)
    assert all(retries[t.number].params == t.params and retries[t.number].state == TrialState.COMPLETE for t in ran)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len({t.params["x"] for t in complete}) == 200  # no parameters twice (a retry replaces a FAIL)
    assert len(report.told) == len(set(report.told))  # no trial told by two workers
