"""Many workers on one sweep, simulated on one machine: Sweeps' own worker-side code, without Lightning.

Each simulated worker is a :class:`~sweeps.sweep.Sweep` of its own (its own storage client, tally,
heartbeats), asking for a trial, sleeping for the trial's fixed duration, and telling the result,
as a headless app's worker does between its slots. Workers are threads, spread over a few
processes so that one interpreter lock does not time every ask. The sweep's storage is a
PostgreSQL server, directly or through ``sweeps-proxy``; a thread counts the connections to it.

No pytest here: ``benchmarks/many_workers.py`` runs the same simulation at a larger scale.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import psutil
import sqlalchemy

from tests.harness import PROJECT, write_config

sys.path.insert(0, str(PROJECT))
from sweeps import record  # noqa: E402
from sweeps.config import load_config  # noqa: E402
from sweeps.result import COMPLETE, TrialResult  # noqa: E402
from sweeps.storage import open_storage  # noqa: E402
from sweeps.sweep import Sweep  # noqa: E402

PROGRAM = PROJECT / "tests" / "scripts" / "report.py"  # never run: the config needs a program


def sweep_config(name: str, storage: str, run_cap: int, workdir: Path, **more: object) -> dict:
    return {
        "name": name,
        "program": str(PROGRAM),
        "method": "random",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
        "run_cap": run_cap,
        "parallel": 1,
        "storage": storage,
        "output_dir": str(workdir / name),
        **more,
    }


def start_proxy(url: str, connections: int) -> tuple[subprocess.Popen, str]:
    """``sweeps-proxy`` on a free local port; (its process, the workers' storage URL)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "sweeps.proxy", url, "--host", "127.0.0.1", "--port", str(port)]
    proxy = subprocess.Popen(
        [*command, "--connections", str(connections)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proxy.stdout.readline()
    if "serving" not in line:
        proxy.kill()
        raise RuntimeError(f"sweeps-proxy did not start: {line}{proxy.stdout.read()}")
    return proxy, f"grpc://127.0.0.1:{port}"


class ConnectionCounter(threading.Thread):
    """The most connections to the PostgreSQL server that this process's children held at once: all
    of them (:attr:`peak`), and those of processes other than ``sweeps-proxy`` (:attr:`peak_workers`).

    Counted on the clients' side (psutil), not from the server's ``pg_stat_activity``, which counts
    every process on the machine: another test process's storages come and go during a run.
    """

    def __init__(self, url: str, every: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.peak_workers = 0
        self._port = sqlalchemy.engine.make_url(url).port or 5432
        self._every = every
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            proxy = workers = 0
            for child in psutil.Process().children(recursive=True):
                try:
                    held = self._held(child)
                    is_proxy = "sweeps.proxy" in child.cmdline()
                except psutil.Error:  # ended meanwhile
                    continue
                proxy, workers = (proxy + held, workers) if is_proxy else (proxy, workers + held)
            self.peak = max(self.peak, proxy + workers)
            self.peak_workers = max(self.peak_workers, workers)
            time.sleep(self._every)

    def _held(self, process: psutil.Process) -> int:
        # psutil 6 renamed connections() to net_connections(); the old name is deprecated, to be removed.
        listing = getattr(process, "net_connections", None) or process.connections
        open_to_server = (c for c in listing("tcp") if c.status == psutil.CONN_ESTABLISHED and c.raddr)
        return sum(c.raddr.port == self._port for c in open_to_server)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


@dataclass
class Report:
    workers: int
    wall: float
    complete: int
    given_back: int  # trials that came after the last place (``record.NOT_RUN``)
    lost: int  # trials failed as ``worker lost``
    asks: list[tuple[int, float]] = field(default_factory=list)  # every ask that started a trial: (number, ms)
    told: list[int] = field(default_factory=list)  # the trial numbers told, by any worker
    peak_connections: int = 0  # to the database, by every process of the simulation (the proxy's included)
    peak_worker_connections: int = 0  # by the workers' processes themselves

    @property
    def trials_per_second(self) -> float:
        return self.complete / self.wall

    def ask_percentile(self, q: int, numbers: range | None = None) -> float:
        """The ``q``-th percentile of the time an ask took (ms), of the trials numbered in ``numbers``."""
        ms = [ms for number, ms in self.asks if numbers is None or number in numbers]
        return statistics.quantiles(ms, n=100)[q - 1] if len(ms) > 1 else float("nan")


def _started_marker(out: Path | str) -> Path:
    """The file a process of workers touches each time one of them starts a trial."""
    return Path(f"{out}.started")


def _touched(marker: Path) -> int | None:
    try:
        return marker.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _wait_for_trial(marker: Path, child: subprocess.Popen, timeout: float = 120.0) -> None:
    """Return as soon as one of ``child``'s workers starts a trial."""
    before, deadline = _touched(marker), time.monotonic() + timeout
    while _touched(marker) == before:
        if child.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"a process of simulated workers started no trial (exit code {child.poll()})")
        time.sleep(0.01)


def _worker(config_path: str, duration: float, asks: list, told: list[int], stagger: bool, out: str) -> None:
    sweep = Sweep.open(load_config(config_path))
    if stagger:  # workers of a job array start over a while, not at one instant
        time.sleep(random.uniform(0, duration))
    while True:
        sweep.poll()
        if sweep.done:
            return
        if not sweep.wants_more():
            time.sleep(0.05)
            continue
        started = time.perf_counter()
        request = sweep.ask()
        if request is None:
            continue
        _started_marker(out).touch()
        asks.append((request.number, (time.perf_counter() - started) * 1000))
        time.sleep(duration)
        sweep.tell(TrialResult(request.number, COMPLETE, value=request.params["x"], duration=duration))
        told.append(request.number)


def _process(config_path: str, threads: int, duration: float, out: str, stagger: bool) -> None:
    """One process of simulated workers; what they did goes to ``out`` (JSON) when all are done."""
    asks: list[tuple[int, float]] = []  # (trial number, ms the ask took)
    told: list[int] = []
    workers = [
        threading.Thread(target=_worker, args=(config_path, duration, asks, told, stagger, out)) for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    Path(out).write_text(json.dumps({"asks": asks, "told": told}))


def simulate(
    config: dict,
    database: str,
    workers: int,
    processes: int,
    duration: float,
    workdir: Path,
    kill_one_after: float | None = None,
    stagger: bool = True,
) -> Report:
    """Run ``workers`` simulated workers on ``config`` until the sweep is done; ``database``: the
    PostgreSQL server whose connections are counted. ``kill_one_after`` seconds after the first
    process of workers started a trial (it starts before the others, whose trials could otherwise
    take the whole sweep while its imports take seconds on a loaded machine), at the moment one of
    its workers starts another: SIGKILL it, its running trials left for the others to find lost.
    ``stagger``: each worker starts within one trial's duration (else all at once, and their trials
    end together for ever)."""
    path = write_config(config, workdir / f"{config['name']}.yaml")
    Sweep.open(load_config(path))  # the study exists before the workers race to open it
    counter = ConnectionCounter(database)
    counter.start()
    spread = [workers // processes + (i < workers % processes) for i in range(processes)]
    outs = [workdir / f"{config['name']}-{i}.json" for i in range(processes)]
    started = time.perf_counter()
    children: list[subprocess.Popen] = []
    try:
        for n, out in zip(spread, outs, strict=True):
            if n:  # processes of their own: nothing of this one (its threads, its __main__) is copied
                command = [sys.executable, "-m", "tests.simulation", str(path), str(n), str(duration), str(out)]
                children.append(subprocess.Popen([*command, str(int(stagger))], cwd=PROJECT))
            if kill_one_after is not None and len(children) == 1:
                _wait_for_trial(_started_marker(outs[0]), children[0])
        if kill_one_after is not None:
            time.sleep(kill_one_after)
            _wait_for_trial(_started_marker(outs[0]), children[0])
            children[0].kill()
        for child in children:
            child.wait()
    finally:
        for child in children:
            child.kill()
    wall = time.perf_counter() - started
    counter.stop()
    asks, told = [], []
    for out in outs:
        if out.exists():
            done = json.loads(out.read_text())
            asks += map(tuple, done["asks"])
            told += done["told"]
    study = optuna.load_study(study_name=config["name"], storage=open_storage(database))
    trials = study.get_trials(deepcopy=False)
    reasons = [record.reason_headline(t) for t in trials if t.state == optuna.trial.TrialState.FAIL]
    return Report(
        workers=workers,
        wall=wall,
        complete=sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials),
        given_back=reasons.count(record.NOT_RUN),
        lost=reasons.count(record.WORKER_LOST),
        asks=asks,
        told=told,
        peak_connections=counter.peak,
        peak_worker_connections=counter.peak_workers,
    )


if __name__ == "__main__":  # one process of simulated workers, started by simulate()
    _process(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5] == "1")
