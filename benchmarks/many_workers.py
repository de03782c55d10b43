"""Many workers on one sweep, through the gRPC storage proxy: database connections, asks, exact run_cap.

    python benchmarks/many_workers.py [--workers 200] [--trials 6000] [--duration 10] [--heartbeat 60]
                                      [--connections 10] [--processes 20] [--direct] [--together]
                                      [--url postgresql://sweeps:sweeps@localhost/sweeps]

``--workers`` simulated workers (``tests/simulation.py``: Sweeps' own ask, tell, budget and
heartbeats, trials that sleep ``--duration`` s, no Lightning) share one sweep of ``--trials``
trials through ``sweeps-proxy`` holding at most ``--connections`` database connections
(``--direct``: each worker on PostgreSQL itself, as ``storage: postgresql://`` does). Printed: trials
per second, the time an ask takes (p50, p95: from asking to the trial's parameters stored), the
most client connections the database had at once, the trials finished (must be exactly
``--trials``) and those given back (asked for at the same moment as the last places were taken).

Goal (issue #24): 200 workers, at most 20 connections, exactly run_cap, ask p95 under 100 ms.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import tempfile
import uuid
from pathlib import Path

from _harness import PROJECT  # noqa: F401  (puts the project on sys.path)

from sweeps.storage import redacted
from tests.simulation import simulate, start_proxy, sweep_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=200)
    parser.add_argument("--trials", type=int, default=6000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds each trial sleeps")
    parser.add_argument("--connections", type=int, default=10, help="the proxy's database connections")
    parser.add_argument("--processes", type=int, default=20, help="processes the workers are spread over")
    parser.add_argument("--direct", action="store_true", help="workers on PostgreSQL itself, no proxy")
    parser.add_argument("--heartbeat", type=int, default=60, help="the config's heartbeat_interval (s)")
    parser.add_argument("--together", action="store_true", help="every worker starts at once (default: spread)")
    parser.add_argument(
        "--url", default=os.environ.get("SWEEPS_TEST_POSTGRES", "postgresql://sweeps:sweeps@localhost/sweeps")
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `timeout`: the proxy and workers end too
    proxy, storage = (None, args.url) if args.direct else start_proxy(args.url, args.connections)
    mode = "direct" if args.direct else f"proxy, {args.connections} connections"
    print(
        f"{datetime.date.today()}: {args.workers} workers ({args.processes} processes), {args.trials} trials of "
        f"{args.duration} s, heartbeat_interval {args.heartbeat} s, {redacted(args.url)} ({mode}), "
        f"{'started together' if args.together else 'starts spread over a trial'}, {os.cpu_count()} cores"
    )
    try:
        with tempfile.TemporaryDirectory() as tmp:
            name = f"bench-many-{uuid.uuid4().hex[:6]}"
            config = sweep_config(name, storage, args.trials, Path(tmp), heartbeat_interval=args.heartbeat)
            report = simulate(
                config, args.url, args.workers, args.processes, args.duration, Path(tmp), stagger=not args.together
            )
    finally:
        if proxy is not None:
            proxy.kill()
    # The last trials: workers read the study before asking, and wait for room reading it again.
    last = min(args.trials, 2 * args.workers)
    end, before_end = range(args.trials - last, 10**9), range(0, args.trials - last)
    print(
        f"trials/s {report.trials_per_second:.1f} (ideal {args.workers / args.duration:.1f}) | "
        f"ask p50 {report.ask_percentile(50):.1f} ms, p95 {report.ask_percentile(95):.1f} ms "
        f"(before the last {last} trials: p50 {report.ask_percentile(50, before_end):.1f}, "
        f"p95 {report.ask_percentile(95, before_end):.1f}; the last: p50 {report.ask_percentile(50, end):.1f}, "
        f"p95 {report.ask_percentile(95, end):.1f}) | "
        f"peak database connections {report.peak_connections} | "
        f"complete {report.complete}/{args.trials}, given back {report.given_back}, "
        f"told twice {len(report.told) - len(set(report.told))} | wall {report.wall:.1f} s"
    )
    if report.complete != args.trials or len(report.told) != len(set(report.told)):
        raise SystemExit("run_cap not exact")


if __name__ == "__main__":
    main()
