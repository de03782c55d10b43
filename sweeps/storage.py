"""The sweep's storage: how it is opened, and which process may write it.

SQLite takes one writer at a time (Optuna's FAQ: "database is locked" with several), so a Sweeps
app claims an SQLite file for as long as it runs, with a lock beside it; a second app on the same
file is told so at once instead of locking or corrupting the sweep. PostgreSQL and other servers
take many writers and are not claimed.
"""

from __future__ import annotations

import fcntl
import os

import optuna
from sqlalchemy import event

_claims: list[int] = []  # open lock files: the claims last as long as this process


class StorageBusy(RuntimeError):
    pass


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:///")


def claim(url: str) -> None:
    """Claim an SQLite storage for this process, or raise StorageBusy naming the holder."""
    if not is_sqlite(url):
        return
    path = url[len("sqlite:///") :]
    lock_path = f"{path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise StorageBusy(
            f"storage: {url} is in use by another Sweeps app (pid {holder}); SQLite takes one writer: "
            "stop that app, or use a PostgreSQL storage to share a sweep"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _claims.append(fd)


def open_storage(url: str) -> optuna.storages.BaseStorage | str:
    """An Optuna storage for ``url``; SQLite in WAL mode, so that each trial costs no fsync.

    Optuna's SQLite storage commits several times per trial (the trial, each parameter, the
    result), each with a full fsync in SQLite's default mode. In WAL mode with
    ``synchronous=NORMAL`` a commit survives the app being killed (only an OS crash can lose the
    last ones), and readers (the UI) no longer block the writer.
    """
    if not is_sqlite(url):
        return url
    storage = optuna.storages.RDBStorage(url)
    event.listen(storage.engine, "connect", _wal)
    storage.engine.dispose()  # connections opened before the listener get it too
    return storage


def _wal(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
