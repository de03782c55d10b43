"""How close a sweep's best trial gets to the optimum: Sweeps' default method, one trial at a time
and several at once, against Optuna's own samplers run one trial at a time.

    pip install coco-experiment==2.8.2      # the BBOB functions (compiled, offline)
    python benchmarks/efficiency.py [--trials 100] [--seeds 5] [--functions 1-24] [--dimensions 2,5,10]
                                    [--methods sweeps-1,sweeps-4,tpe,gp,random] [--processes 2]

Problems: COCO's 24 noiseless BBOB functions (instance 1, on [-5, 5]^d) in each dimension, and
Hartmann6 on [0, 1]^6. The best value after ``--trials`` trials becomes a normalised regret,
(best - optimum) / (median of 1,000 uniform random points - optimum): 0 at the optimum, about
0.5 for a method that found only what random points find half the time.

Methods:

* ``sweeps-N``: Sweeps' default ``method`` (from a config that names none, as ``sweeps.config``
  builds it) with ``N`` trials running at once: a new trial is asked for whenever one ends, and
  trials take a random time (uniform 0.5 to 1.5, seeded), so they end out of order as in a sweep;
* ``tpe``, ``gp``, ``random``: Optuna's TPESampler with its defaults (``optuna.create_study``'s),
  its GPSampler (needs PyTorch), its RandomSampler, one trial at a time; ``tpe-4`` (any of them,
  any N): N at once, as above. (Where Sweeps' default is a Gaussian process, as on these spaces
  with PyTorch installed, ``sweeps-1`` is ``gp``; where it is TPE, ``tpe``.)

Each result is printed to stderr as it comes (a GP run of 100 trials takes ~15 s here, ~35 s with
4 trials at once: the full table is hours on 2 cores; choose with ``--functions``, ``--dimensions``).

Printed: the median regret over seeds for each problem and method; then for each method the
median over problems, and the problems on which its median is worse than sequential TPE's and
than sequential GP's by more than :data:`TIE`.
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import multiprocessing
import random
import statistics
import sys
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from sweeps.config import parse_config  # noqa: E402

#: Hartmann's 6-D function (Dixon & Szegö 1978), minimised on [0, 1]^6.
HARTMANN6 = (
    np.array([1.0, 1.2, 3.0, 3.2]),
    np.array(
        [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
    ),
    1e-4
    * np.array(
        [
            [1312, 1696, 5569, 124, 8283, 5886],
            [2329, 4135, 8307, 3736, 1004, 9991],
            [2348, 1451, 3522, 2883, 3047, 6650],
            [4047, 8828, 8732, 5743, 1091, 381],
        ]
    ),
)
HARTMANN6_OPTIMUM = -3.32237
RANDOM_POINTS = 1000
#: A difference in normalised regret that is no difference: in 2-D most methods end within 1e-4 of
#: the optimum, and which of two such runs is "worse" is the seeds' doing.
TIE = 1e-3


@dataclass(frozen=True)
class Problem:
    name: str
    dimension: int
    low: float
    high: float
    optimum: float

    def __call__(self, x: np.ndarray) -> float:
        if self.name == "hartmann6":
            alpha, a, p = HARTMANN6
            return float(-alpha @ np.exp(-np.sum(a * (x - p) ** 2, axis=1)))
        return float(_bbob(self.name)(x))

    def typical(self) -> float:
        """The median value of uniform random points: the scale of the regret."""
        rng = np.random.default_rng(0)
        points = rng.uniform(self.low, self.high, size=(RANDOM_POINTS, self.dimension))
        return statistics.median(self(x) for x in points)


_functions: dict[str, Callable[[np.ndarray], float]] = {}


def _bbob(name: str):
    """The BBOB function ``f<i>_d<d>`` (cached: COCO builds it in C, once per process)."""
    if name not in _functions:
        import cocoex

        function, dimension = (int(part[1:]) for part in name.split("_"))
        _functions[name] = cocoex.BareProblem("bbob", function, dimension, 1)
    return _functions[name]


def problems(functions: list[int], dimensions: list[int]) -> list[Problem]:
    import cocoex

    found = [Problem("hartmann6", 6, 0.0, 1.0, HARTMANN6_OPTIMUM)]
    for d in dimensions:
        for f in functions:
            optimum = cocoex.BareProblem("bbob", f, d, 1).best_value()
            found.append(Problem(f"f{f}_d{d}", d, -5.0, 5.0, optimum))
    return found


def sweeps_sampler(problem: Problem, seed: int) -> tuple[optuna.samplers.BaseSampler, Callable]:
    """The sampler a Sweeps config that names no method gets, and its search space's ``sample``."""
    raw = {
        "program": str(PROJECT / "benchmarks" / "noop_bare.py"),
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {f"x{i}": {"min": problem.low, "max": problem.high} for i in range(problem.dimension)},
        "run_cap": 1,
        "seed": seed,
        "parallel": 1,
    }
    from sweeps.samplers import make_sampler

    config = parse_config(raw, PROJECT)
    return make_sampler(config.sampler, config.space, config.seed), config.space.sample


def optuna_sampler(method: str, seed: int) -> optuna.samplers.BaseSampler:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {
            "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
            "gp": lambda: optuna.samplers.GPSampler(seed=seed),
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        }[method]()


def best_value(problem: Problem, method: str, seed: int, trials: int) -> float:
    """The best value ``method`` finds on ``problem`` in ``trials`` trials."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    names = [f"x{i}" for i in range(problem.dimension)]
    name, _, at_once_text = method.partition("-")
    at_once = int(at_once_text or 1)
    if name == "sweeps":
        sampler, sample = sweeps_sampler(problem, seed)
    else:
        sampler = optuna_sampler(name, seed)

        def sample(trial: optuna.Trial) -> dict[str, float]:
            return {name: trial.suggest_float(name, problem.low, problem.high) for name in names}

    study = optuna.create_study(sampler=sampler, direction="minimize")
    durations = random.Random(seed)
    running: list[tuple[float, int, optuna.Trial, float]] = []  # (end time, order, trial, its value)
    now, asked = 0.0, 0
    while asked < trials or running:
        while asked < trials and len(running) < at_once:
            trial = study.ask()
            params = sample(trial)
            value = problem(np.array([params[name] for name in names]))
            heapq.heappush(running, (now + durations.uniform(0.5, 1.5), asked, trial, value))
            asked += 1
        now, _, trial, value = heapq.heappop(running)
        study.tell(trial, value)
    return study.best_value


def _run(job: tuple[Problem, str, int, int]) -> tuple[str, str, int, float]:
    problem, method, seed, trials = job
    return problem.name, method, seed, best_value(problem, method, seed, trials)


def _ints(text: str) -> list[int]:
    found = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        found.extend(range(int(low), int(high or low) + 1))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--functions", type=_ints, default=_ints("1-24"), help="BBOB function numbers: 1-24, 1,8")
    parser.add_argument("--dimensions", type=_ints, default=[2, 5, 10])
    parser.add_argument("--methods", default="sweeps-1,sweeps-4,tpe,gp,random")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    if importlib.util.find_spec("cocoex") is None:
        sys.exit("efficiency.py needs the BBOB functions: pip install coco-experiment==2.8.2")
    methods = args.methods.split(",")
    if importlib.util.find_spec("torch") is None:
        print("gp left out: Optuna's GPSampler needs PyTorch", file=sys.stderr)
        methods = [m for m in methods if not m.startswith("gp")]
    chosen = problems(args.functions, args.dimensions)
    jobs = [(p, m, seed, args.trials) for p in chosen for m in methods for seed in range(args.seeds)]
    found: dict[tuple[str, str], list[float]] = defaultdict(list)
    with multiprocessing.Pool(args.processes) as pool:
        for done, (name, method, seed, value) in enumerate(pool.imap_unordered(_run, jobs), 1):
            found[name, method].append(value)
            print(f"[{done}/{len(jobs)}] {name} {method} seed {seed}: {value:.6g}", file=sys.stderr, flush=True)
    with multiprocessing.Pool(args.processes) as pool:
        typical = dict(zip([p.name for p in chosen], pool.map(Problem.typical, chosen), strict=True))

    def regret(problem: Problem, method: str) -> float:
        best = statistics.median(found[problem.name, method])
        return max(best - problem.optimum, 0.0) / (typical[problem.name] - problem.optimum)

    print(f"normalised regret after {args.trials} trials, median of {args.seeds} seeds (0: the optimum)")
    print(f"{'problem':12s}" + "".join(f"{m:>10s}" for m in methods))
    table = {p.name: {m: regret(p, m) for m in methods} for p in chosen}
    for name, row in table.items():
        print(f"{name:12s}" + "".join(f"{row[m]:10.3g}" for m in methods))
    print(f"{'median':12s}" + "".join(f"{statistics.median(r[m] for r in table.values()):10.3g}" for m in methods))
    for baseline in [m for m in ("tpe", "gp") if m in methods]:
        for m in (m for m in methods if m != baseline):
            worse = [name for name, row in table.items() if row[m] > row[baseline] + TIE]
            print(
                f"{m}: worse than sequential {baseline.upper()} (by > {TIE:g}) on {len(worse)} of {len(table)}: "
                f"{', '.join(worse) or '-'}"
            )


if __name__ == "__main__":
    main()
