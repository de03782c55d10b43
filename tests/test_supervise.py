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
