import os

import pytest

from sweeps.storage import StorageBusy, claim


def test_an_sqlite_file_is_claimed_by_one_app_at_a_time(tmp_path):
    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    claim(url)
    with pytest.raises(StorageBusy) as caught:
        claim(url)
    message = str(caught.value)
    assert f"in use by another Sweeps app (pid {os.getpid()})" in message
    assert "SQLite takes one writer" in message and "\n" not in message


def test_a_postgresql_storage_is_not_claimed_workers_share_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):  # two workers of one sweep in one process: neither is refused
        claim("postgresql://user@localhost/sweeps")
    assert list(tmp_path.iterdir()) == [], "no lock file"


def test_an_unreachable_postgresql_server_is_one_line_without_the_password():
    from sweeps.storage import StorageUnreachable, check_reachable

    with pytest.raises(StorageUnreachable) as err:
        check_reachable("postgresql://sweeps:secret@127.0.0.1:9/sweeps")  # port 9: nothing listens
    message = str(err.value)
    assert message.startswith("storage: cannot connect to postgresql://sweeps:***@127.0.0.1:9/sweeps: ")
    assert "Connection refused" in message and "secret" not in message and "\n" not in message


def test_a_wrong_password_is_one_line(postgres_url):
    import sqlalchemy

    from sweeps.storage import StorageUnreachable, check_reachable

    url = sqlalchemy.engine.make_url(postgres_url).set(password="not-the-password")
    wrong = url.render_as_string(hide_password=False)
    with pytest.raises(StorageUnreachable, match="password authentication failed"):
        check_reachable(wrong)


CLAIMS_AND_FORKS = """
import os, sys, time
sys.path.insert(0, {project!r})
from sweeps.storage import claim
claim({url!r})
if os.fork() == 0:  # a child that outlives its parent, as Lightning's API server may
    time.sleep(60)
    os._exit(0)
print("claimed", flush=True)
time.sleep(60)
"""


def test_the_claim_ends_with_the_process_that_made_it_not_with_its_forked_children(tmp_path):
    import signal
    import subprocess
    import sys

    import psutil

    from tests.conftest import PROJECT

    url = f"sqlite:///{tmp_path / 'sweep.db'}"
    script = CLAIMS_AND_FORKS.format(project=str(PROJECT), url=url)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "claimed\n"
    child = psutil.Process(holder.pid).children()[0]
    try:
        with pytest.raises(StorageBusy, match=f"pid {holder.pid}"):
            claim(url)
        holder.send_signal(signal.SIGKILL)  # the app's main process dies; its forked child lives on
        holder.wait()
        assert child.is_running()
        claim(url)  # the next app starts
    finally:
        holder.kill()
        child.kill()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_forked_child_holds_none_of_the_storages_connections_and_the_parent_goes_on(kind, tmp_path, request):
    """Lightning forks the slots' processes from the flow's, which has the storage open: a child's copy
    of a connection, closed in the child, would end the parent's PostgreSQL session or take its SQLite
    WAL file."""
    import json

    import optuna
    import psutil

    from sweeps.storage import open_storage

    url = f"sqlite:///{tmp_path / 'sweep.db'}" if kind == "sqlite" else request.getfixturevalue("postgres_url")
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name=f"fork-{os.getpid()}-{tmp_path.name}")
    study.tell(study.ask(), 1.0)  # the pool now holds an open connection

    def held(process: psutil.Process) -> list[str]:
        files = [f.path for f in process.open_files() if f.path.startswith(str(tmp_path))]
        return files + [str(c.raddr) for c in process.connections("tcp") if c.raddr and c.raddr.port == 5432]

    assert held(psutil.Process()) or kind == "sqlite"  # (SQLite's connection may be closed between uses)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it holds, and leave without cleaning up
        os.write(write, json.dumps(held(psutil.Process())).encode())
        os._exit(0)
    os.close(write)
    child_holds = json.loads(os.read(read, 65536))
    os.waitpid(pid, 0)
    assert child_holds == []
    study.tell(study.ask(), 2.0)  # the parent reopens what it closed
    assert [t.value for t in study.trials] == [1.0, 2.0]


def test_write_back_leaves_every_trial_in_the_sqlite_file_itself(tmp_path):
    import shutil

    import optuna

    from sweeps.storage import open_storage, write_back

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    study = optuna.create_study(storage=storage, study_name="s")
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=5)

    def trials_in_a_copy_of_the_file_alone() -> int:
        copy = tmp_path / "copy"
        shutil.rmtree(copy, ignore_errors=True)
        copy.mkdir()
        shutil.copy(tmp_path / "sweeps.db", copy / "sweeps.db")
        summaries = optuna.get_all_study_summaries(f"sqlite:///{copy / 'sweeps.db'}")
        return sum(summary.n_trials for summary in summaries)

    assert trials_in_a_copy_of_the_file_alone() == 0, "without it: every trial is in sweeps.db-wal"
    write_back(storage)
    assert trials_in_a_copy_of_the_file_alone() == 5
    assert len(study.trials) == 5, "the storage goes on"
