"""The sweep's page on 10,000 finished trials: how long until the plot is drawn, and what it costs.

    python benchmarks/ui_scale.py [--trials 10000] [--idle 10] [--reloads 3]

Writes a storage of finished trials with Optuna directly, in the shape Sweeps writes them (the
bundled example's search space, its sampler's distributions; 3 % FAIL with a reason, 5 % PRUNED),
opens the UI app on it (``autostart: false``: the page shows the stored sweep, nothing runs) in
headless Chromium, and prints:

- the time from opening /view until HiPlot shows "Selected: N/N" and until its canvas stops
  changing (every line drawn), and the CPU the page's server spent meanwhile: on a first visit
  as soon as the page answers (the page's server is still importing its modules and reading
  every trial, see ``PageFrontend`` in ``components/hiplot_flow.py``) and on reloads (a new
  session on the warmed-up server, as for anyone who opens the page a few seconds after the app
  started). ``--trials 100`` gives what the page costs whatever the sweep's size (Lightning's
  page, Streamlit, HiPlot);
- the JS heap of each of the page's frames (``performance.memory.usedJSHeapSize``: /view,
  Streamlit's page, HiPlot's component) and the RSS of Chromium's renderer processes;
- the bytes the page's server sent, and the CPU it used, while the page sat idle for ``--idle``
  seconds (it polls the app every second: nothing heavy should be resent or recomputed when
  nothing changed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import psutil
import yaml
from optuna.trial import TrialState, create_trial

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from sweeps.config import load_config  # noqa: E402
from sweeps.record import REASON_ATTR  # noqa: E402
from sweeps.sweep import Sweep  # noqa: E402
from tests import harness  # noqa: E402
from tests.harness import CHROMIUM, kill_group, start_ui_app  # noqa: E402

CHROMIUM_ARGS = [*harness.CHROMIUM_ARGS, "--enable-precise-memory-info"]  # performance.memory unrounded

#: Counts the pixels drawn on HiPlot's canvases (its lines), to tell when drawing has finished.
DRAWN_PIXELS = """() => {
  let drawn = 0;
  for (const canvas of document.querySelectorAll('canvas')) {
    if (!canvas.width || !canvas.height) continue;
    const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < data.length; i += 16) if (data[i]) drawn++;
  }
  return drawn;
}"""


def write_storage(workdir: Path, trials: int) -> Path:
    """A config of the bundled example's space, and its storage filled with finished trials."""
    raw = yaml.safe_load((PROJECT / "sweep.yaml").read_text())
    raw.update(
        name="ui-scale",
        program=str(PROJECT / "scripts" / "train_digits.py"),
        method="random",
        run_cap=trials,
        storage=f"sqlite:///{workdir / 'sweep.db'}",
        output_dir=str(workdir / "results"),
        autostart=False,
    )
    path = workdir / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    config = load_config(path)
    study = Sweep.open(config, sole_writer=False).study
    rng = random.Random(0)
    space = config.space.parameters
    start = dt.datetime.now() - dt.timedelta(hours=3)
    batch = []
    for number in range(trials):
        params = {p.name: p.distribution.to_external_repr(rng_sample(p.distribution, rng)) for p in space}
        kind = rng.random()
        state = TrialState.FAIL if kind < 0.03 else TrialState.PRUNED if kind < 0.08 else TrialState.COMPLETE
        value = 0.7 + 0.25 * rng.random() if state != TrialState.FAIL else None
        begun = start + dt.timedelta(seconds=number)
        batch.append(
            create_trial(
                state=state,
                value=value,
                params=params,
                distributions={p.name: p.distribution for p in space},
                user_attrs={REASON_ATTR: "exit code 3"} if state == TrialState.FAIL else {},
                intermediate_values={1: value} if state == TrialState.PRUNED else None,
            )
        )
        batch[-1].datetime_start, batch[-1].datetime_complete = begun, begun + dt.timedelta(seconds=rng.uniform(0.1, 2))
    written = time.perf_counter()
    study.add_trials(batch)
    print(f"wrote {trials} trials to {config.storage} in {time.perf_counter() - written:.1f} s")
    return path


def rng_sample(distribution: optuna.distributions.BaseDistribution, rng: random.Random) -> float:
    """A value of ``distribution`` in Optuna's internal representation."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if isinstance(distribution, CategoricalDistribution):
        return rng.randrange(len(distribution.choices))
    if isinstance(distribution, FloatDistribution) and distribution.log:
        return distribution.low * (distribution.high / distribution.low) ** rng.random()
    if isinstance(distribution, IntDistribution):
        return rng.randint(distribution.low, distribution.high)
    return rng.uniform(distribution.low, distribution.high)


def wait_until_drawn(page, trials: int, opened: float) -> tuple[float, float]:
    """Seconds from ``opened`` until HiPlot says all trials are selected, and until its canvas stops changing."""
    hiplot = page.frame_locator("iframe").first.frame_locator("iframe[title*='hiplot']")
    hiplot.get_by_text(f"{trials}/{trials}", exact=False).wait_for(timeout=120_000)
    selected = time.perf_counter() - opened
    frame = next(f for f in page.frames if "hiplot" in f.url)
    last, last_change = -1, time.perf_counter()
    while time.perf_counter() - last_change < 1.0:  # unchanged for a second: drawn
        pixels = frame.evaluate(DRAWN_PIXELS)
        if pixels != last:
            last, last_change = pixels, time.perf_counter()
        time.sleep(0.05)
    return selected, last_change - opened


def bytes_sent(port: int) -> int:
    """Bytes the Streamlit server on ``port`` has sent over its open connections (``ss``'s counters).

    (Playwright does not see the frames of the websocket Streamlit's page opens in its iframe.)
    """
    out = subprocess.run(
        ["ss", "-tinH", "state", "established", f"( sport = :{port} )"], capture_output=True, text=True, check=False
    )
    return sum(int(n) for n in re.findall(r"bytes_sent:(\d+)", out.stdout))


def renderers_rss() -> float:
    """MB of resident memory of the Chromium renderer processes this benchmark started."""
    total = 0
    for proc in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if "--type=renderer" in " ".join(proc.cmdline()):
                total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


def page_server_cpu(app: subprocess.Popen) -> float:
    """CPU seconds the app's page server (its Streamlit process) has used so far."""
    for proc in psutil.Process(app.pid).children(recursive=True):
        try:
            if "streamlit" in " ".join(proc.cmdline()):
                times = proc.cpu_times()
                return times.user + times.system
        except psutil.Error:
            continue
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--reloads", type=int, default=3, help="visits on the warmed-up server (noisy: the median)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        config_path = write_storage(Path(tmp), args.trials)
        proc, url = start_ui_app(config_path, cwd=Path(tmp), log_path=Path(tmp) / "app.log")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1100})
                visits = [
                    "first visit, as soon as the page answers (its server still warming up)",
                    *[f"reload {n + 1}: a new session on the warmed-up page server" for n in range(args.reloads)],
                ]
                reloads, server = [], []  # seconds to the drawn plot; the page server's CPU seconds
                for visit in visits:
                    opened, cpu = time.perf_counter(), page_server_cpu(proc)
                    page.goto(url) if visit.startswith("first") else page.reload()
                    selected, drawn = wait_until_drawn(page, args.trials, opened)
                    cpu = page_server_cpu(proc) - cpu
                    if visit.startswith("reload"):
                        reloads.append(drawn)
                        server.append(cpu)
                    print(
                        f"{visit}: 'Selected: {args.trials}/{args.trials}' after {selected:.2f} s; "
                        f"plot drawn (its canvas unchanged for 1 s) after {drawn:.2f} s; page server CPU {cpu:.2f} s"
                    )
                print(
                    f"reloads: median {statistics.median(reloads):.2f} s to the drawn plot, "
                    f"the page server's CPU {statistics.median(server):.2f} s"
                )
                (PROJECT / "test-output").mkdir(exist_ok=True)
                page.screenshot(path=PROJECT / "test-output" / "ui-scale.png", full_page=True)
                sweep_page = page.frame_locator("iframe").first
                for tab in ("Trials", "Optimisation history", "Parameter importance"):
                    sweep_page.get_by_role("tab", name=tab).click()
                    time.sleep(4)  # the click reruns the page, which builds that tab alone
                    page.screenshot(
                        path=PROJECT / "test-output" / f"ui-scale-{tab.split()[0].lower()}.png", full_page=True
                    )
                heaps = {}  # frames of one origin share a renderer process and its JS heap
                for frame in page.frames:  # /view, Streamlit's page, HiPlot's component (Streamlit's origin)
                    origin = "/".join(frame.url.split("/")[:3])
                    heaps[origin] = frame.evaluate("performance.memory.usedJSHeapSize") / 2**20
                print(
                    "JS heap used: "
                    + ", ".join(f"{mb:.0f} MB ({origin})" for origin, mb in heaps.items())
                    + f"; Chromium renderers' RSS {renderers_rss():.0f} MB"
                )
                port = int(next(f for f in page.frames if "hiplot" in f.url).url.split("/")[2].split(":")[1])
                before, cpu = bytes_sent(port), page_server_cpu(proc)
                time.sleep(args.idle)
                idle, cpu = bytes_sent(port) - before, page_server_cpu(proc) - cpu
                print(
                    f"while the page sat idle for {args.idle:.0f} s, its server sent {idle} bytes "
                    f"({idle / args.idle / 1024:.1f} KB/s; it polls the app and the storage every second) "
                    f"and used {cpu / args.idle:.0%} of a core"
                )
                browser.close()
        finally:
            kill_group(proc)


if __name__ == "__main__":
    main()
