"""``--cloud``: trials on a Ray cluster of several nodes on this machine (``tests.ray_cluster``)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.trial import TrialState

from sweeps import cluster, record
from sweeps.cluster import Cluster, ClusterUnavailable, RemoteSlot
from sweeps.command import Launch, TrialRequest
from sweeps.resources import Resources
from sweeps.storage import open_storage
from tests.conftest import SCRIPTS, artifacts, report_config
from tests.harness import kill_group, press_run_once_live, start_app, start_ui_app
from tests.ray_cluster import LocalRayCluster, free_port

ON_CLUSTER = SCRIPTS / "on_cluster.py"


def test_the_cluster_is_the_configs_else_ray_address():
    assert cluster.address(Cluster(ray="ray://head:10001"), {"RAY_ADDRESS": "elsewhere:6379"}) == "ray://head:10001"
    assert cluster.address(None, {"RAY_ADDRESS": "head:6379"}) == "head:6379"
    assert cluster.address(None, {}) is None


def test_ray_ships_sweeps_and_the_programs_directory_without_the_sweeps_results(tmp_path):
    launch = Launch(str(tmp_path / "train.py"), None, str(tmp_path / "results" / "digits"))
    env = cluster.runtime_env(launch, shared=False)
    assert env["working_dir"] == str(tmp_path)
    assert "/results/digits" in env["excludes"]
    assert Path(env["py_modules"][0], "cluster.py").is_file()
    assert cluster.runtime_env(launch, shared=True) == {"py_modules": env["py_modules"]}, "nothing else to ship"


def test_without_ray_installed_one_line_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ClusterUnavailable, match=r"^Ray is not installed: pip install -r requirements-ray.txt$"):
        cluster.connect("auto", {})


def test_a_cluster_that_does_not_answer_is_one_line():
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ClusterUnavailable) as raised:
        cluster.check(address, {}, None, 2)
    assert str(raised.value).startswith(f"cannot reach the Ray cluster at {address}: ")
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("without_ray", [True, False])
def test_cloud_without_ray_or_a_cluster_that_answers_is_one_line_and_exit_2(tmp_path, write_config, without_ray):
    from tests.harness import app_env, lightning_command

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = app_env(write_config(cluster_config(tmp_path, address)))
    if without_ray:  # as where requirements-ray.txt was not installed
        (tmp_path / "no_ray").mkdir()
        (tmp_path / "no_ray" / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
        env["PYTHONPATH"] = str(tmp_path / "no_ray")
    command = lightning_command("app_wo_ui.py", "--cloud")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    if without_ray:
        assert done.stderr.splitlines() == [
            "sweeps: --cloud: Ray is not installed: pip install -r requirements-ray.txt"
        ]
    else:
        (line,) = done.stderr.splitlines()
        assert line.startswith(f"sweeps: --cloud: cannot reach the Ray cluster at {address}: nothing answers at ")
    assert not (tmp_path / "sweep.db").exists(), "nothing started"


@pytest.fixture(scope="module")
def two_nodes():
    """A head that runs no trial and two nodes of 2 CPUs each; node_b declares a GPU (there is none)."""
    nodes = LocalRayCluster({"head": 0, "node_a": 2, "node_b": 2}, gpus={"node_b": 1})
    yield nodes
    nodes.stop()


@pytest.mark.slow
def test_more_trials_at_once_than_the_cluster_has_room_for_is_one_line(two_nodes):
    with pytest.raises(ClusterUnavailable) as raised:
        cluster.check(two_nodes.address, {}, Resources(cpus_per_trial=2), 3)
    assert str(raised.value) == (
        f"parallel: 3 trials at once, each with CPU 2 (resources: in the config), but the 3 nodes of the Ray "
        f"cluster at {two_nodes.address} have room for 2: at most parallel: 2"
    )


@pytest.fixture
def remote_slot(two_nodes, tmp_path):
    import ray

    slot = RemoteSlot(two_nodes.address, None, Launch(str(ON_CLUSTER), None, str(tmp_path / "results")), None)
    yield slot
    ray.shutdown()


@pytest.mark.slow
def test_a_trials_gpu_cores_and_memory_cap_on_the_node_ray_gave_it(two_nodes, tmp_path):
    import json

    import ray

    resources = Resources(gpus_per_trial=1, cpus_per_trial=1, memory_per_trial="300MB")
    launch = Launch(str(SCRIPTS / "probe.py"), None, str(tmp_path / "results"))
    slot = RemoteSlot(two_nodes.address, None, launch, resources)
    try:
        params = {"x": 1.0, "probe_dir": str(tmp_path), "hold": 0.0}
        end = run_remote(slot, 0, params, memory_cap=resources.memory_per_trial)[0]
        assert end.exit_code == 0, end
        (seen,) = [json.loads(path.read_text()) for path in tmp_path.glob("*.json")]
        assert seen["gpus"] == "0" and seen["threads"] == "1", "what Ray gave the host, the trial sees"
        assert end.used["gpus"] == "0"
        assert two_nodes.nodes()["node_b"].startswith(end.used["node"].rpartition("/")[2]), "the node with a GPU"

        hog = run_remote(slot, 1, {**params, "x": 0.0, "hog_mb": 600, "hold": 5.0}, memory_cap=300 * 10**6)[0]
        assert hog.memory_cap == 300 * 10**6, "killed over its cap, on the node"
    finally:
        ray.shutdown()


def run_remote(
    slot: RemoteSlot, number: int, params: dict, prune_after: int | None = None, timeout=None, memory_cap=None
):
    """A trial through ``slot``: (how it ended, each output chunk with when it came, when pruned, when it ended)."""
    chunks: list[tuple[float, str]] = []
    pruned_at = []

    def should_prune() -> bool:
        if prune_after is not None and sum(t.count("epoch=") for _, t in chunks) >= prune_after:
            pruned_at.append(time.monotonic())
            return True
        return False

    def keep(text: str) -> None:
        chunks.append((time.monotonic(), text))

    request = TrialRequest(number, params, number)
    end = slot.run_trial(request, False, keep, keep, timeout, should_prune, lambda: 0.0, memory_cap)
    return end, chunks, pruned_at[:1], time.monotonic()


@pytest.mark.slow
def test_a_remote_trials_output_comes_as_it_is_printed_and_it_runs_on_a_node(remote_slot, two_nodes):
    end, chunks, _, ended = run_remote(remote_slot, 0, {"x": 2.0, "epochs": 8, "sleep": 0.3})
    assert end.exit_code == 0 and end.error is None
    text = "".join(t for _, t in chunks)
    assert "epoch=1 loss=3.0" in text and text.rstrip().endswith("loss=2.0")
    first = next(at for at, t in chunks if "epoch=1 " in t)
    assert ended - first > 1.5, "the first epoch arrived while the trial ran (eight epochs of 0.3 s)"
    node_ids = set(two_nodes.nodes().values())
    assert re.fullmatch(r"[\d.]+/[0-9a-f]{8}", end.used["node"])
    assert any(node_id.startswith(end.used["node"].rpartition("/")[2]) for node_id in node_ids)


@pytest.mark.slow
def test_a_prune_reaches_a_remote_trial_within_a_second_and_a_timeout_kills_it(remote_slot):
    end, chunks, pruned_at, ended = run_remote(remote_slot, 1, {"x": 1.0, "epochs": 600, "sleep": 0.1}, prune_after=3)
    assert end.pruned and pruned_at
    assert ended - pruned_at[0] < 1.0, f"pruned {ended - pruned_at[0]:.2f} s after the pruner said so"

    started = time.monotonic()
    end, chunks, _, ended = run_remote(remote_slot, 2, {"x": 0.0, "mode": "by_x"}, timeout=2.0)
    assert end.timed_out and "hanging" in "".join(t for _, t in chunks)
    assert ended - started < 6


@pytest.mark.slow
def test_a_host_killed_alone_is_work_lost_and_the_next_trial_gets_a_new_one(remote_slot, tmp_path):
    pid_file = tmp_path / "trial.pid"
    killed = []

    def kill_host_once() -> bool:  # called on every pass of the work's loop
        if pid_file.exists() and not killed:
            fork_server = psutil.Process(int(pid_file.read_text())).parent()
            host = fork_server.parent()
            host.kill()
            killed.append(host.pid)
        return False

    request = TrialRequest(0, {"x": 1.0, "mode": "by_x", "pid_file": str(pid_file)}, 0)
    end = remote_slot.run_trial(request, False, print, print, None, kill_host_once, lambda: 0.0, None)
    assert killed and end.error == record.WORK_LOST, end
    assert run_remote(remote_slot, 1, {"x": 2.0})[0].exit_code == 0, "a new host for the slot"


@pytest.mark.slow
def test_a_host_that_cannot_write_the_trials_directory_fails_the_trial_in_one_line(two_nodes):
    import ray

    launch = Launch(str(ON_CLUSTER), None, "/proc/sweeps-results")  # shared: the same path on the node
    slot = RemoteSlot(two_nodes.address, Cluster(ray=two_nodes.address, shared=True), launch, None)
    try:
        end = run_remote(slot, 0, {"x": 1.0})[0]
    finally:
        ray.shutdown()
    assert end.error is not None and end.error.startswith("trial host: ") and "\n" not in end.error, end.error
    assert "/proc/sweeps-results" in end.error


def cluster_config(tmp_path: Path, address: str, **overrides) -> dict:
    """A grid sweep of tests/scripts/on_cluster.py on the cluster at ``address``, 2 trials at once."""
    config = report_config(
        tmp_path,
        program=str(ON_CLUSTER),
        parameters={"x": {"values": [0.0, 2.0, 3.0, 4.0, 5.0, 6.0]}, "mode": {"value": "by_x"}},
        cluster={"ray": address},
    )
    config.update(overrides)
    return config


def trial_processes(cluster: LocalRayCluster) -> list[psutil.Process]:
    """Trials' fork servers that ``cluster``'s nodes started (the other test process runs apps of its own)."""
    raylets = {str(pid) for pid in cluster.raylet_pids()}
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            forkserver = "sweeps.forkserver" in " ".join(p.info["cmdline"] or [])
            if forkserver and p.environ().get("RAY_RAYLET_PID") in raylets:
                found.append(p)
        except psutil.Error:  # ended meanwhile
            continue
    return found


@pytest.mark.slow
@pytest.mark.browser
def test_a_sweep_on_two_nodes_live_on_the_page_exact_run_cap_and_a_timeout(tmp_path, write_config, browser, two_nodes):
    out = artifacts("cluster")
    # x = 0 hangs until its timeout; the five others finish: run_cap 5 is reached once all six have run.
    # The grid visits its points in a random order, and x = 0 visited sixth would never start: seed 1 visits it fourth.
    config = cluster_config(
        tmp_path,
        two_nodes.address,
        run_cap=5,
        seed=1,
        trial_timeout=4,
        parameters={
            "x": {"values": [0.0, 2.0, 3.0, 4.0, 5.0, 6.0]},
            "mode": {"value": "by_x"},
            "epochs": {"value": 10},
            "sleep": {"value": 0.3},
        },
    )
    proc, url = start_ui_app(write_config(config), cwd=tmp_path, log_path=out / "app.log", args=("--cloud",))
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.goto(url)
        sweep_page = press_run_once_live(page, 5)
        hiplot = sweep_page.frame_locator("iframe[title*='hiplot']")
        sweep_page.get_by_text(re.compile(r"[1-4] of 5 trials finished · running")).wait_for(timeout=90_000)
        page.screenshot(path=out / "running.png", full_page=True)
        deadline = time.monotonic() + 20
        while not trial_processes(two_nodes) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert trial_processes(two_nodes), "trials run on the cluster's nodes (and are told from other tests' by it)"
        sweep_page.get_by_text("5 of 5 trials finished · finished").wait_for(timeout=90_000)
        hiplot.get_by_text(re.compile(r"6\s*/\s*6")).wait_for(timeout=30_000)  # every trial a line, the FAIL too
        page.screenshot(path=out / "finished.png", full_page=True)
    finally:
        kill_group(proc)
    assert "sweeps: trials run on the Ray cluster at " in (out / "app.log").read_text()

    study = optuna.load_study(study_name="test", storage=open_storage(config["storage"]))
    trials = study.get_trials(deepcopy=False)
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE"] * 5 + ["FAIL"], "exactly run_cap finished"
    timed_out = next(t for t in trials if t.state == TrialState.FAIL)
    assert timed_out.params["x"] == 0.0
    assert timed_out.user_attrs[record.REASON_ATTR].startswith("timeout after 4 s\n--- last output ---\nhanging")
    nodes = {t.user_attrs[record.RESOURCES_ATTR]["node"] for t in trials}
    assert len(nodes) == 2, f"trials on both nodes: {nodes}"
    for t in trials:  # each log here, as the trial printed it there
        log = (tmp_path / "results" / "logs" / f"{t.number}.log").read_text()
        assert "hanging" in log if t.params["x"] == 0 else f"loss={t.params['x']}\n" in log
    deadline = time.monotonic() + 10
    while trial_processes(two_nodes) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not trial_processes(two_nodes), "the app gone, nothing of it runs on the cluster"


@pytest.mark.slow
def test_a_node_lost_mid_trial_fails_it_node_lost_and_its_retry_resumes_on_the_other(tmp_path, write_config):
    nodes = LocalRayCluster({"head": 0, "node_a": 2, "node_b": 2})
    pid_file = tmp_path / "trial.pid"
    # x = 1 writes a checkpoint in its trial directory (on storage both nodes share) and waits.
    config = cluster_config(
        tmp_path,
        nodes.address,
        max_retries=1,
        parameters={
            "x": {"values": [1.0, 2.0, 3.0, 4.0]},
            "mode": {"value": "by_x"},
            "pid_file": {"value": str(pid_file)},
        },
        cluster={"ray": nodes.address, "shared": True},
    )
    try:
        app = start_app(
            "app_wo_ui.py",
            write_config(config),
            tmp_path,
            open(tmp_path / "app.log", "w"),
            subprocess.STDOUT,
            ("--cloud",),
        )
        deadline = time.monotonic() + 90
        while not pid_file.exists() and time.monotonic() < deadline and app.poll() is None:
            time.sleep(0.2)
        assert pid_file.exists(), (tmp_path / "app.log").read_text()
        trial = psutil.Process(int(pid_file.read_text()))
        raylet = next(p for p in trial.parents() if any(a.startswith("--node_id=") for a in p.cmdline()))
        lost = next(a for a in raylet.cmdline() if a.startswith("--node_id=")).removeprefix("--node_id=")
        nodes.kill_node(lost)
        app.wait(timeout=120)
    finally:
        kill_group(app)
        nodes.stop()
    log = (tmp_path / "app.log").read_text()
    assert app.returncode == 0, log

    study = optuna.load_study(study_name="test", storage=open_storage(config["storage"]))
    trials = study.get_trials(deepcopy=False)
    first = next(t for t in trials if t.params["x"] == 1.0 and t.state == TrialState.FAIL)
    assert first.user_attrs[record.REASON_ATTR].startswith(record.NODE_LOST)
    assert first.user_attrs[record.RESOURCES_ATTR]["node"].endswith(lost[:8])
    retry = next(t for t in trials if t.user_attrs.get(record.RETRY_OF_ATTR) == first.number)
    assert retry.state == TrialState.COMPLETE and retry.user_attrs[record.RESUME_ATTR]
    assert not retry.user_attrs[record.RESOURCES_ATTR]["node"].endswith(lost[:8]), "on the node still up"
    retry_log = (tmp_path / "results" / "logs" / f"{retry.number}.log").read_text()
    assert retry_log.startswith("resumed from epoch 3"), "from the checkpoint its first run wrote"
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 4 + ["FAIL"]
