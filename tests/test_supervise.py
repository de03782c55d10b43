"""The supervised child: pruning kills it at once, or after a grace period in which it may end by itself."""

import signal
import time

import pytest

from sweeps.child import ScriptRun
from sweeps.forkserver import ForkServer
from sweeps.supervise import run_trial

#: Runs until its flag file exists, then takes 0.3 s to wind down and exits 0, leaving ``loss = 1.0``.
WINDS_DOWN = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.01)
time.sleep(0.3)
print("wound down", flush=True)
loss = 1.0
"""


@pytest.fixture(scope="module")
def server():
    server = ForkServer("")
    yield server
    server.close()


def run_and_prune(server, tmp_path, grace: float, timeout: float = 30):
    flag = str(tmp_path / "stop")
    script = tmp_path / "winds_down.py"
    script.write_text(WINDS_DOWN)
    out: list[str] = []
    asked: list[float] = []

    def should_prune() -> bool:
        if not asked:
            asked.append(time.monotonic())
            open(flag, "w").close()
        return True

    end = run_trial(
        server, ScriptRun(str(script), [flag]), out.append, out.append, timeout, should_prune, lambda: grace
    )
    return end, "".join(out), time.monotonic() - asked[0]


def test_without_a_grace_period_a_pruned_child_is_killed_at_once(server, tmp_path):
    end, out, took = run_and_prune(server, tmp_path, grace=0.0)
    assert end.pruned and end.signal == signal.SIGKILL and "wound down" not in out
    assert took < 0.25


def test_within_its_grace_period_a_pruned_child_ends_by_itself(server, tmp_path):
    end, out, took = run_and_prune(server, tmp_path, grace=5.0)
    assert end.pruned and (end.exit_code, end.signal) == (0, None) and "wound down" in out
    assert end.script_globals == {"loss": 1.0}
    assert 0.3 <= took < 2.0, "it is not made to wait out the grace period"


def test_a_child_that_does_not_end_within_its_grace_period_is_killed(server, tmp_path):
    end, out, took = run_and_prune(server, tmp_path, grace=0.1)
    assert end.pruned and end.signal == signal.SIGKILL and "wound down" not in out
    assert 0.1 <= took < 0.3


def test_the_deadline_cuts_a_grace_period_short_and_the_trial_stays_pruned(server, tmp_path):
    end, out, took = run_and_prune(server, tmp_path, grace=5.0, timeout=0.2)
    assert end.pruned and not end.timed_out and end.signal == signal.SIGKILL
    assert took < 0.3


#: Holds ``argv[1]`` MB (written, so resident) for up to 20 s; with ``child``, in a process it starts.
HOLDS_MEMORY = """
import subprocess, sys, time
megabytes = int(sys.argv[1])
if sys.argv[2:] == ["child"]:
    subprocess.run([sys.executable, __file__, sys.argv[1]])
else:
    ballast = b"x" * (megabytes * 2**20)
    print("holding", megabytes, flush=True)
    time.sleep(20)
"""


@pytest.mark.parametrize(("megabytes", "where"), [(300, "self"), (300, "child"), (10, "self")])
def test_a_trial_over_its_memory_cap_is_killed_and_one_under_it_is_not(server, tmp_path, megabytes, where):
    script = tmp_path / "holds.py"
    script.write_text(HOLDS_MEMORY.replace("time.sleep(20)", "time.sleep(20 if megabytes > 100 else 0.3)"))
    args = [str(megabytes)] + (["child"] if where == "child" else [])
    cap = 150 * 10**6
    started = time.monotonic()
    end = run_trial(server, ScriptRun(str(script), args), lambda text: None, lambda text: None, memory_cap=cap)
    if megabytes > 100:  # its processes' memory, counted together, is over the cap
        assert end.memory_cap == cap and end.signal == signal.SIGKILL
        assert time.monotonic() - started < 10, "killed once measured, not at the end of its sleep"
    else:
        assert end.memory_cap is None and end.exit_code == 0
