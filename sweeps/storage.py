"""The sweep's storage: how it is opened, and which process may write it.

SQLite takes one writer at a time (Optuna's FAQ: "database is locked" with several), so a Sweeps
app claims an SQLite file for as long as it runs, with a lock beside it; a second app on the same
file is told so at once instead of locking or corrupting the sweep. The claim is a POSIX record
lock, which belongs to the claiming process alone: the processes it forks (Lightning's API
server) do not inherit it, so the claim ends with the app's main process however it ends, and a
claim left by a dead process never blocks the next start. PostgreSQL takes many writers and is not
claimed: several workers share a sweep there (``sweeps.shared``), each with its own database
connections, or, past a few dozen workers, through Optuna's gRPC storage proxy (``grpc://host:port``,
``sweeps.proxy``), which holds a bounded number of connections for all of them.

A process that has a storage open may fork (Lightning's works start so): its idle database
connections are closed first, so that no child holds a copy of one. A child closing its copy would
end the parent's PostgreSQL session, or take the parent's SQLite WAL file for its own (SQLite's
"do not carry an open connection across a fork"); the parent reopens them as it needs them.
"""

from __future__ import annotations

import errno
import fcntl
import os
import urllib.parse
import warnings
import weakref

import optuna
import sqlalchemy
from sqlalchemy import event

from sweeps import optuna_internals

_claims: dict[str, int] = {}  # lock file -> its descriptor, open for as long as this process: the claims
_engines: weakref.WeakSet[sqlalchemy.Engine] = weakref.WeakSet()  # of the storages open in this process


class StorageBusy(RuntimeError):
    pass


class StorageUnreachable(RuntimeError):
    pass


#: URL schemes of the storages Sweeps runs on (SQLAlchemy's, as Optuna's RDBStorage takes them), and of
#: Optuna's gRPC storage proxy in front of one.
SQLITE, POSTGRESQL, PROXY = ("sqlite:///",), ("postgresql://", "postgresql+psycopg2://"), ("grpc://",)
#: How long a worker waits for the proxy to answer at start-up.
PROXY_TIMEOUT_SECONDS = 5.0


def is_sqlite(url: str) -> bool:
    return url.startswith(SQLITE)


def is_proxy(url: str) -> bool:
    return url.startswith(PROXY)


def is_shared(url: str) -> bool:
    """Whether workers may share this storage: PostgreSQL or the proxy, not an SQLite file."""
    return url.startswith(POSTGRESQL + PROXY)


def proxy_address(url: str) -> tuple[str, int]:
    """``grpc://host:port`` as (host, port); ValueError naming what is wrong."""
    parsed = urllib.parse.urlsplit(url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or port is None or parsed.path not in ("", "/"):
        raise ValueError(f"a gRPC proxy is grpc://host:port (sweeps-proxy prints it); got {url!r}")
    return parsed.hostname, port


def claim(url: str) -> None:
    """Claim an SQLite storage for this process, or raise StorageBusy naming the holder."""
    if not is_sqlite(url):
        return
    lock_path = os.path.realpath(url[len("sqlite:///") :]) + ".lock"
    if lock_path in _claims:  # (opening the file again and closing it would drop this process's lock)
        raise _busy(url, str(os.getpid()))
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EAGAIN):
            raise
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise _busy(url, holder) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _claims[lock_path] = fd


def _busy(url: str, holder: str) -> StorageBusy:
    return StorageBusy(
        f"storage: {url} is in use by another Sweeps app (pid {holder}); SQLite takes one writer: "
        "stop that app, or use a PostgreSQL storage to share a sweep"
    )


def check_reachable(url: str) -> None:
    """Connect once to a PostgreSQL storage or proxy, so that a wrong host or password is one line at start-up."""
    if is_proxy(url):
        _open_proxy(url).close()
        return
    if not is_shared(url):
        return
    engine = sqlalchemy.create_engine(with_driver(url))
    try:
        with engine.connect():
            pass
    except sqlalchemy.exc.SQLAlchemyError as err:
        reason = " ".join(line.strip() for line in str(getattr(err, "orig", err)).splitlines() if line.strip())
        raise StorageUnreachable(f"storage: cannot connect to {redacted(url)}: {reason}") from None
    finally:
        engine.dispose()


def open_storage(
    url: str, heartbeat_interval: int = 10, grace_period: int | None = None
) -> optuna.storages.BaseStorage:
    """An Optuna storage for ``url``: PostgreSQL with heartbeats; SQLite in WAL mode.

    On PostgreSQL each running trial's worker records a heartbeat every ``heartbeat_interval``
    seconds; after ``grace_period`` (default: two intervals) without one, other workers take the
    trial for lost. Connections are checked before use, as a server may drop idle ones.

    Optuna's SQLite storage commits several times per trial (the trial, each parameter, the
    result), each with a full fsync in SQLite's default mode. In WAL mode with
    ``synchronous=NORMAL`` a commit survives the app being killed (only an OS crash can lose the
    last ones), and readers (the page) do not block the writer.
    """
    if is_proxy(url):
        return _open_proxy(url)
    if is_shared(url):
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna since 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna_internals.BulkReadRDBStorage(
                with_driver(url),
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
            )
    else:
        storage = optuna_internals.BulkReadRDBStorage(url)
        event.listen(storage.engine, "connect", _wal)
        storage.engine.dispose()  # connections opened before the listener get it too
    _engines.add(storage.engine)
    return storage


def write_back(storage: optuna.storages.RDBStorage | None) -> None:
    """Move what an SQLite storage's write-ahead log holds into the database file, so that the file
    alone holds every trial. SQLite does so by itself every ~4 MB of log and when its last
    connection closes, which an app stopped by a signal never does: a finished sweep of a few
    hundred trials lived in ``sweeps.db-wal``, and a copy of ``sweeps.db`` alone (sent, uploaded,
    opened elsewhere) had none of them. Nothing to do on PostgreSQL or through the proxy (None: no
    database here).
    """
    if storage is not None and storage.engine.dialect.name == "sqlite":
        with storage.engine.connect() as connection:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _close_idle_connections() -> None:
    for engine in list(_engines):
        engine.dispose()


os.register_at_fork(before=_close_idle_connections)


def _open_proxy(url: str) -> optuna.storages.BaseStorage:
    """Optuna's client of a gRPC storage proxy, once it answers (heartbeats: ``sweeps.shared``)."""
    host, port = proxy_address(url)
    try:
        import grpc  # noqa: F401  (Optuna imports it lazily, at the first call)
        from optuna.storages import GrpcStorageProxy
    except ImportError:
        raise StorageUnreachable(f"storage: {url} needs grpcio: pip install -r requirements.txt") from None
    with warnings.catch_warnings():  # "experimental" since Optuna 4.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = GrpcStorageProxy(host=host, port=port)
    try:
        proxy.wait_server_ready(timeout=PROXY_TIMEOUT_SECONDS)
    except ConnectionError:
        proxy.close()
        raise StorageUnreachable(
            f"storage: no gRPC storage proxy answers at {url} within {PROXY_TIMEOUT_SECONDS:g} s: "
            "start one there with `sweeps-proxy postgresql://...`"
        ) from None
    return proxy


def redacted(url: str) -> str:
    """The URL as it may be shown (on the page, in logs): without its password."""
    try:
        return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)
    except sqlalchemy.exc.ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def with_driver(url: str) -> str:
    """``postgresql://`` through psycopg2 (SQLAlchemy 2.1 would look for psycopg 3, not installed)."""
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def _wal(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
