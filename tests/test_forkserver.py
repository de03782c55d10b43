"""sweeps.forkserver: the warm process that forks each trial's child, driven directly."""

import json
import os
import socket
import sys
import time

import psutil
import pytest

from sweeps.child import ScriptRun, die_with_parent
from sweeps.forkserver import ForkServer, _message, _read_message, import_dependencies


@pytest.fixture
def server():
    server = ForkServer("")
    yield server
    server.close()


def spawn(server, tmp_path, source: str, *args: str):
    script = tmp_path / "script.py"
    script.write_text(source)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    pid = server.spawn(ScriptRun(str(script), list(args)), out_w, err_w, res_w)
    for fd in (out_w, err_w, res_w):
        os.close(fd)
    return pid, out_r, err_r, res_r


def read_all(fd: int) -> str:
    with open(fd) as channel:
        return channel.read()


def test_a_child_runs_the_script_with_its_arguments_and_reports_its_status_and_globals(server, tmp_path):
    pid, out, err, res = spawn(server, tmp_path, "import sys\nprint('args', sys.argv[1:])\nloss = 0.5\n", "--x=1")
    status = server.wait()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert read_all(out) == "args ['--x=1']\n" and read_all(err) == ""
    assert json.loads(read_all(res)) == {"globals": {"loss": 0.5}}
    assert pid != os.getpid() and psutil.Process(server._process.pid).pid != os.getpid()


def test_a_child_starts_without_the_apps_config_libraries_loaded(server, tmp_path):
    """The child is a fork of the server: what the server imported, every trial starts with (and every
    slot's first trial waits for). The server imports neither pydantic nor PyYAML (~0.2 s)."""
    _, out, _, _ = spawn(server, tmp_path, "import sys\nprint(sorted({'pydantic', 'yaml'} & set(sys.modules)))\n")
    server.wait()
    assert read_all(out) == "[]\n"


def test_exit_codes_exceptions_and_signals_reach_the_work(server, tmp_path):
    spawn(server, tmp_path, "import sys\nsys.exit(3)\n")
    assert os.WEXITSTATUS(server.wait()) == 3
    _, _, err, res = spawn(server, tmp_path, "raise ValueError('bad')\n")
    assert os.WEXITSTATUS(server.wait()) == 1
    assert json.loads(read_all(res))["error"].startswith("ValueError: bad (at script.py:1)")
    assert "Traceback" in read_all(err)
    spawn(server, tmp_path, "import os\nos.abort()\n")
    status = server.wait()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == 6


def test_the_child_is_in_a_process_group_of_its_own_and_dies_with_the_server(server, tmp_path):
    pid, *_ = spawn(server, tmp_path, "import time\ntime.sleep(60)\n")
    deadline = time.monotonic() + 5
    while os.getpgid(pid) != pid and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.getpgid(pid) == pid, "so that the work kills all it started at once"
    server._process.kill()  # the OOM killer, say
    server._process.wait()
    assert dead_within(pid, 5), "the script does not outlive its fork server"


def test_a_child_whose_parent_died_before_it_asked_to_die_with_it_dies_at_once(tmp_path):
    """The window between a fork and the prctl: a parent killed there sends no signal, ever."""
    survived = tmp_path / "survived"
    read_end, write_end = os.pipe()
    first = os.fork()
    if first == 0:  # the parent-to-be, gone at once
        parent = os.getpid()
        second = os.fork()
        if second == 0:
            time.sleep(0.3)  # its parent has exited by now
            die_with_parent(parent)
            survived.write_text("still running")
            os._exit(0)
        os.write(write_end, str(second).encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(first, 0)
    orphan = int(read_all(read_end))
    assert dead_within(orphan, 5)
    assert not survived.exists()


def dead_within(pid: int, seconds: float) -> bool:
    """Gone, or a zombie (killed; whether it is reaped is up to the machine's init)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.02)
    return False


def test_poll_says_nothing_until_the_child_has_ended(server, tmp_path):
    spawn(server, tmp_path, "import time\ntime.sleep(0.3)\n")
    assert server.poll() is None
    deadline = time.monotonic() + 10
    while (status := server.poll()) is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert status is not None and os.WEXITSTATUS(status) == 0


def test_messages_are_read_whole_however_the_bytes_arrive():
    ours, theirs = socket.socketpair()
    first, second = _message({"pid": 12}), _message({"status": 256})
    theirs.sendall(first + second[:5])
    message, pending, fds = _read_message(ours, b"")
    assert (message, pending, fds) == ({"pid": 12}, second[:5], [])
    theirs.sendall(second[5:])
    message, pending, _ = _read_message(ours, pending)
    assert (message, pending) == ({"status": 256}, b"")
    theirs.close()
    assert _read_message(ours, b"")[0] is None, "the other end closed"
    ours.close()


def test_import_dependencies_loads_what_the_script_imports_and_skips_what_fails(tmp_path, monkeypatch):
    (tmp_path / "helper_mod_for_test.py").write_text("LOADED = True\n")
    script = tmp_path / "train.py"
    script.write_text("import helper_mod_for_test\nimport no_such_module_here\nfrom . import nothing\n")
    monkeypatch.delitem(sys.modules, "helper_mod_for_test", raising=False)
    import_dependencies(str(script))
    assert sys.modules["helper_mod_for_test"].LOADED
    assert "no_such_module_here" not in sys.modules
    assert str(tmp_path) not in sys.path, "the script's directory is not left on the path"


def test_the_slots_share_is_the_servers_before_it_imports_the_script_and_its_childrens(tmp_path, monkeypatch):
    """A library counts devices and sizes thread pools when imported, in the server: it must see the share."""
    from sweeps.resources import Share

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    (tmp_path / "counts_devices.py").write_text(
        "import json, os\n"
        "SEEN = [os.environ.get('CUDA_VISIBLE_DEVICES'), sorted(os.sched_getaffinity(0)),\n"
        "        os.environ.get('OMP_NUM_THREADS'), os.getpid()]\n"
        "json.dump(SEEN, open(os.path.join(os.path.dirname(__file__), 'at_import.json'), 'w'))\n"
    )
    program = tmp_path / "train.py"
    program.write_text(
        "import json, os\nimport counts_devices\n"
        "print(json.dumps([os.environ.get('CUDA_VISIBLE_DEVICES'), sorted(os.sched_getaffinity(0)), "
        "os.environ.get('OMP_NUM_THREADS')]))\n"
    )
    core = min(os.sched_getaffinity(0))
    server = ForkServer(str(program), Share(gpus=("1",), cpus=(core,)))
    try:
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        server.spawn(ScriptRun(str(program)), out_w, err_w, res_w)
        for fd in (out_w, err_w, res_w):
            os.close(fd)
        assert os.WEXITSTATUS(server.wait()) == 0, read_all(err_r)
        *at_import, importer = json.loads((tmp_path / "at_import.json").read_text())
        assert importer == server._process.pid, "imported once, by the server"
        assert at_import == ["1", [core], "1"]
        assert json.loads(read_all(out_r)) == ["1", [core], "1"], "and every trial's child inherits it"
        read_all(res_r)
    finally:
        server.close()
