"""The sweep config: a W&B-style YAML file, checked completely before anything starts.

A user's mistake must surface as one line naming the key (``parameters.lr.min``) and what
would be valid, never as a traceback from inside pydantic, Optuna or Lightning. So every check
raises :class:`ConfigError`, and :func:`load_config` is the only way in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from sweeps import command, wandb_runs
from sweeps.cluster import CLOUD_VARIABLE, Cluster
from sweeps.cluster import address as cluster_address
from sweeps.command import Launch
from sweeps.errors import ConfigError
from sweeps.pruners import PRUNERS, EarlyTerminate
from sweeps.resources import DEFAULT_PARALLEL, Machine, Resources, Share, plan
from sweeps.samplers import METHODS, check_method, resolve
from sweeps.space import ParameterSpec, SearchSpace
from sweeps.storage import POSTGRESQL, SQLITE, is_proxy, proxy_address, redacted

#: Where the config comes from when ``SWEEP_CONFIG`` is not set: the bundled example.
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "sweep.yaml"

#: W&B sweep keys Sweeps does not act on; a W&B config must still load unchanged.
IGNORED_KEYS = ("entity", "project", "controller", "description", "imports", "job")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metric(_Strict):
    name: str
    goal: Literal["minimize", "maximize"] = "minimize"
    target: float | None = None


class Scheduler(_Strict):
    """W&B 0.31's ``scheduler``: which engine proposes the trials. Here both it names run on Optuna."""

    engine: Literal["wandb", "optuna"] = "wandb"

    @field_validator("engine", mode="before")
    @classmethod
    def _runs_here(cls, engine: object) -> object:
        if engine == "ax":
            raise ValueError("ax is not available: Sweeps runs every sweep on Optuna (engine: wandb or optuna)")
        return engine


class SweepConfig(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = ""
    program: Path
    method: Literal[METHODS] = "bayes"  # type: ignore[valid-type]
    metric: Metric | None = None  # W&B runs a grid or random sweep without one
    metrics: list[Metric] | None = Field(default=None, min_length=1)  # several objectives (W&B 0.31)
    scheduler: Scheduler | None = None
    parameters: dict[str, ParameterSpec] = Field(min_length=1)
    run_cap: PositiveInt | None = Field(default=None, alias="n_trials")  # filled in by parse_config
    parallel: PositiveInt | None = None  # filled in by parse_config: what resources allow, else 2
    resources: Resources | None = None
    cluster: Cluster | None = None  # where --cloud runs the trials
    storage: str = "sqlite:///sweeps.db"
    heartbeat_interval: PositiveInt = 10  # shared storages: seconds between a running trial's heartbeats
    grace_period: PositiveInt | None = None  # ... and without one before it is "worker lost" (2 intervals)
    max_failures: PositiveInt | None = None  # filled in by parse_config: run_cap
    max_retries: NonNegativeInt = 0
    trial_timeout: PositiveFloat | None = None
    early_terminate: EarlyTerminate | None = None
    seed: int | None = None
    autostart: bool = False
    output_dir: Path | None = None

    entity: Any = None
    project: Any = None
    controller: Any = None
    description: Any = None
    command: Any = None  # W&B's command list, checked by sweeps.command
    imports: Any = None
    job: Any = None

    _space: SearchSpace = PrivateAttr()
    _command: tuple[str, ...] | None = PrivateAttr(default=None)
    _shares: list[Share] = PrivateAttr(default_factory=list)
    _cloud: bool = PrivateAttr(default=False)

    @field_validator("storage")
    @classmethod
    def _known_storage(cls, url: str) -> str:
        if is_proxy(url):
            proxy_address(url)
        elif not url.startswith(SQLITE + POSTGRESQL):
            shown = redacted(url)
            raise ValueError(
                "should start with sqlite:/// (one app), postgresql:// (workers sharing the sweep) or grpc:// "
                f"(many workers, through sweeps-proxy); got {shown!r}"
            )
        return url

    @property
    def space(self) -> SearchSpace:
        return self._space

    @property
    def sampler(self) -> str:
        """The method whose Optuna sampler runs the sweep: ``method``, with ``bayes`` resolved to ``gp`` or
        ``tpe`` (``sweeps.samplers.resolve``)."""
        return resolve(self.method, self.space, self.run_cap, len(self.objectives))

    @property
    def shares(self) -> list[Share]:
        """Each slot's share of this machine (``sweeps.resources``), one per trial run at once."""
        return self._shares

    @property
    def cloud(self) -> bool:
        """Whether the trials run on a Ray cluster (``--cloud``), at :attr:`ray_address`."""
        return self._cloud

    @property
    def ray_address(self) -> str | None:
        """The Ray cluster ``--cloud`` runs the trials on; None when none is named."""
        return cluster_address(self.cluster) if self._cloud else None

    @property
    def launch(self) -> Launch:
        """What each trial runs (the program, the ``command`` unless it is W&B's default) and where its files go."""
        return Launch(str(self.program), self._command, str(Path(self.output_dir).resolve()))

    @property
    def objectives(self) -> list[Metric]:
        """What the sweep optimises: ``metrics``, or ``metric``; none for a sweep without a metric."""
        return self.metrics or ([self.metric] if self.metric is not None else [])

    @property
    def metric_names(self) -> list[str]:
        return [m.name for m in self.objectives]

    @property
    def directions(self) -> list[str]:
        """Each objective's goal (``minimize``, ``maximize``), as Optuna's study takes them."""
        return [m.goal for m in self.objectives]

    @property
    def target(self) -> float | None:
        """Reached by the one objective: the sweep ends (never with several objectives)."""
        objectives = self.objectives
        return objectives[0].target if len(objectives) == 1 else None

    @property
    def ignored_keys(self) -> list[str]:
        """The W&B keys this config sets that Sweeps does not act on."""
        return sorted(self.model_fields_set & set(IGNORED_KEYS))


def load_config(path: str | os.PathLike[str] | None = None) -> SweepConfig:
    """Read and check the sweep config at ``path`` (default: ``$SWEEP_CONFIG``, else the bundled one)."""
    path = Path(path or os.environ.get("SWEEP_CONFIG") or DEFAULT_CONFIG)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError("", f"cannot read sweep config {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError("", f"{path} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if not isinstance(raw, dict):
        raise ConfigError("", f"{path} must be a mapping of keys (program, metric, parameters, ...)")
    cloud = os.environ.get(CLOUD_VARIABLE, "") not in ("", "0")
    config = parse_config(raw, base_dir=path.parent, default_name=path.stem, cloud=cloud)
    if os.environ.get("SWEEPS_AUTOSTART", "") not in ("", "0"):
        config.autostart = True
    return config


def parse_config(
    raw: dict[str, Any],
    base_dir: Path,
    default_name: str = "sweep",
    machine: Machine | None = None,
    cloud: bool = False,
) -> SweepConfig:
    """Check a config read from ``base_dir``; ``machine``: what trials may use (default: this machine's);
    ``cloud``: the trials run on a Ray cluster, which gives each its resources instead."""
    try:
        config = SweepConfig.model_validate(raw)
    except ValidationError as err:
        raise _one_line(err) from None

    config.name = config.name or default_name
    program = config.program if config.program.is_absolute() else base_dir / config.program
    if not program.is_file():
        raise ConfigError("program", f"no such file {program} (paths are relative to the config file)")
    config.program = program.resolve()

    check_method(config.method)
    _check_metric(config)
    if wandb_runs.uses_wandb(str(config.program)) and not wandb_runs.installed():
        raise ConfigError(
            "program", f"{config.program.name} imports wandb, which is not installed: {wandb_runs.INSTALL}"
        )
    config._command = command.check(config.command)
    config._space = SearchSpace.from_specs(config.parameters, key="parameters")
    if config.method == "grid":
        size = config.space.grid_size(key="parameters")
        config.run_cap = config.run_cap or size
    elif config.run_cap is None:
        raise ConfigError("run_cap", f"required for method {config.method!r}: how many trials to finish")
    config.max_failures = config.max_failures or config.run_cap
    config._cloud = cloud
    if cloud:  # parallel may exceed this machine: the cluster bounds it (hosts wait for room there)
        memory = config.resources and config.resources.memory_per_trial
        config.parallel = config.parallel or DEFAULT_PARALLEL
        config._shares = [Share(memory=int(memory) if memory else None)] * config.parallel
    else:
        config.parallel, config._shares = plan(config.resources, config.parallel, machine)
    if config.output_dir is None:
        config.output_dir = Path("results") / config.name
    return config


def goals_text(directions: Sequence[str], names: Sequence[str] | None = None) -> str:
    """``minimize loss, maximize accuracy``; the goals alone where the names are not known."""
    if names is None:
        return ", ".join(directions)
    return ", ".join(f"{goal} {name}" for goal, name in zip(directions, names, strict=True))


#: Methods that propose from what trials reported: they need a metric.
MODEL_BASED = ("bayes", "tpe", "gp", "cmaes", "nsga2")
#: Methods that optimise one objective only.
SINGLE_OBJECTIVE = ("cmaes",)


def _check_metric(config: SweepConfig) -> None:
    """A sweep without a metric (W&B allows it for grid and random) can neither model nor prune; one of
    several objectives can neither prune (Optuna's pruners follow one curve) nor reach a target."""
    if config.metric is not None and config.metrics is not None:
        raise ConfigError("metrics", "give metric (one objective) or metrics (several), not both")
    names = [m.name for m in config.metrics or []]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConfigError(f"metrics[{i}].name", f"{name} is already an objective; give each metric once")
    if config.metrics is not None and len(config.metrics) > 1:
        if config.method in SINGLE_OBJECTIVE:
            several = ", ".join(m for m in METHODS if m not in SINGLE_OBJECTIVE)
            raise ConfigError("method", f"{config.method} optimises one objective; with several metrics use {several}")
        if config.early_terminate is not None:
            raise ConfigError("early_terminate", "a pruner follows one objective's curve: not with several metrics")
        for i, metric in enumerate(config.metrics):
            if metric.target is not None:
                raise ConfigError(f"metrics[{i}].target", "a target ends a sweep on one objective: not with several")
    if config.objectives:
        return
    if config.method in MODEL_BASED:
        raise ConfigError(
            "metric",
            f"required for method {config.method} (it models the metric); grid, random and qmc run without one",
        )
    if config.early_terminate is not None:
        raise ConfigError("metric", "required with early_terminate (the pruner compares the metric's values)")


def _one_line(err: ValidationError) -> ConfigError:
    first = err.errors()[0]
    loc, kind = first["loc"], first["type"]
    pruner = None
    if len(loc) > 1 and loc[0] == "early_terminate" and loc[1] in PRUNERS:
        # The pruner's type is in the path pydantic reports: not a key the user wrote.
        pruner, loc = PRUNERS[loc[1]], (loc[0], *loc[2:])
    if len(loc) > 1 and loc[-2] in ("min", "max", "q"):
        # ``int | float`` adds the union member to the path: not a key the user wrote.
        return ConfigError(_key(loc[:-1]), f"should be a number (got {first.get('input')!r})")
    key = _key(loc)
    if kind == "extra_forbidden":
        model = pruner or _model_at(loc[:-1])
        valid = ", ".join(f.alias or name for name, f in model.model_fields.items()) if model else "see the README"
        return ConfigError(key, f"unknown key; valid keys here: {valid}")
    if kind == "missing":
        return ConfigError(key, "required")
    if kind == "byte_size":
        return ConfigError(key, f"should be a size such as 8GB or 512MiB (got {first.get('input')!r})")
    if kind == "union_tag_invalid":
        return ConfigError(f"{key}.type", f"{first['msg']} (got {first['ctx']['tag']!r})")
    if kind == "value_error":
        return ConfigError(key, str(first["ctx"]["error"]))
    return ConfigError(key, f"{first['msg']} (got {first.get('input')!r})")


def _key(loc: tuple[Any, ...]) -> str:
    """``metrics[1].goal``: the path as the user's YAML has it (pydantic says ``metrics.1.goal``)."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that the key path ``loc`` points into, to list its valid keys."""
    model: type[BaseModel] = SweepConfig
    parts = list(loc)
    while parts:
        part = parts.pop(0)
        if part in ("parameters",):
            if not parts:
                return None
            parts.pop(0)  # the parameter's own name
            model = ParameterSpec
        elif part == "metric":
            model = Metric
        elif part == "metrics" and parts:
            parts.pop(0)  # the metric's place in the list
            model = Metric
        elif part == "scheduler":
            model = Scheduler
        elif part == "resources":
            model = Resources
        elif part == "cluster":
            model = Cluster
        else:
            return None
    return model
