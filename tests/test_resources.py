"""sweeps.resources: each trial's devices, cores and memory cap, from a device list given in the environment.

No GPU here: devices are named by ``CUDA_VISIBLE_DEVICES`` (or a stand-in ``nvidia-smi`` on PATH), and
each trial's script reports what it was given.
"""

import itertools
import json
import os
import re
import stat
import subprocess
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweeps import record
from sweeps.config import parse_config
from sweeps.errors import ConfigError
from sweeps.resources import Machine, Resources, Share, cap_text, plan
from sweeps.storage import open_storage
from tests.conftest import SCRIPTS, report_config
from tests.harness import kill_group, run_headless, start_app

FOUR_GPUS = Machine(("0", "1", "2", "3"), "CUDA_VISIBLE_DEVICES=0,1,2,3", (0, 1))


def parse(tmp_path, machine=FOUR_GPUS, **overrides):
    return parse_config(report_config(tmp_path, **overrides), base_dir=tmp_path, machine=machine)


def error(tmp_path, machine=FOUR_GPUS, **overrides) -> str:
    with pytest.raises(ConfigError) as err:
        parse(tmp_path, machine, **overrides)
    message = str(err.value)
    assert "\n" not in message
    return message


# -- the config ----------------------------------------------------------------------------------------


def test_without_resources_trials_see_what_the_app_sees_two_at_a_time(tmp_path):
    config = parse(tmp_path, parallel=None)
    assert config.parallel == 2 and config.shares == [Share(), Share()]
    assert Share().environment() == {} and Share().describe() == {}


@pytest.mark.parametrize(
    ("gpus_per_trial", "parallel", "devices"),
    [
        (1, 4, [("0",), ("1",), ("2",), ("3",)]),
        (2, 2, [("0", "1"), ("2", "3")]),
        (0.5, 8, [("0",), ("0",), ("1",), ("1",), ("2",), ("2",), ("3",), ("3",)]),
        (0.25, 16, [(str(i // 4),) for i in range(16)]),
    ],
)
def test_parallel_defaults_to_what_the_devices_allow_each_slot_its_own(tmp_path, gpus_per_trial, parallel, devices):
    config = parse(tmp_path, parallel=None, resources={"gpus_per_trial": gpus_per_trial})
    assert config.parallel == parallel
    assert [share.gpus for share in config.shares] == devices
    assert config.shares[0].environment()["CUDA_VISIBLE_DEVICES"] == ",".join(devices[0])


def test_cores_are_disjoint_and_bound_parallel_too(tmp_path):
    machine = Machine(("0", "1"), "CUDA_VISIBLE_DEVICES=0,1", tuple(range(8)))
    config = parse(tmp_path, machine, parallel=None, resources={"gpus_per_trial": 0.25, "cpus_per_trial": 3})
    assert config.parallel == 2  # 8 by the devices, 2 by the cores
    assert [share.cpus for share in config.shares] == [(0, 1, 2), (3, 4, 5)]
    assert config.shares[1].describe() == {"gpus": "0", "cpus": "3-5"}
    assert config.shares[1].environment({})["OMP_NUM_THREADS"] == "3"
    assert "OMP_NUM_THREADS" not in config.shares[1].environment({"OMP_NUM_THREADS": "7"}), "the user's own wins"


def test_no_gpus_per_trial_hides_the_devices_and_a_memory_cap_alone_keeps_two_at_a_time(tmp_path):
    config = parse(tmp_path, parallel=None, resources={"memory_per_trial": "512MiB"})
    assert config.parallel == 2
    assert config.shares[0] == Share(gpus=(), cpus=None, memory=512 * 2**20)
    assert config.shares[0].environment() == {"CUDA_VISIBLE_DEVICES": ""}
    assert config.shares[0].describe() == {"gpus": "none"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"parallel": 5, "resources": {"gpus_per_trial": 1}},
            "parallel: 5 trials at once need 5 GPUs (resources.gpus_per_trial: 1); this machine has 4 "
            "(CUDA_VISIBLE_DEVICES=0,1,2,3): at most parallel: 4",
        ),
        (
            {"parallel": 9, "resources": {"gpus_per_trial": 0.5}},
            "parallel: 9 trials at once need 5 GPUs (resources.gpus_per_trial: 0.5); this machine has 4 "
            "(CUDA_VISIBLE_DEVICES=0,1,2,3): at most parallel: 8",
        ),
        (
            {"resources": {"gpus_per_trial": 8}},
            "resources.gpus_per_trial: 8 per trial, but this machine has 4 GPUs (CUDA_VISIBLE_DEVICES=0,1,2,3)",
        ),
        (
            {"parallel": 3, "resources": {"cpus_per_trial": 1}},
            "parallel: 3 trials at once need 3 cores (resources.cpus_per_trial: 1); this process may use 2 "
            "(cores 0-1): at most parallel: 2",
        ),
        (
            {"resources": {"cpus_per_trial": 4}},
            "resources.cpus_per_trial: 4 cores per trial, but this process may use 2 (cores 0-1)",
        ),
        (
            {"resources": {"gpus_per_trial": 0.3}},
            "resources.gpus_per_trial: should be a whole number of GPUs, or 1/k (0.5, 0.25, ...) to share one; got 0.3",
        ),
        (
            {"resources": {"gpus_per_trial": 1.5}},
            "resources.gpus_per_trial: should be a whole number of GPUs, or 1/k (0.5, 0.25, ...) to share one; got 1.5",
        ),
        (
            {"resources": {"memory_per_trial": "lots"}},
            "resources.memory_per_trial: should be a size such as 8GB or 512MiB (got 'lots')",
        ),
        (
            {"resources": {"gpus": 1}},
            "resources.gpus: unknown key; valid keys here: gpus_per_trial, cpus_per_trial, memory_per_trial",
        ),
    ],
)
def test_what_the_machine_cannot_give_is_one_line_naming_the_key(tmp_path, overrides, expected):
    assert error(tmp_path, **overrides) == expected


def test_gpus_asked_for_where_there_are_none(tmp_path):
    machine = Machine((), "no CUDA_VISIBLE_DEVICES, no NVIDIA driver", (0, 1))
    assert error(tmp_path, machine, resources={"gpus_per_trial": 1}) == (
        "resources.gpus_per_trial: 1 per trial, but this machine has no GPU (no CUDA_VISIBLE_DEVICES, no NVIDIA driver)"
    )


def test_at_every_moment_no_device_is_shared_by_more_than_k_running_trials_nor_a_core_by_two():
    """Slots hold their share for the whole sweep, and a slot runs one trial at a time: whatever trials run
    together, they run on distinct slots."""
    machine = Machine(("0", "1", "2"), "CUDA_VISIBLE_DEVICES=0,1,2", tuple(range(12)))
    for gpus_per_trial, cpus_per_trial in itertools.product([0.5, 1 / 3, 1, 3], [None, 1, 2]):
        resources = Resources(gpus_per_trial=gpus_per_trial, cpus_per_trial=cpus_per_trial)
        parallel, shares = plan(resources, None, machine)
        per_device = {}
        for share in shares:
            assert len(share.gpus) == resources.gpus
            for device in share.gpus:
                per_device[device] = per_device.get(device, 0) + 1
        assert max(per_device.values()) <= resources.trials_per_gpu
        if cpus_per_trial:
            cores = [core for share in shares for core in share.cpus]
            assert len(cores) == len(set(cores)) == parallel * cpus_per_trial


# -- finding the devices -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visible", "devices"),
    [
        ("0,1,2", ("0", "1", "2")),
        ("2, 3", ("2", "3")),
        ("GPU-8f6d3c1a-1b2c,1", ("GPU-8f6d3c1a-1b2c", "1")),
        ("", ()),
        ("-1", ()),
        ("NoDevFiles", ()),
        ("0,-1,1", ("0",)),  # CUDA stops at the first invalid id
    ],
)
def test_cuda_visible_devices_names_the_devices_as_cuda_reads_it(visible, devices):
    machine = Machine.detect({"CUDA_VISIBLE_DEVICES": visible})
    assert machine.gpus == devices and machine.found_by == f"CUDA_VISIBLE_DEVICES={visible}"
    assert machine.cpus == tuple(sorted(os.sched_getaffinity(0)))


def test_without_cuda_visible_devices_the_driver_lists_them(tmp_path, monkeypatch):
    fake = tmp_path / "nvidia-smi"
    fake.write_text(
        '#!/bin/sh\n[ "$1" = -L ] || exit 9\n'
        "echo 'GPU 0: NVIDIA A100-SXM4-80GB (UUID: GPU-aaaa)'\necho 'GPU 1: NVIDIA A100-SXM4-80GB (UUID: GPU-bbbb)'\n"
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    machine = Machine.detect({})
    assert machine.gpus == ("0", "1") and machine.found_by == "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")  # a driver that does not answer
    assert Machine.detect({}).gpus == ()


def test_caps_read_as_a_user_wrote_them():
    assert cap_text(8 * 10**9) == "8 GB"
    assert cap_text(150 * 10**6) == "150 MB"


# -- end to end: the headless app, the trials' own view ------------------------------------------------


def probe_config(tmp_path: Path, **overrides) -> dict:
    (tmp_path / "probe").mkdir()
    config = report_config(
        tmp_path,
        program=str(SCRIPTS / "probe.py"),
        method="random",
        seed=1,
        parallel=None,
        parameters={"x": {"values": list(range(8))}, "probe_dir": {"value": str(tmp_path / "probe")}},
        run_cap=8,
    )
    config.update(overrides)
    return config


def probes(tmp_path: Path) -> list[dict]:
    return [json.loads(path.read_text()) for path in (tmp_path / "probe").glob("*.json")]


def most_at_once(seen: list[dict], share_of) -> int:
    """The most trials that ran at one moment with the same ``share_of(probe)``."""
    most = 0
    for probe in seen:
        moment = probe["start"] + 0.01
        together = [p for p in seen if p["start"] <= moment < p["end"] and share_of(p) == share_of(probe)]
        most = max(most, len(together))
    return most


@pytest.mark.slow
def test_trials_sharing_a_device_by_fractions_never_exceed_k_and_say_where_they_ran(tmp_path, write_config):
    config = probe_config(tmp_path, resources={"gpus_per_trial": 0.5})
    done = run_headless(write_config(config), cwd=tmp_path, CUDA_VISIBLE_DEVICES="0,1")
    assert done.returncode == 0, done.stderr
    assert "4 at once" in done.stdout, "parallel: what two devices at 1/2 a trial allow"

    seen = probes(tmp_path)
    assert len(seen) == 8 and {p["gpus"] for p in seen} == {"0", "1"}
    assert most_at_once(seen, lambda p: p["gpus"]) <= 2
    assert most_at_once(seen, lambda p: None) >= 3, "several trials did run at once"
    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    by_x = {p["x"]: p for p in seen}
    for t in trials:
        assert t.user_attrs[record.RESOURCES_ATTR] == {"gpus": by_x[t.params["x"]]["gpus"]}
    csv = (tmp_path / "results" / "trials.csv").read_text().splitlines()
    assert "gpus" in csv[0].split(",")
    assert set(re.findall(r"\| [\d.]+s gpus (\S+) \|", done.stdout)) == {"0", "1"}, "in the progress lines"


@pytest.mark.slow
def test_cores_are_pinned_and_a_trial_over_its_memory_cap_fails_while_the_sweep_finishes(tmp_path, write_config):
    cores = sorted(os.sched_getaffinity(0))
    config = probe_config(
        tmp_path,
        resources={"cpus_per_trial": 1, "memory_per_trial": "200MB"},
        parameters={
            "x": {"values": list(range(5))},
            "probe_dir": {"value": str(tmp_path / "probe")},
            "hog_mb": {"value": 400},  # trial x=0 allocates 400 MB
        },
        run_cap=4,
        max_retries=1,
    )
    done = run_headless(write_config(config), cwd=tmp_path, OMP_NUM_THREADS="")
    assert done.returncode == 0, done.stderr

    trials = optuna.load_study(study_name="test", storage=config["storage"]).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 4
    hogs = [t for t in trials if t.params["x"] == 0]
    assert hogs and all(t.state == TrialState.FAIL for t in hogs), "the seed has the hog run"
    assert all(t.user_attrs[record.REASON_ATTR].startswith("out of memory (cap 200 MB)") for t in hogs)
    assert len(hogs) == 2 and hogs[1].user_attrs[record.RETRY_OF_ATTR] == hogs[0].number, "retried once"

    seen = probes(tmp_path)
    assert all(len(p["cpus"]) == 1 and p["cpus"][0] in cores and p["threads"] == "1" for p in seen)
    assert most_at_once(seen, lambda p: tuple(p["cpus"])) == 1
    assert {p["gpus"] for p in seen} == {""}, "gpus_per_trial 0: no device"


@pytest.mark.slow
def test_each_worker_of_a_shared_sweep_hands_out_its_own_machines_devices(tmp_path, write_config, shared_storage):
    url, name = shared_storage
    config = probe_config(tmp_path, name=name, storage=url, run_cap=12, resources={"gpus_per_trial": 1})
    config["parameters"]["x"] = {"distribution": "uniform", "min": 1, "max": 2}
    path = write_config(config)
    machines = {"a": "0,1", "b": "5,7"}
    workers = {}
    try:
        for worker, visible in machines.items():
            (tmp_path / worker).mkdir()
            log = open(tmp_path / f"{worker}.log", "w")
            workers[worker] = start_app(
                "app_wo_ui.py", path, tmp_path / worker, log, subprocess.STDOUT, CUDA_VISIBLE_DEVICES=visible
            )
        codes = [proc.wait(timeout=150) for proc in workers.values()]
    finally:
        for proc in workers.values():
            kill_group(proc)
    logs = {worker: (tmp_path / f"{worker}.log").read_text() for worker in machines}
    assert codes == [0, 0], logs
    trials = optuna.load_study(study_name=name, storage=open_storage(url)).trials
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 12
    for worker, visible in machines.items():
        ran = [t for t in trials if f" trial {t.number} COMPLETE" in logs[worker]]
        assert ran, f"worker {worker} ran trials"
        assert {t.user_attrs[record.RESOURCES_ATTR]["gpus"] for t in ran} <= set(visible.split(","))
    assert {p["gpus"] for p in probes(tmp_path)} <= {"0", "1", "5", "7"}
    assert most_at_once(probes(tmp_path), lambda p: p["gpus"]) == 1
