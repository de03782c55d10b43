"""The search space: W&B parameter specs turned into Optuna distributions.

Each W&B distribution maps to the Optuna distribution that samples exactly the same thing, so
that Optuna's samplers model the parameter natively (a log-uniform learning rate is a
``FloatDistribution(log=True)``, not a uniform exponent). Nested ``parameters`` flatten to
dotted names (``optimizer.lr``), which is also how the script receives them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from sweeps.errors import ConfigError

if TYPE_CHECKING:
    from sweeps.config import ParameterSpec


@dataclass(frozen=True)
class Parameter:
    name: str
    distribution: BaseDistribution


class SearchSpace:
    """The flattened parameters of a sweep, in the order the config lists them."""

    def __init__(self, parameters: Sequence[Parameter]) -> None:
        self.parameters = list(parameters)

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {p.name: p.distribution for p in self.parameters}

    @classmethod
    def from_specs(cls, specs: Mapping[str, ParameterSpec], key: str = "parameters") -> SearchSpace:
        return cls(list(_flatten(specs, key, prefix="")))

    def grid(self, key: str = "parameters") -> dict[str, list[Any]]:
        """Every value of every parameter, for Optuna's ``GridSampler``."""
        grid = {}
        for p in self.parameters:
            d = p.distribution
            if isinstance(d, CategoricalDistribution):
                grid[p.name] = list(d.choices)
            elif isinstance(d, IntDistribution) and not d.log:
                grid[p.name] = list(range(d.low, d.high + 1, d.step))
            else:
                raise ConfigError(
                    f"{key}.{p.name}",
                    "method grid needs a finite set of values (values, value or int_uniform), "
                    f"not a continuous {type(d).__name__}",
                )
        return grid

    def grid_size(self, key: str = "parameters") -> int:
        return math.prod(len(values) for values in self.grid(key).values())


def _flatten(specs: Mapping[str, ParameterSpec], key: str, prefix: str):
    for name, spec in specs.items():
        here = f"{key}.{name}"
        if spec.parameters is not None:
            extra = spec.given() - {"parameters"}
            if extra:
                raise ConfigError(f"{here}.{sorted(extra)[0]}", "a nested parameters block takes no other keys")
            yield from _flatten(spec.parameters, f"{here}.parameters", prefix=f"{prefix}{name}.")
        else:
            yield Parameter(f"{prefix}{name}", _distribution(spec, here))


def _distribution(spec: ParameterSpec, key: str) -> BaseDistribution:
    given = spec.given()
    name = spec.distribution or _infer(spec, given, key)
    if name not in _DISTRIBUTIONS:
        raise ConfigError(f"{key}.distribution", f"unknown {name!r}; valid: {', '.join(_DISTRIBUTIONS)}")
    needed, build = _DISTRIBUTIONS[name]
    for field in needed:
        if field not in given:
            raise ConfigError(f"{key}.{field}", f"required by distribution {name}")
    unexpected = given - needed - {"distribution"}
    if unexpected:
        raise ConfigError(f"{key}.{sorted(unexpected)[0]}", f"not used by distribution {name}; it takes {', '.join(sorted(needed))}")
    return build(spec, key)


def _infer(spec: ParameterSpec, given: set[str], key: str) -> str:
    """W&B's rules for a parameter without ``distribution``."""
    if "value" in given:
        return "constant"
    if "values" in given:
        return "categorical"
    if {"min", "max"} <= given:
        return "int_uniform" if isinstance(spec.min, int) and isinstance(spec.max, int) else "uniform"
    raise ConfigError(key, "give one of value, values, min and max (with a distribution), or parameters")


def _constant(spec: ParameterSpec, key: str) -> BaseDistribution:
    _check_choice(spec.value, f"{key}.value")
    return CategoricalDistribution([spec.value])


def _categorical(spec: ParameterSpec, key: str) -> BaseDistribution:
    values = spec.values or []
    if not values:
        raise ConfigError(f"{key}.values", "must list at least one value")
    for i, value in enumerate(values):
        _check_choice(value, f"{key}.values[{i}]")
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(f"{key}.values", f"lists a value twice (got {values})")
    return CategoricalDistribution(values)


def _int_uniform(spec: ParameterSpec, key: str) -> BaseDistribution:
    low, high = _bounds(spec, key)
    for field, bound in (("min", low), ("max", high)):
        if not float(bound).is_integer():
            raise ConfigError(f"{key}.{field}", f"int_uniform needs whole numbers (got {bound})")
    return IntDistribution(int(low), int(high))


def _uniform(spec: ParameterSpec, key: str) -> BaseDistribution:
    low, high = _bounds(spec, key)
    return FloatDistribution(float(low), float(high))


def _log_uniform_values(spec: ParameterSpec, key: str) -> BaseDistribution:
    low, high = _bounds(spec, key)
    if low <= 0:
        raise ConfigError(f"{key}.min", f"must be > 0 on a log scale (got {low})")
    return FloatDistribution(float(low), float(high), log=True)


def _bounds(spec: ParameterSpec, key: str) -> tuple[float, float]:
    low, high = spec.min, spec.max
    assert low is not None and high is not None  # _distribution checked they were given
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ConfigError(f"{key}.min", f"min and max must be finite numbers (got {low}, {high})")
    if low >= high:
        raise ConfigError(f"{key}.min", f"must be less than max (got min={low}, max={high})")
    return low, high


def _check_choice(value: Any, key: str) -> None:
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise ConfigError(key, f"must be a number, a string, a boolean or null (got {value!r})")


_Builder = Callable[["ParameterSpec", str], BaseDistribution]

#: W&B distribution name -> (the keys it takes, how to build it).
_DISTRIBUTIONS: dict[str, tuple[set[str], _Builder]] = {
    "constant": ({"value"}, _constant),
    "categorical": ({"values"}, _categorical),
    "int_uniform": ({"min", "max"}, _int_uniform),
    "uniform": ({"min", "max"}, _uniform),
    "log_uniform_values": ({"min", "max"}, _log_uniform_values),
}
