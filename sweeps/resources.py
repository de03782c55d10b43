"""``resources``: each trial's share of the machine: GPUs, CPU cores, a memory cap.

Each slot holds a fixed :class:`Share` for the whole sweep, and a slot runs one trial at a time, so
at every moment no two running trials share a device (no more than ``k`` for ``gpus_per_trial:
1/k``) or a core. A slot's fork server (``sweeps.forkserver``) is started with its share, before
it imports anything of the script: ``CUDA_VISIBLE_DEVICES`` in its environment, its cores as its
CPU affinity; every trial's child inherits both. The script's libraries (torch, Lightning) count
the devices they see once and cache the count; they count the trial's own.

Devices are found without CUDA: a process that initialised CUDA and then forks breaks its
children. ``CUDA_VISIBLE_DEVICES`` names them when set (as for any CUDA program), else NVML
(``pynvml``, when installed), else ``nvidia-smi -L``. No config key, no change: trials see what
the app sees, as before this key existed.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ByteSize, ConfigDict, Field, PositiveInt, field_validator

from sweeps.errors import ConfigError

#: How many trials at once when the config says neither ``parallel`` nor what a trial needs.
DEFAULT_PARALLEL = 2
#: Thread pools (OpenMP: torch, numpy's BLAS) sized to a trial's cores, as Ray does, unless the user set it.
THREADS_VARIABLE = "OMP_NUM_THREADS"


class Resources(BaseModel):
    """What one trial needs (Ray Tune's ``resources_per_trial``)."""

    model_config = ConfigDict(extra="forbid")

    gpus_per_trial: float = Field(default=0, ge=0)  # 0: the trial sees no GPU
    cpus_per_trial: PositiveInt | None = None  # None: the trial may use every core
    memory_per_trial: ByteSize | None = Field(default=None, gt=0)  # "8GB", "512MiB": a cap on its processes' RSS

    @field_validator("gpus_per_trial")
    @classmethod
    def _whole_or_fraction(cls, gpus: float) -> float:
        if gpus >= 1 and gpus != int(gpus) or 0 < gpus < 1 and not _is_whole(1 / gpus):
            raise ValueError(f"should be a whole number of GPUs, or 1/k (0.5, 0.25, ...) to share one; got {gpus:g}")
        return gpus

    @property
    def trials_per_gpu(self) -> int:
        """``k`` for ``gpus_per_trial: 1/k``; 1 otherwise."""
        return round(1 / self.gpus_per_trial) if 0 < self.gpus_per_trial < 1 else 1

    @property
    def gpus(self) -> int:
        """Whole devices per trial (a shared one counts as one)."""
        return math.ceil(self.gpus_per_trial)


@dataclass(frozen=True)
class Machine:
    """What this machine offers trials: its GPUs (as ``CUDA_VISIBLE_DEVICES`` names them) and cores."""

    gpus: tuple[str, ...]
    found_by: str  # how the GPUs were found, for errors: "CUDA_VISIBLE_DEVICES=0,1", "nvidia-smi"
    cpus: tuple[int, ...]

    @classmethod
    def detect(cls, environ: Mapping[str, str] = os.environ) -> Machine:
        cpus = tuple(sorted(os.sched_getaffinity(0)))
        visible = environ.get("CUDA_VISIBLE_DEVICES")
        if visible is not None:
            return cls(_visible_devices(visible), f"CUDA_VISIBLE_DEVICES={visible}", cpus)
        gpus = _nvml_devices()
        if gpus is not None:
            return cls(gpus, "NVML", cpus)
        gpus = _nvidia_smi_devices()
        if gpus is not None:
            return cls(gpus, "nvidia-smi", cpus)
        return cls((), "no CUDA_VISIBLE_DEVICES, no NVIDIA driver", cpus)


@dataclass(frozen=True)
class Share:
    """What one slot's trials may use. ``None``: not managed (the trial sees what the app sees)."""

    gpus: tuple[str, ...] | None = None
    cpus: tuple[int, ...] | None = None
    memory: int | None = None  # bytes

    def environment(self, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
        """Set in the environment of the slot's fork server, and so of every trial it starts."""
        env = {}
        if self.gpus is not None:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(self.gpus)  # empty: no device at all
        if self.cpus is not None and not environ.get(THREADS_VARIABLE):
            env[THREADS_VARIABLE] = str(len(self.cpus))
        return env

    def describe(self) -> dict[str, str]:
        """What a trial run by this slot used, as its record keeps it: ``{"gpus": "0,1", "cpus": "0-3"}``."""
        described = {}
        if self.gpus is not None:
            described["gpus"] = ",".join(self.gpus) or "none"
        if self.cpus is not None:
            described["cpus"] = _ranges(self.cpus)
        return described


#: The share of a slot when the config has no ``resources`` key: whatever the app sees.
UNMANAGED = Share()


def plan(resources: Resources | None, parallel: int | None, machine: Machine | None = None) -> tuple[int, list[Share]]:
    """How many trials run at once (``parallel``, else what the machine allows) and each slot's share.

    ``machine``: what this one offers, found when the config asks for resources. Raises
    :class:`ConfigError` when the machine cannot give each of ``parallel`` trials its share.
    """
    if resources is None:
        parallel = parallel or DEFAULT_PARALLEL
        return parallel, [UNMANAGED] * parallel
    machine = machine or Machine.detect()
    gpu_capacity = _gpu_capacity(resources, machine) if resources.gpus_per_trial else None
    cpu_capacity = _cpu_capacity(resources.cpus_per_trial, machine) if resources.cpus_per_trial else None
    if parallel is None:
        parallel = min((c for c in (gpu_capacity, cpu_capacity) if c is not None), default=DEFAULT_PARALLEL)
    if gpu_capacity is not None and parallel > gpu_capacity:
        need = math.ceil(parallel / resources.trials_per_gpu) * resources.gpus
        raise ConfigError(
            "parallel",
            f"{parallel} trials at once need {need} GPUs (resources.gpus_per_trial: {resources.gpus_per_trial:g}); "
            f"this machine has {len(machine.gpus)} ({machine.found_by}): at most parallel: {gpu_capacity}",
        )
    if cpu_capacity is not None and parallel > cpu_capacity:
        raise ConfigError(
            "parallel",
            f"{parallel} trials at once need {parallel * resources.cpus_per_trial} cores "
            f"(resources.cpus_per_trial: {resources.cpus_per_trial}); this process may use {len(machine.cpus)} "
            f"(cores {_ranges(machine.cpus)}): at most parallel: {cpu_capacity}",
        )
    memory = int(resources.memory_per_trial) if resources.memory_per_trial else None
    return parallel, [_share(resources, machine, slot, memory) for slot in range(parallel)]


def _share(resources: Resources, machine: Machine, slot: int, memory: int | None) -> Share:
    if resources.gpus_per_trial:
        first = slot // resources.trials_per_gpu * resources.gpus
        gpus = machine.gpus[first : first + resources.gpus]
    else:
        gpus = ()
    cpus = None
    if resources.cpus_per_trial:
        cpus = machine.cpus[slot * resources.cpus_per_trial : (slot + 1) * resources.cpus_per_trial]
    return Share(gpus, cpus, memory)


def _gpu_capacity(resources: Resources, machine: Machine) -> int:
    """Trials at once that the machine's devices allow; a ConfigError when not even one."""
    if len(machine.gpus) < resources.gpus:
        have = {0: "no GPU", 1: "1 GPU"}.get(len(machine.gpus), f"{len(machine.gpus)} GPUs")
        per_trial = f"{resources.gpus_per_trial:g} per trial"
        raise ConfigError("resources.gpus_per_trial", f"{per_trial}, but this machine has {have} ({machine.found_by})")
    return len(machine.gpus) // resources.gpus * resources.trials_per_gpu


def _cpu_capacity(cpus_per_trial: int, machine: Machine) -> int:
    if len(machine.cpus) < cpus_per_trial:
        raise ConfigError(
            "resources.cpus_per_trial",
            f"{cpus_per_trial} cores per trial, but this process may use {len(machine.cpus)} "
            f"(cores {_ranges(machine.cpus)})",
        )
    return len(machine.cpus) // cpus_per_trial


def cap_text(memory: int) -> str:
    """``8 GB``, ``1.5 GB``: a memory cap as a failure reason gives it."""
    return ByteSize(memory).human_readable(decimal=True, separator=" ").replace(".0 ", " ")


def _is_whole(x: float) -> bool:
    return abs(x - round(x)) < 1e-9


def _visible_devices(visible: str) -> tuple[str, ...]:
    """``CUDA_VISIBLE_DEVICES`` as CUDA reads it: ids (indices, ``GPU-``/``MIG-`` UUIDs) up to the first
    invalid one (``-1``, ``NoDevFiles``: no device)."""
    devices = []
    for part in visible.split(","):
        part = part.strip()
        if not re.fullmatch(r"\d+|(GPU|MIG)-[\w/-]+", part):
            break
        devices.append(part)
    return tuple(devices)


def _nvml_devices() -> tuple[str, ...] | None:
    """The driver's devices through NVML (no CUDA context), or None where NVML is not available."""
    try:
        import pynvml  # type: ignore[import-not-found]  # nvidia-ml-py, when installed
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # noqa: BLE001 - pynvml.NVMLError has subclasses per driver error: no driver here
        return None
    try:
        return tuple(str(i) for i in range(pynvml.nvmlDeviceGetCount()))
    finally:
        pynvml.nvmlShutdown()


def _nvidia_smi_devices() -> tuple[str, ...] | None:
    """The devices ``nvidia-smi -L`` lists (``GPU 0: NVIDIA A100 (UUID: ...)``), or None without it."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):  # a driver that does not answer: no device to hand out
        return None
    return tuple(re.findall(r"^GPU (\d+):", listed, re.MULTILINE))


def _ranges(cpus: Sequence[int]) -> str:
    """``0-3,8``: cores as ``taskset`` and ``cpuset`` write them."""
    parts: list[str] = []
    start = previous = None
    for cpu in [*sorted(cpus), None]:
        if previous is not None and cpu == previous + 1:
            previous = cpu
            continue
        if start is not None:
            parts.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = cpu
    return ",".join(parts)
