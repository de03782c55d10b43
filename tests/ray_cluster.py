"""A Ray cluster of several nodes on this machine, for the ``--cloud`` tests and benchmark.

Each node is a ``ray start`` of its own (the head first), bound to 127.0.0.1, with a resource label
of its own (``{"node_a": 1}``) so that a test can tell them apart and kill one. Ray notices a dead
node within a second here (its health checks made fast), instead of Ray's default half a minute.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

RAY = str(Path(sys.executable).parent / "ray")
#: Ray marks a node dead after two missed health checks, 0.5 s apart.
FAST_HEALTH_CHECKS = {
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_failure_threshold": "2",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRayCluster:
    def __init__(self, cpus: dict[str, int], gpus: dict[str, int] | None = None) -> None:
        """Nodes named by ``cpus``' keys (the first is the head), each with that many CPUs, and the
        GPUs ``gpus`` declares (Ray then sets ``CUDA_VISIBLE_DEVICES`` for what it gives them; none exist)."""
        self.gpus = gpus or {}
        self.temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
        self.address = f"127.0.0.1:{free_port()}"
        self.env = {**os.environ, **FAST_HEALTH_CHECKS}
        self.env.pop("RAY_ADDRESS", None)
        names = list(cpus)
        head = [f"--port={self.address.rpartition(':')[2]}", f"--temp-dir={self.temp_dir}", "--include-dashboard=false"]
        client_port = free_port()
        self.client_address = f"ray://127.0.0.1:{client_port}"  # Ray Client's, as from another machine
        head += [f"--ray-client-server-port={client_port}"]
        try:
            self._start(names[0], cpus[names[0]], ["--head", *head])
            for name in names[1:]:
                self._start(name, cpus[name], [f"--address={self.address}"])
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, cpus: int, args: list[str]) -> None:
        command = [RAY, "start", "--node-ip-address=127.0.0.1", f"--num-cpus={cpus}", "--disable-usage-stats"]
        command += [f'--resources={{"{name}": 1}}', f"--num-gpus={self.gpus.get(name, 0)}", *args]
        subprocess.run(command, env=self.env, check=True, capture_output=True, timeout=120)

    def nodes(self) -> dict[str, str]:
        """Each node's name and its Ray node id, asked of the cluster."""
        code = (
            "import json, logging, ray; ray.init(logging_level=logging.ERROR, log_to_driver=False); "
            "print(json.dumps({k: n['NodeID'] for n in ray.nodes() if n['Alive'] "
            "for k in n['Resources'] if k.startswith('node_')}))"
        )
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**self.env, "RAY_ADDRESS": self.address},
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        import json

        return json.loads(done.stdout.strip().splitlines()[-1])

    def raylet_pids(self) -> set[int]:
        """Its nodes' raylets (every process Ray starts on a node names its raylet in ``RAY_RAYLET_PID``)."""
        return {
            p.pid
            for p in psutil.process_iter(["name", "cmdline"])
            if p.info["name"] == "raylet" and any(self.temp_dir in arg for arg in p.info["cmdline"] or [])
        }

    def kill_node(self, node_id: str) -> None:
        """Kill that node's raylet (``kill -9``), and with it the workers it started: a lost machine."""
        for process in psutil.process_iter(["cmdline"]):
            if f"--node_id={node_id}" in (process.info["cmdline"] or []):
                _kill_tree(process)

    def stop(self) -> None:
        """Kill every process of this cluster (and only of this one: ``ray stop`` would kill any)."""
        port = self.address.rpartition(":")[2]
        for process in psutil.process_iter(["cmdline"]):
            cmdline = process.info["cmdline"] or []
            # Ray's client server names the head by the machine's address, not 127.0.0.1.
            joins = any(arg.startswith("--address=") and arg.endswith(f":{port}") for arg in cmdline)
            if joins or any(self.temp_dir in arg for arg in cmdline):
                _kill_tree(process)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def _kill_tree(process: psutil.Process) -> None:
    try:
        processes = [process, *process.children(recursive=True)]
    except psutil.Error:
        return
    for each in processes:
        try:
            each.kill()
        except psutil.Error:
            pass
