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


def test_other_storages_are_not_claimed(tmp_path):
    claim("postgresql://user@localhost/sweeps")
    claim("postgresql://user@localhost/sweeps")
