"""``--cloud``: a sweep's trials on a Ray cluster, while the app, its storage and its page stay here.

Each slot (an ``ObjectiveWork``) keeps a Ray actor on a node of the cluster, its :class:`TrialHost`,
reserved with the trial's ``resources`` (Ray's scheduler picks the node). The host runs the slot's
trials one at a time exactly as a local work does (a fork server warm with the script's imports,
``sweeps.supervise``), and keeps what the trial prints for the work, which asks for it with a long
poll (:data:`POLL_SECONDS`): the output reaches the metric reader, the pruner and the log here as it
is printed, and a prune reaches the trial within one poll. A host that dies with its trial (its node
lost, its process killed) is replaced for the slot's next trial, on a node that is still up.

Ray ships the program's directory to the nodes (``runtime_env.working_dir``) and Sweeps itself
(``py_modules``); trials then write their directories on the node that runs them. With
``cluster: {shared: true}`` nothing is shipped: the program and ``output_dir`` are at the same
paths on every node (a shared file system), so a retry on another node resumes from its checkpoint.

Ray is optional (``requirements-ray.txt``) and is imported only here, only when asked for.
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from sweeps import record
from sweeps.command import Launch, TrialRequest
from sweeps.forkserver import ForkServer
from sweeps.resources import Resources, Share
from sweeps.supervise import ProcessEnd, run_trial

#: Set (to ``1``) by the ``lightning`` command for ``--cloud``, for the app's every process.
CLOUD_VARIABLE = "SWEEPS_CLOUD"
#: How to install what ``--cloud`` needs.
INSTALL = "pip install -r requirements-ray.txt"
#: What ``--cloud`` answers when no cluster is named.
NO_CLUSTER = (
    "sweeps: --cloud runs the trials on a Ray cluster, and none is named: add cluster: {ray: auto} (or "
    "ray: ray://<head>:10001) to the sweep config, or set RAY_ADDRESS (README: A sweep on a Ray cluster); or, "
    "without --cloud, start the same command on each machine with a shared PostgreSQL storage "
    "(README: Several machines on one sweep)"
)
#: The longest a work waits for its host's output before looking at the pruner again.
POLL_SECONDS = 0.2
#: A host that has not ended its trial this long after the trial's timeout is killed: it is stuck.
STUCK_SECONDS = 30.0
#: How long a trial waits for a node with room for its host (one lost, with no other free): then it fails.
PLACEMENT_SECONDS = 60.0
#: How many times a slot starts its host before its trial fails: Ray's worker processes can die as
#: they start on a loaded node (the trial, which never ran, is not what failed).
HOST_STARTS = 2
#: How long the cluster's address may take to answer before ``--cloud`` gives up.
CONNECT_SECONDS = 5.0
#: What Sweeps itself sends to the nodes.
_SWEEPS_PACKAGE = str(Path(__file__).resolve().parent)


class Cluster(BaseModel):
    """The config's ``cluster``: where ``--cloud`` runs the trials."""

    model_config = ConfigDict(extra="forbid")

    ray: str  # "auto" (the cluster this machine is a node of), "ray://<head>:10001", "<head>:6379"
    shared: bool = False  # the program's directory and output_dir are at the same paths on every node

    @field_validator("ray")
    @classmethod
    def _an_address(cls, address: str) -> str:
        if not address.strip():
            raise ValueError("should be auto, ray://<head>:10001 or <head>:6379")
        return address.strip()


class ClusterUnavailable(RuntimeError):
    """Ray is not installed, the cluster cannot be reached, or it has no room for the sweep's trials."""


class NoRoom(RuntimeError):
    """No node of the cluster took a slot's host: none had room in time, or its process died as it started."""


def address(cluster: Cluster | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The Ray cluster ``--cloud`` uses: the config's, else ``RAY_ADDRESS`` (as Ray's own tools)."""
    if cluster is not None:
        return cluster.ray
    return environ.get("RAY_ADDRESS") or None


def runtime_env(launch: Launch, shared: bool) -> dict[str, Any]:
    """What Ray sends to the nodes: Sweeps, and the program's directory unless it is shared."""
    env: dict[str, Any] = {"py_modules": [_SWEEPS_PACKAGE]}
    if not shared:
        program_dir = Path(launch.program).parent
        excludes = [".git", "__pycache__"]
        output_dir = Path(launch.output_dir)
        if output_dir.is_relative_to(program_dir):  # the sweep's results are not the program's
            excludes.append(f"/{output_dir.relative_to(program_dir)}")
        env.update(working_dir=str(program_dir), excludes=excludes)
    return env


def connect(address: str, env: dict[str, Any]) -> None:
    """Join the cluster as a Ray driver (once per process); :class:`ClusterUnavailable` in one line."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailable(f"Ray is not installed: {INSTALL}") from None
    if ray.is_initialized():
        return
    try:
        _answers(address)
    except ConnectionError as err:
        raise ClusterUnavailable(f"cannot reach the Ray cluster at {address}: {_first_line(err)}") from None
    try:
        # log_to_driver=False: the trial's output comes through the host, once; Ray's own would repeat it.
        ray.init(address=address, runtime_env=env, log_to_driver=False, logging_level=logging.ERROR)
    except Exception as err:  # noqa: BLE001 - Ray raises RuntimeError, ValueError (a directory too big to ship)...
        raise ClusterUnavailable(f"joining the Ray cluster at {address} failed: {_first_line(err)}") from None


def _answers(address: str) -> None:
    """Raise unless something listens at the cluster's address: Ray itself retries a silent one for minutes."""
    from ray._private.services import canonicalize_bootstrap_address  # "auto": the address this machine's node left

    host_port = (
        address.removeprefix("ray://") if address.startswith("ray://") else canonicalize_bootstrap_address(address)
    )
    if host_port is None:
        return  # a new local instance: nothing to reach
    host, _, port = host_port.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except (OSError, ValueError) as err:
        raise ConnectionError(f"nothing answers at {host_port} ({err.strerror or err})") from None


def check(address: str, env: dict[str, Any], resources: Resources | None, parallel: int) -> str:
    """Before the app starts: the cluster answers and its nodes have room for ``parallel`` trials at
    once (each slot keeps its host for the whole sweep). What it has, in words."""
    connect(address, env)  # first: without Ray installed, it says so
    import ray

    try:
        nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    finally:
        ray.shutdown()
    need = _actor_resources(resources)
    room = sum(min(int(node.get(key, 0) // amount) for key, amount in need.items()) for node in nodes)
    counted = f"{len(nodes)} node{'s' * (len(nodes) != 1)}"
    if room < parallel:
        wanted = ", ".join(f"{key} {amount:g}" for key, amount in need.items())
        raise ClusterUnavailable(
            f"parallel: {parallel} trials at once, each with {wanted} (resources: in the config), but the "
            f"{counted} of the Ray cluster at {address} have room for {room}: at most parallel: {room}"
        )
    cpus = sum(node.get("CPU", 0) for node in nodes)
    gpus = sum(node.get("GPU", 0) for node in nodes)
    return f"Ray cluster at {address}: {counted}, {cpus:g} CPUs, {gpus:g} GPUs"


def _actor_resources(resources: Resources | None) -> dict[str, float]:
    """What Ray reserves for a slot's host: a trial's cores (one by default, as Ray Tune), GPUs, memory."""
    need: dict[str, float] = {"CPU": 1.0}
    if resources is not None:
        need["CPU"] = float(resources.cpus_per_trial or 1)
        if resources.gpus_per_trial:
            need["GPU"] = resources.gpus_per_trial
        if resources.memory_per_trial:
            need["memory"] = float(resources.memory_per_trial)
    return need


class TrialHost:
    """In a Ray actor on a node of the cluster: runs one slot's trials there, one at a time.

    ``run`` blocks for the whole trial; ``take`` and ``prune`` come meanwhile (a threaded actor).
    """

    def __init__(self, launch: Launch, shared: bool) -> None:
        if not shared:  # the program is in Ray's copy of its directory; the trial's files stay on this node
            sweep = hashlib.sha1(launch.output_dir.encode()).hexdigest()[:8]  # two sweeps' "results/digits"
            output_dir = Path(tempfile.gettempdir()) / "sweeps" / f"{Path(launch.output_dir).name}-{sweep}"
            launch = launch.relocated(os.getcwd(), str(output_dir))
        self._launch = launch
        self._server = ForkServer(launch.program if launch.runs_warm else "", Share())
        self._output: list[tuple[int, str]] = []  # (1 or 2: stdout or stderr, text) not taken yet
        self._ended = True
        self._changed = threading.Condition()
        self._pruned = False
        self._grace = 0.0
        self._number = -1

    def where(self) -> dict[str, str]:
        """The node and the GPUs Ray gave this host, as a trial's ``resources`` record keeps them."""
        import ray

        context = ray.get_runtime_context()
        used = {"node": f"{ray.util.get_node_ip_address()}/{context.get_node_id()[:8]}"}
        gpus = context.get_accelerator_ids().get("GPU")
        if gpus:
            used["gpus"] = ",".join(gpus)
        return used

    def run(self, request: TrialRequest, wandb: bool, timeout: float | None, memory_cap: int | None) -> ProcessEnd:
        with self._changed:
            self._output, self._ended, self._pruned, self._number = [], False, False, request.number
        try:
            run = self._launch.script_run(request, wandb)
            end = run_trial(
                self._server,
                run,
                partial(self._keep, 1),
                partial(self._keep, 2),
                timeout,
                lambda: self._pruned,
                lambda: self._grace,
                memory_cap,
            )
            self._launch.trial_ended(request)
            return end
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def take(self, wait: float) -> list[tuple[int, str]]:
        """What the trial printed since the last take; waits up to ``wait`` seconds for something."""
        with self._changed:
            self._changed.wait_for(lambda: self._output or self._ended, timeout=wait)
            output, self._output = self._output, []
        return output

    def prune(self, grace: float) -> None:
        """Stop the running trial: a traced Trainer at its next check, anything else after ``grace`` seconds."""
        self._grace = grace
        self._launch.prune_file(self._number).touch()
        self._pruned = True

    def _keep(self, stream: int, text: str) -> None:
        with self._changed:
            self._output.append((stream, text))
            self._changed.notify_all()


class RemoteSlot:
    """A work's handle on its :class:`TrialHost`: made on the first trial, again after it was lost.

    Plain data until then, so that Lightning can hand it to the work's process.
    """

    def __init__(self, address: str, cluster: Cluster | None, launch: Launch, resources: Resources | None) -> None:
        self.address = address
        self.shared = cluster is not None and cluster.shared
        self.launch = launch
        self.resources = resources
        self._host: Any = None  # the actor's handle
        self._where: dict[str, str] = {}

    def run_trial(
        self,
        request: TrialRequest,
        wandb: bool,
        stdout: Callable[[str], Any],
        stderr: Callable[[str], Any],
        timeout: float | None,
        should_prune: Callable[[], bool],
        prune_grace: Callable[[], float],
        memory_cap: int | None,
    ) -> ProcessEnd:
        """As :func:`sweeps.supervise.run_trial`, on the cluster: the trial's output fed to ``stdout`` and
        ``stderr`` as it is printed; how its process ended, with where it ran."""
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        sinks = {1: stdout, 2: stderr}
        try:
            host = self._host_up()
            ended = host.run.remote(request, wandb, timeout, memory_cap)
            stuck_at = None if timeout is None else time.monotonic() + timeout + STUCK_SECONDS
            pruned = False
            while True:
                done = bool(ray.wait([ended], timeout=0)[0])  # before the take: then it has all the output
                for stream, text in ray.get(host.take.remote(POLL_SECONDS)):
                    sinks[stream](text)
                if done:
                    end: ProcessEnd = ray.get(ended)
                    break
                if should_prune() and not pruned:
                    pruned = True
                    host.prune.remote(prune_grace())
                if stuck_at is not None and time.monotonic() > stuck_at:
                    self._drop_host()
                    end = ProcessEnd(exit_code=None, timed_out=True)
                    break
        except RayActorError as err:
            self._host = None
            end = ProcessEnd(exit_code=None, error=self._lost(err))
        except (NoRoom, ClusterUnavailable) as err:  # the cluster full, or gone
            end = ProcessEnd(exit_code=None, error=str(err))
        except RayTaskError as err:  # the host failed around the trial (its directory not writable, say)
            end = ProcessEnd(exit_code=None, error=f"trial host: {_first_line(err.cause or err)}")
        end.used = dict(self._where)
        return end

    def _host_up(self) -> Any:
        """The slot's host, placed by Ray on a node with the trial's resources (waiting for one to be free)."""
        if self._host is None:
            import ray

            connect(self.address, runtime_env(self.launch, self.shared))
            need = _actor_resources(self.resources)
            options = {"num_cpus": need.pop("CPU"), "num_gpus": need.pop("GPU", 0), "memory": need.pop("memory", None)}
            # max_concurrency: the take and the prune come while the trial runs. SPREAD: one host per
            # node first, so that trials do not contend for a node's memory and disk while others idle.
            host_class = ray.remote(TrialHost).options(max_concurrency=4, scheduling_strategy="SPREAD", **options)
            for attempt in range(HOST_STARTS):
                self._host = host_class.remote(self.launch, self.shared)
                try:
                    self._where = ray.get(self._host.where.remote(), timeout=PLACEMENT_SECONDS)
                    break
                except ray.exceptions.GetTimeoutError:
                    self._drop_host()
                    raise NoRoom(f"no room on the Ray cluster for {PLACEMENT_SECONDS:g} s (a node lost?)") from None
                except ray.exceptions.RayActorError as err:  # its worker process died as it started
                    self._host = None
                    if attempt + 1 == HOST_STARTS:
                        raise NoRoom(f"the trial's host did not start on the Ray cluster: {_first_line(err)}") from None
        return self._host

    def _drop_host(self) -> None:
        import ray

        host, self._host = self._host, None
        ray.kill(host)  # its fork server and the trial's processes die with it

    def _lost(self, err: Exception) -> str:
        """Why the host died: its node went (``node lost``), or only its process did (``work lost``)."""
        import ray

        node = self._where.get("node", "")
        node_id = node.rpartition("/")[2]
        alive = any(n["NodeID"].startswith(node_id) and n["Alive"] for n in ray.nodes()) if node_id else True
        if not alive or "node has died" in str(err):
            return record.NODE_LOST
        return record.WORK_LOST


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
