"""What the app files do before Lightning starts anything: check the config, reach and claim the storage.

Each can fail because of the user's setup (a config, a server, another app on the same file, an
Optuna other than the one Sweeps was written for); each failure ends the process with one line
on stderr, before any server, work or browser starts.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

from sweeps import cluster
from sweeps.config import ConfigError, SweepConfig, load_config
from sweeps.storage import StorageBusy, StorageUnreachable, check_reachable, claim
from sweeps.sweep import check_objectives


def start_or_exit(path: str | os.PathLike[str] | None = None) -> SweepConfig:
    try:
        import sweeps.optuna_internals  # noqa: F401  (checks the installed Optuna)
    except ImportError as err:
        sys.exit(f"sweeps: {err}")
    try:
        config = load_config(path)
    except ConfigError as err:
        sys.exit(f"sweeps: invalid sweep config: {err}")
    if not in_main_process():
        return config  # a work's process: it runs the app file again, and must not claim or warn
    if config.ignored_keys:
        print(f"sweeps: W&B keys not acted on, ignored: {', '.join(config.ignored_keys)}", file=sys.stderr)
    if config.cloud:  # before the storage: nothing starts without a cluster to run on
        check_cluster(config)
    try:
        check_reachable(config.storage)
        claim(config.storage)
    except (StorageBusy, StorageUnreachable) as err:
        sys.exit(f"sweeps: {err}")
    try:
        check_objectives(config)
    except ConfigError as err:
        sys.exit(f"sweeps: invalid sweep config: {err}")
    return config


def check_cluster(config: SweepConfig) -> None:
    """``--cloud``: a cluster is named, answers, and has a node for a trial; else one line and exit 2."""
    if config.ray_address is None:
        print(cluster.NO_CLUSTER, file=sys.stderr)
        sys.exit(2)
    shared = config.cluster is not None and config.cluster.shared
    try:
        env = cluster.runtime_env(config.launch, shared)
        found = cluster.check(config.ray_address, env, config.resources, config.parallel)
    except cluster.ClusterUnavailable as err:
        print(f"sweeps: --cloud: {err}", file=sys.stderr)
        sys.exit(2)
    print(f"sweeps: trials run on the {found}", flush=True)


def in_main_process() -> bool:
    """Whether this is the app's main process, not one multiprocessing started (Lightning's works).

    A work's process runs the app file again while it prepares, before multiprocessing tells it
    its parent; by then it has its own name.
    """
    return multiprocessing.current_process().name == "MainProcess"
