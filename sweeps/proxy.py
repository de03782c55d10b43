"""Optuna's gRPC storage proxy in front of the sweep's PostgreSQL: many workers, few database connections.

    sweeps-proxy postgresql://user:password@host/db [--host 0.0.0.0] [--port 13000] [--connections 10]

A worker on ``storage: postgresql://...`` holds two connections for as long as it runs, and
PostgreSQL serves 100 by default: a few dozen workers fill it. Workers on
``storage: grpc://proxy-host:13000`` talk to this process instead, which holds at most
``--connections`` for all of them (Optuna's ``run_grpc_proxy_server``, with its cache of the
study's trials). What the workers guarantee is the same (``sweeps.shared``): exact ``run_cap``,
heartbeats, lost workers' trials taken over. Run one proxy per database: every worker of a sweep
goes through the same one (a second proxy would keep a second cache).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import threading
import warnings
from collections.abc import Container
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweeps import optuna_internals
from sweeps.storage import POSTGRESQL, StorageUnreachable, check_reachable, redacted, with_driver

DEFAULT_PORT = 13000


class SharedReads:
    """The proxy's storage (Optuna's cached one), whose simultaneous reads of a study's trials share
    one database query.

    A worker reads the study's trials each time it asks for one (its trial's place depends on a
    fresh read), and Optuna's cache sends each read to the database, one at a time behind its
    lock: a hundred workers queue there. A read that starts after a request arrived is as fresh
    as the request's own would be, so every request that arrives while a read runs is answered
    by the next read, which one of them starts.
    """

    def __init__(self, storage: optuna.storages.BaseStorage) -> None:
        self._storage = storage
        self._changed = threading.Condition()
        self._reads: dict[int, _Reads] = {}

    def __getattr__(self, name: str) -> Any:  # every other call goes to Optuna's storage as it is
        return getattr(self._storage, name)

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = self._fresh(study_id)
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    def _fresh(self, study_id: int) -> list[FrozenTrial]:
        with self._changed:
            reads = self._reads.setdefault(study_id, _Reads())
            wanted = reads.started + 1  # the first read to start from now on
            while reads.done < wanted:
                if reads.running:
                    self._changed.wait()
                    continue
                reads.running, reads.started = True, reads.started + 1
                number = reads.started
                self._changed.release()
                try:
                    trials = self._storage.get_all_trials(study_id, deepcopy=False)
                finally:
                    self._changed.acquire()
                    reads.running = False
                    self._changed.notify_all()
                reads.trials, reads.done = trials, number
            return reads.trials


class _Reads:
    def __init__(self) -> None:
        self.started = self.done = 0  # reads of the study started, and the last one finished
        self.running = False
        self.trials: list[FrozenTrial] = []


def build(url: str, host: str, port: int, connections: int) -> object:
    """The proxy's gRPC server, bound and not started; StorageUnreachable, or RuntimeError for a port in use."""
    check_reachable(url)
    database = optuna.storages.RDBStorage(
        with_driver(url),
        engine_kwargs={"pool_size": connections, "max_overflow": 0, "pool_pre_ping": True},
    )
    with warnings.catch_warnings():  # "experimental" since Optuna 4.2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = SharedReads(optuna.storages.get_storage(database))
        return optuna_internals.grpc_proxy_server(storage, host, port, connections)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sweeps-proxy", description=__doc__.splitlines()[0])
    parser.add_argument("url", help="the sweep's storage: postgresql://user:password@host/db")
    parser.add_argument("--host", default="0.0.0.0", help="address to serve on (default: every interface)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument("--connections", type=int, default=10, help="database connections at most (default 10)")
    args = parser.parse_args(argv)
    if not args.url.startswith(POSTGRESQL):
        parser.exit(2, f"sweeps-proxy: url: a PostgreSQL storage (postgresql://...); got {redacted(args.url)!r}\n")
    if args.connections < 1:
        parser.exit(2, f"sweeps-proxy: --connections: at least 1; got {args.connections}\n")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # gRPC's own log lines: each failure is said once, below
    try:
        server = build(args.url, args.host, args.port, args.connections)
    except StorageUnreachable as err:
        print(f"sweeps-proxy: {err}", file=sys.stderr)
        return 1
    except RuntimeError:  # grpc: "Failed to bind to address"
        print(f"sweeps-proxy: cannot serve on {args.host}:{args.port}: in use, or not this machine's", file=sys.stderr)
        return 1
    server.start()
    print(
        f"sweeps-proxy: serving {redacted(args.url)} on port {args.port} with at most {args.connections} "
        f"database connections; workers use storage: grpc://<this host>:{args.port}",
        flush=True,
    )
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:
        server.stop(grace=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
