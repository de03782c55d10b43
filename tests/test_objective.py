"""ObjectiveWork's run, called in this process: the script runs through TracerPythonScript for real,
in a child of the work's fork server."""

import os
import sys
import threading
import time

import pytest

from tests.conftest import SCRIPTS, make_work


@pytest.fixture
def work(tmp_path):
    return make_work(SCRIPTS / "report.py", tmp_path, timeout=3)


def test_script_receives_parameters_as_dashed_args_and_its_metric_is_read(work, tmp_path):
    work.run(7, {"x": 0.1 + 0.2, "mode": "ok"})
    assert work.result["number"] == 7
    assert work.result["state"] == "COMPLETE", work.result
    assert work.result["value"] == 0.1 + 0.2  # exactly: repr of the float on the way in and out
    log = (tmp_path / "logs" / "7.log").read_text()
    assert log == "epoch=1 loss=1.3\nepoch=2 loss=0.30000000000000004\n"
    assert work.values_of(7) == [(1, 1.3), (2, 0.1 + 0.2)], "a trial that ended sends all its values with its result"
    assert work.result_of(7).value == 0.1 + 0.2


def test_global_variable_and_zero_metric(work):
    work.run(1, {"x": 0.0, "mode": "global"})
    assert (work.result["state"], work.result["value"]) == ("COMPLETE", 0.0)


@pytest.mark.parametrize(
    "mode, reason",
    [
        ("raise", "ValueError: bad x 2.0 (at report.py:"),
        ("exit3", "exit code 3\n"),
        ("os_exit", "exit code 1\n"),
        ("abort", "killed by signal SIGABRT\n"),
        ("segfault", "killed by signal SIGSEGV\n"),
        ("hang", "timeout after 3 s\n"),
        ("nan", "metric is NaN"),
        ("silent", "no metric loss reported"),
    ],
)
def test_every_failure_has_its_reason_and_the_work_goes_on(work, mode, reason):
    argv, path, cwd, environ = sys.argv[:], sys.path[:], os.getcwd(), dict(os.environ)
    started = time.monotonic()
    work.run(2, {"x": 2.0, "mode": mode})
    assert time.monotonic() - started < 6, "the deadline holds"
    assert work.result["state"] == "FAIL"
    assert work.result["reason"].startswith(reason)
    assert (sys.argv, sys.path, os.getcwd(), dict(os.environ)) == (argv, path, cwd, environ), (
        "the work's process is untouched"
    )
    work.run(3, {"x": 1.0, "mode": "ok"})
    assert (work.result["number"], work.result["state"], work.result["value"]) == (3, "COMPLETE", 1.0)


def test_the_traceback_goes_to_the_log(work, tmp_path):
    work.run(4, {"x": 2.0, "mode": "raise"})
    log = (tmp_path / "logs" / "4.log").read_text()
    assert "Traceback (most recent call last)" in log and "ValueError: bad x 2.0" in log


def test_result_of_matches_the_trial_number(work):
    assert work.result_of(0) is None
    work.run(0, {"x": 1.0, "mode": "ok"})
    assert work.result_of(0).value == 1.0
    assert work.result_of(1) is None


def test_stderr_goes_to_the_log_not_the_metric(work, tmp_path):
    work.run(5, {"x": 4.0, "mode": "stderr"})
    assert work.result["value"] == 4.0
    assert "a warning" in (tmp_path / "logs" / "5.log").read_text()


def test_the_scripts_imports_are_loaded_once_in_the_fork_server(tmp_path):
    imports = tmp_path / "imports.txt"
    (tmp_path / "heavy_module.py").write_text(
        f"open({str(imports)!r}, 'a').write(f'imported {{__import__(\"os\").getpid()}}\\n')\n"
    )
    (tmp_path / "train.py").write_text("import heavy_module, os\nprint(f'loss=1 parent={os.getppid()}')\n")
    work = make_work(tmp_path / "train.py", tmp_path)
    for number in range(3):
        work.run(number, {})
        assert work.result["state"] == "COMPLETE"
    (line,) = imports.read_text().splitlines()
    server = int(line.split()[1])
    assert server != os.getpid() and "heavy_module" not in sys.modules, "not in the work's process"
    parents = {(tmp_path / "logs" / f"{n}.log").read_text().split("parent=")[1].strip() for n in range(3)}
    assert parents == {str(server)}, "imported once; every trial is a child of the server that did"
    work._server.close()


def test_a_lost_fork_server_fails_the_trial_with_its_reason_and_the_next_trial_gets_a_new_one(work):
    work.run(1, {"x": 0.0, "mode": "ok"})
    server = work._server._process
    killer = threading.Timer(1.0, server.kill)  # while trial 2 sleeps (run() blocks until it ends)
    killer.start()
    work.run(2, {"x": 1.0, "sleep": 2.5})
    killer.join()
    assert work.result["state"] == "FAIL"
    assert (
        work.result["reason"].startswith("the fork server of ")
        and "ended (killed, or out of memory)" in work.result["reason"]
    )
    work.run(3, {"x": 2.0, "mode": "ok"})
    assert (work.result["state"], work.result["value"]) == ("COMPLETE", 2.0)
    assert work._server._process.pid != server.pid
    work._server.close()


def test_a_fork_server_that_died_between_trials_is_replaced_before_the_next_one(work):
    work.run(1, {"x": 0.0, "mode": "ok"})
    server = work._server._process
    server.kill()
    server.wait()
    work.run(2, {"x": 1.0, "mode": "ok"})
    assert (work.result["state"], work.result["value"]) == ("COMPLETE", 1.0), work.result
    assert work._server._process.pid != server.pid
    work._server.close()


def test_a_cuda_out_of_memory_error_is_the_trials_reason(tmp_path):
    """Raised as torch raises it on a full device (no GPU here: the script raises torch's own error)."""
    pytest.importorskip("torch")
    script = tmp_path / "full_device.py"
    script.write_text(
        "import torch\nraise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a "
        "total capacity of 15.78 GiB of which 1.12 GiB is free.')\n"
    )
    work = make_work(script, tmp_path, timeout=60)
    work.run(3, {})
    result = work.result_of(3)
    assert result.state == "FAIL"
    assert result.reason.startswith("OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.")


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "proxy"])
def test_the_slots_processes_are_forked_from_the_apps_unless_it_holds_grpc_channels(storage, tmp_path, request):
    """A forked slot starts at once; a spawned one runs the app file again (~1 s each at start). Optuna's
    gRPC storage proxy (as Ray's driver with --cloud) holds channels that a fork would break."""
    import uuid

    from tests.conftest import report_config
    from tests.harness import kill_group, running_trials, start_worker, write_config

    sleepy = {"x": {"min": 0, "max": 1}, "sleep": {"value": 5}}
    config = report_config(tmp_path, method="random", run_cap=4, parameters=sleepy)
    if storage == "proxy":
        config.update(name=f"fork-{uuid.uuid4().hex[:8]}", storage=request.getfixturevalue("storage_proxy"))
    app = start_worker(write_config(config, tmp_path / "sweep.yaml"), tmp_path, tmp_path / "app.log")
    try:
        processes = running_trials(app, slots=2)
    finally:
        kill_group(app)
    app_command, *others = [command for command, _ in processes]
    forked = sum(command == app_command for command in others)  # the works, and Lightning's API server
    spawned = sum("spawn_main" in command for command in others)
    assert (forked, spawned) == ((3, 0) if storage == "sqlite" else (1, 2)), processes
