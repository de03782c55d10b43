"""The search space: W&B parameter specs turned into what Optuna samples.

Each W&B distribution maps to the Optuna distribution that samples exactly the same thing where
one exists, so that Optuna's samplers model the parameter natively (a log-uniform learning rate is
a ``FloatDistribution(log=True)``, not a uniform exponent). Where Optuna has none (normal, beta,
quantized log scales, weighted categories), Optuna samples the parameter's quantile in (0, 1) and
the value is that quantile through the distribution's inverse CDF (``scipy.stats``): TPE still
models the parameter, on the scale where its prior is uniform.

Nested ``parameters`` flatten to dotted names (``optimizer.lr``), which is also how the script
receives them. ``if: {other: value-or-list}`` makes a parameter conditional: it is sampled only
when the other parameter took one of those values, and is absent otherwise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import BaseModel, ConfigDict, Field

from sweeps.errors import ConfigError
from sweeps.record import QUANTILE_SUFFIX

#: What Optuna samples for a parameter it has no distribution for: the value's quantile. The
#: ends are kept off 0 and 1, where a normal's inverse CDF is infinite.
QUANTILE = FloatDistribution(1e-6, 1 - 1e-6)

#: Above this many combinations a discrete space is not enumerated (see SearchSpace.choices).
ENUMERABLE = 10_000


class ParameterSpec(BaseModel):
    """One entry of ``parameters`` as the user wrote it (W&B syntax); :func:`_distribution` gives it a meaning."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    value: Any = None
    values: list[Any] | None = None
    probabilities: list[float] | None = None
    distribution: str | None = None
    min: int | float | None = None
    max: int | float | None = None
    q: int | float | None = None
    mu: float | None = None
    sigma: float | None = None
    a: float | None = None
    b: float | None = None
    parameters: dict[str, ParameterSpec] | None = None
    if_: dict[str, Any] | None = Field(default=None, alias="if")

    def given(self) -> set[str]:
        """The keys the user wrote (``value: null`` counts as written)."""
        return set(self.model_fields_set)


@dataclass(frozen=True)
class Parameter:
    name: str
    distribution: BaseDistribution
    #: Maps the sampled quantile to the value; None when Optuna samples the value itself.
    inverse_cdf: Callable[[float], Any] | None = None
    #: ``{other parameter: allowed values}``: sampled only when every one holds.
    condition: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def sampled_name(self) -> str:
        """The name Optuna knows it by: the parameter's own, or its quantile's."""
        return self.name if self.inverse_cdf is None else self.name + QUANTILE_SUFFIX

    def is_active(self, values: Mapping[str, Any]) -> bool:
        return all(other in values and values[other] in allowed for other, allowed in self.condition.items())

    def suggest(self, trial: optuna.Trial) -> Any:
        sampled = _suggest(trial, self.sampled_name, self.distribution)
        return sampled if self.inverse_cdf is None else self.inverse_cdf(sampled)

    @property
    def choices(self) -> list[Any] | None:
        """Every value, when Optuna samples from a finite set of them."""
        d = self.distribution
        if self.inverse_cdf is not None:
            return None
        if isinstance(d, CategoricalDistribution):
            return list(d.choices)
        if isinstance(d, IntDistribution) and not d.log:
            return list(range(d.low, d.high + 1, d.step))
        return None


class SearchSpace:
    """The flattened parameters of a sweep, parents before the parameters conditioned on them."""

    def __init__(self, parameters: Sequence[Parameter]) -> None:
        self.parameters = list(parameters)

    @classmethod
    def from_specs(cls, specs: Mapping[str, ParameterSpec], key: str = "parameters") -> SearchSpace:
        parameters = list(_flatten(specs, key, prefix=""))
        return cls(_in_dependency_order(parameters, key))

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.parameters]

    @property
    def is_conditional(self) -> bool:
        return any(p.condition for p in self.parameters)

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Suggest every active parameter on ``trial``; the values the script is to receive."""
        values: dict[str, Any] = {}
        for p in self.parameters:
            if p.is_active(values):
                values[p.name] = p.suggest(trial)
        return values

    def choices(self) -> list[dict[str, Any]] | None:
        """Every configuration, for an unconditional discrete space of at most ENUMERABLE of them."""
        per_param = [p.choices for p in self.parameters]
        if self.is_conditional or any(c is None for c in per_param):
            return None
        if math.prod(len(c) for c in per_param) > ENUMERABLE:  # type: ignore[arg-type]
            return None
        return [dict(zip(self.names, combo, strict=True)) for combo in itertools.product(*per_param)]  # type: ignore[arg-type]

    def grid(self, key: str = "parameters") -> dict[str, list[Any]]:
        """Every value of every parameter, for Optuna's ``GridSampler``."""
        grid = {}
        for p in self.parameters:
            if p.condition:
                raise ConfigError(f"{key}.{p.name}.if", "method grid does not take conditional parameters")
            if p.choices is None:
                raise ConfigError(
                    f"{key}.{p.name}",
                    "method grid needs a finite set of values (value, values, int_uniform or an integer "
                    "q_uniform), not a continuous distribution",
                )
            grid[p.name] = p.choices
        return grid

    def grid_size(self, key: str = "parameters") -> int:
        return math.prod(len(values) for values in self.grid(key).values())


def _suggest(trial: optuna.Trial, name: str, d: BaseDistribution) -> Any:
    if isinstance(d, CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    if isinstance(d, IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    assert isinstance(d, FloatDistribution)
    return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)


# -- reading the specs -------------------------------------------------------------------------


def _flatten(specs: Mapping[str, ParameterSpec], key: str, prefix: str):
    for name, spec in specs.items():
        here = f"{key}.{name}"
        if spec.parameters is not None:
            extra = spec.given() - {"parameters"}
            if extra:
                raise ConfigError(f"{here}.{sorted(extra)[0]}", "a nested parameters block takes no other keys")
            yield from _flatten(spec.parameters, f"{here}.parameters", prefix=f"{prefix}{name}.")
            continue
        distribution, inverse_cdf = _distribution(spec, here)
        condition = {
            other: tuple(allowed) if isinstance(allowed, list) else (allowed,)
            for other, allowed in (spec.if_ or {}).items()
        }
        yield Parameter(f"{prefix}{name}", distribution, inverse_cdf, condition)


def _in_dependency_order(parameters: list[Parameter], key: str) -> list[Parameter]:
    """Each parameter after those its condition names; unknown names and cycles are errors."""
    by_name = {p.name: p for p in parameters}
    for p in parameters:
        for other in p.condition:
            if other not in by_name or other == p.name:
                known = ", ".join(n for n in by_name if n != p.name)
                raise ConfigError(f"{key}.{p.name}.if.{other}", f"no such parameter; conditions may name: {known}")
    ordered: list[Parameter] = []
    placed: set[str] = set()
    while len(ordered) < len(parameters):
        ready = [p for p in parameters if p.name not in placed and set(p.condition) <= placed]
        if not ready:
            stuck = next(p for p in parameters if p.name not in placed)
            raise ConfigError(f"{key}.{stuck.name}.if", "conditions form a cycle")
        ordered.extend(ready)
        placed.update(p.name for p in ready)
    return ordered


_Built = tuple[BaseDistribution, Callable[[float], Any] | None]


def _distribution(spec: ParameterSpec, key: str) -> _Built:
    given = spec.given() - {"if_"}
    name = spec.distribution or _infer(spec, given, key)
    if name not in DISTRIBUTIONS:
        raise ConfigError(f"{key}.distribution", f"unknown {name!r}; valid: {', '.join(DISTRIBUTIONS)}")
    required, optional, build = DISTRIBUTIONS[name]
    missing = sorted(required - given)
    if missing:
        raise ConfigError(f"{key}.{missing[0]}", f"required by distribution {name}")
    unexpected = given - required - optional - {"distribution"}
    if unexpected:
        takes = ", ".join(sorted(required | optional)) or "nothing else"
        raise ConfigError(f"{key}.{sorted(unexpected)[0]}", f"not used by distribution {name}; it takes {takes}")
    for positive in ("q", "sigma", "a", "b"):
        value = getattr(spec, positive)
        if positive in given and not (value is not None and value > 0):
            raise ConfigError(f"{key}.{positive}", f"must be > 0 (got {value})")
    return build(spec, key)


def _infer(spec: ParameterSpec, given: set[str], key: str) -> str:
    """W&B's rules for a parameter without ``distribution``."""
    if "value" in given:
        return "constant"
    if "values" in given:
        return "categorical_w_probabilities" if "probabilities" in given else "categorical"
    if {"min", "max"} <= given:
        return "int_uniform" if isinstance(spec.min, int) and isinstance(spec.max, int) else "uniform"
    raise ConfigError(key, "give one of value, values, min and max (with a distribution), or parameters")


# -- the distributions -------------------------------------------------------------------------


def _constant(spec: ParameterSpec, key: str) -> _Built:
    _check_choice(spec.value, f"{key}.value")
    return CategoricalDistribution([spec.value]), None


def _categorical(spec: ParameterSpec, key: str) -> _Built:
    return CategoricalDistribution(_values(spec, key)), None


def _categorical_w_probabilities(spec: ParameterSpec, key: str) -> _Built:
    values = _values(spec, key)
    probabilities = spec.probabilities or []
    if len(probabilities) != len(values):
        raise ConfigError(
            f"{key}.probabilities", f"needs one probability per value ({len(values)}, got {len(probabilities)})"
        )
    if any(p < 0 for p in probabilities) or not math.isclose(sum(probabilities), 1.0, rel_tol=1e-6):
        raise ConfigError(f"{key}.probabilities", f"must be >= 0 and sum to 1 (got {probabilities})")
    return QUANTILE, partial(_pick, values, np.cumsum(probabilities))


def _pick(values: list[Any], cumulative: np.ndarray, u: float) -> Any:
    return values[min(int(np.searchsorted(cumulative, u, side="right")), len(values) - 1)]


def _int_uniform(spec: ParameterSpec, key: str) -> _Built:
    low, high = _bounds(spec, key)
    for name, bound in (("min", low), ("max", high)):
        if not float(bound).is_integer():
            raise ConfigError(f"{key}.{name}", f"int_uniform needs whole numbers (got {bound})")
    return IntDistribution(int(low), int(high)), None


def _uniform(spec: ParameterSpec, key: str) -> _Built:
    low, high = _bounds(spec, key)
    return FloatDistribution(float(low), float(high)), None


def _q_uniform(spec: ParameterSpec, key: str) -> _Built:
    """The multiples of ``q`` between min and max, each equally likely."""
    low, high = _bounds(spec, key)
    q = spec.q or 1
    first, last = math.ceil(low / q), math.floor(high / q)
    if first > last:
        raise ConfigError(f"{key}.q", f"no multiple of q={q} lies between min={low} and max={high}")
    if all(isinstance(x, int) for x in (spec.min, spec.max, q)):
        return IntDistribution(first * q, last * q, step=q), None
    return FloatDistribution(first * q, last * q, step=q), None


def _log_uniform(spec: ParameterSpec, key: str) -> _Built:
    """W&B's log_uniform takes exponents: the value lies between exp(min) and exp(max)."""
    low, high = _bounds(spec, key)
    return FloatDistribution(math.exp(low), math.exp(high), log=True), None


def _log_uniform_values(spec: ParameterSpec, key: str) -> _Built:
    low, high = _positive_bounds(spec, key)
    return FloatDistribution(float(low), float(high), log=True), None


def _inv_log_uniform(spec: ParameterSpec, key: str) -> _Built:
    """log(1/X) uniform on [min, max] is log(X) uniform on [-max, -min]: log-uniform again."""
    low, high = _bounds(spec, key)
    return FloatDistribution(math.exp(-high), math.exp(-low), log=True), None


def _inv_log_uniform_values(spec: ParameterSpec, key: str) -> _Built:
    """log(1/X) uniform on [log(1/max), log(1/min)] is X log-uniform on [min, max]."""
    return _log_uniform_values(spec, key)


def _q_log_uniform(spec: ParameterSpec, key: str) -> _Built:
    low, high = _bounds(spec, key)
    return QUANTILE, _quantized(_stats().loguniform(math.exp(low), math.exp(high)), spec.q)


def _q_log_uniform_values(spec: ParameterSpec, key: str) -> _Built:
    low, high = _positive_bounds(spec, key)
    return QUANTILE, _quantized(_stats().loguniform(low, high), spec.q)


def _normal(spec: ParameterSpec, key: str) -> _Built:
    return QUANTILE, _continuous(_stats().norm(_mu(spec), _sigma(spec)))


def _q_normal(spec: ParameterSpec, key: str) -> _Built:
    return QUANTILE, _quantized(_stats().norm(_mu(spec), _sigma(spec)), spec.q)


def _log_normal(spec: ParameterSpec, key: str) -> _Built:
    """log(X) normal with mean mu and deviation sigma."""
    return QUANTILE, _continuous(_stats().lognorm(s=_sigma(spec), scale=math.exp(_mu(spec))))


def _q_log_normal(spec: ParameterSpec, key: str) -> _Built:
    return QUANTILE, _quantized(_stats().lognorm(s=_sigma(spec), scale=math.exp(_mu(spec))), spec.q)


def _beta(spec: ParameterSpec, key: str) -> _Built:
    return QUANTILE, _continuous(_stats().beta(spec.a or 1.0, spec.b or 1.0))


def _q_beta(spec: ParameterSpec, key: str) -> _Built:
    return QUANTILE, _quantized(_stats().beta(spec.a or 1.0, spec.b or 1.0), spec.q)


def _stats() -> ModuleType:
    """scipy.stats, imported when a distribution needs its inverse CDF: 0.4 s that every process of
    the app (the CLI, each work) would otherwise pay at start-up, for any config."""
    from scipy import stats

    return stats


def _continuous(frozen: Any) -> Callable[[float], float]:
    return partial(_ppf, frozen)


def _ppf(frozen: Any, u: float) -> float:
    return float(frozen.ppf(u))


def _quantized(frozen: Any, q: float | None) -> Callable[[float], float | int]:
    return partial(_ppf_rounded, frozen, q or 1)


def _ppf_rounded(frozen: Any, q: float | int, u: float) -> float | int:
    """W&B's ``round(X / q) * q``; a whole ``q`` gives whole numbers (``--epochs=3``, not ``3.0``)."""
    steps = round(float(frozen.ppf(u)) / q)
    return int(steps * q) if isinstance(q, int) else steps * q


def _mu(spec: ParameterSpec) -> float:
    return 0.0 if spec.mu is None else float(spec.mu)


def _sigma(spec: ParameterSpec) -> float:
    return 1.0 if spec.sigma is None else float(spec.sigma)


def _values(spec: ParameterSpec, key: str) -> list[Any]:
    values = spec.values or []
    if not values:
        raise ConfigError(f"{key}.values", "must list at least one value")
    for i, value in enumerate(values):
        _check_choice(value, f"{key}.values[{i}]")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{key}.values", f"lists a value twice (got {values})")
    return values


def _bounds(spec: ParameterSpec, key: str) -> tuple[float, float]:
    low, high = spec.min, spec.max
    assert low is not None and high is not None  # _distribution checked they were given
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{key}.min", f"min and max must be finite numbers (got {low}, {high})")
    if low >= high:
        raise ConfigError(f"{key}.min", f"must be less than max (got min={low}, max={high})")
    return low, high


def _positive_bounds(spec: ParameterSpec, key: str) -> tuple[float, float]:
    low, high = _bounds(spec, key)
    if low <= 0:
        raise ConfigError(f"{key}.min", f"must be > 0 on a log scale (got {low})")
    return low, high


def _check_choice(value: Any, key: str) -> None:
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise ConfigError(key, f"must be a number, a string, a boolean or null (got {value!r})")


_Builder = Callable[[ParameterSpec, str], _Built]
_RANGE, _Q = {"min", "max"}, {"q"}
_NORMAL, _BETA = {"mu", "sigma"}, {"a", "b"}

#: W&B distribution name -> (the keys it needs, the keys it may take, how to build it).
DISTRIBUTIONS: dict[str, tuple[set[str], set[str], _Builder]] = {
    "constant": ({"value"}, set(), _constant),
    "categorical": ({"values"}, set(), _categorical),
    "categorical_w_probabilities": ({"values", "probabilities"}, set(), _categorical_w_probabilities),
    "int_uniform": (_RANGE, set(), _int_uniform),
    "uniform": (_RANGE, set(), _uniform),
    "q_uniform": (_RANGE, _Q, _q_uniform),
    "log_uniform": (_RANGE, set(), _log_uniform),
    "log_uniform_values": (_RANGE, set(), _log_uniform_values),
    "q_log_uniform": (_RANGE, _Q, _q_log_uniform),
    "q_log_uniform_values": (_RANGE, _Q, _q_log_uniform_values),
    "inv_log_uniform": (_RANGE, set(), _inv_log_uniform),
    "inv_log_uniform_values": (_RANGE, set(), _inv_log_uniform_values),
    "normal": (set(), _NORMAL, _normal),
    "q_normal": (set(), _NORMAL | _Q, _q_normal),
    "log_normal": (set(), _NORMAL, _log_normal),
    "q_log_normal": (set(), _NORMAL | _Q, _q_log_normal),
    "beta": (set(), _BETA, _beta),
    "q_beta": (set(), _BETA | _Q, _q_beta),
}
