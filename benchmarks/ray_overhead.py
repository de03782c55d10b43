"""What a trial costs on a Ray cluster (``--cloud``) against the local fork server, through one slot.

    python benchmarks/ray_overhead.py [--trials 200]

The least favourable case for the cluster: a trial script that imports nothing and prints its
metric at once, so that the trial is all overhead. One slot runs ``--trials`` trials one after
another, as a work does (``Launch.script_run`` and ``sweeps.supervise.run_trial`` locally; the
slot's ``RemoteSlot`` on a Ray cluster of one node on this machine, started for the benchmark).
Printed for each: the first trial (the fork server's start; on Ray also placing the slot's host),
then the median and p95 of the others, and the ratio of the medians. The argparse script of
``benchmarks/overhead.py`` is measured the same way.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sweeps.cluster import RemoteSlot  # noqa: E402
from sweeps.command import Launch, TrialRequest  # noqa: E402
from sweeps.forkserver import ForkServer  # noqa: E402
from sweeps.supervise import run_trial  # noqa: E402
from tests.ray_cluster import LocalRayCluster  # noqa: E402

#: sys is loaded before any script: importing it costs nothing.
NO_IMPORTS = "import sys\n\nprint(f\"loss={sys.argv[1].partition('=')[2]}\")\n"


def local_trials(launch: Launch, trials: int) -> list[float]:
    server = ForkServer(launch.program)
    times = []
    for number in range(trials):
        started = time.perf_counter()
        request = TrialRequest(number, {"x": number / trials}, number)
        end = run_trial(server, launch.script_run(request, False), _ignore, _ignore)
        launch.trial_ended(request)
        assert end.exit_code == 0, end
        times.append(time.perf_counter() - started)
    server.close()
    return times


def ray_trials(launch: Launch, address: str, trials: int) -> list[float]:
    slot = RemoteSlot(address, None, launch, None)
    times = []
    for number in range(trials):
        started = time.perf_counter()
        request = TrialRequest(number, {"x": number / trials}, number)
        end = slot.run_trial(request, False, _ignore, _ignore, None, lambda: False, lambda: 0.0, None)
        assert end.exit_code == 0, end
        times.append(time.perf_counter() - started)
    return times


def _ignore(text: str) -> None:
    pass


def summary(name: str, times: list[float]) -> float:
    rest = sorted(times[1:])
    median = statistics.median(rest)
    p95 = rest[int(0.95 * (len(rest) - 1))]
    then = f"median {median * 1000:6.1f} ms, p95 {p95 * 1000:6.1f} ms"
    print(f"  {name:<17} first {times[0] * 1000:6.0f} ms, then {then}")
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    import ray

    workdir = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    (workdir / "no_imports.py").write_text(NO_IMPORTS)
    scripts = {"no imports": workdir / "no_imports.py", "argparse": Path(__file__).parent / "noop.py"}
    nodes = LocalRayCluster({"node_a": 2})
    try:
        for label, program in scripts.items():
            launch = Launch(str(program), None, str(workdir / "results"))
            print(f"{label} ({program.name}), {args.trials} trials through one slot:")
            local = summary("local fork server", local_trials(launch, args.trials))
            remote = summary("Ray (one node)", ray_trials(launch, nodes.address, args.trials))
            print(f"  ratio Ray / local: {remote / local:.1f}x per trial ({(remote - local) * 1000:+.1f} ms)")
            ray.shutdown()
    finally:
        nodes.stop()


if __name__ == "__main__":
    main()
