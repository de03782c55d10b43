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
