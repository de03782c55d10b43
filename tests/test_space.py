import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from scipy import stats

from sweeps.errors import ConfigError
from sweeps.space import QUANTILE, ParameterSpec, SearchSpace


def space(parameters: dict) -> SearchSpace:
    specs = {name: ParameterSpec.model_validate(spec) for name, spec in parameters.items()}
    return SearchSpace.from_specs(specs)


def one(spec: dict):
    (parameter,) = space({"p": spec}).parameters
    return parameter


def samples(parameters: dict, n: int, seed: int = 0) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    s = space(parameters)
    return [s.sample(study.ask()) for _ in range(n)]


@pytest.mark.parametrize(
    "spec, distribution",
    [
        ({"value": "adam"}, CategoricalDistribution(["adam"])),
        ({"distribution": "constant", "value": 3}, CategoricalDistribution([3])),
        ({"values": [16, 32]}, CategoricalDistribution([16, 32])),
        ({"distribution": "int_uniform", "min": 1, "max": 4}, IntDistribution(1, 4)),
        ({"min": 2, "max": 8}, IntDistribution(2, 8)),
        ({"distribution": "uniform", "min": 0, "max": 0.5}, FloatDistribution(0.0, 0.5)),
        ({"min": 0.5, "max": 1}, FloatDistribution(0.5, 1.0)),
        ({"distribution": "q_uniform", "min": 0, "max": 10, "q": 5}, IntDistribution(0, 10, step=5)),
        ({"distribution": "q_uniform", "min": 1, "max": 9}, IntDistribution(1, 9)),
        ({"distribution": "q_uniform", "min": 0.05, "max": 0.5, "q": 0.1}, FloatDistribution(0.1, 0.5, step=0.1)),
        ({"distribution": "log_uniform", "min": -4, "max": 0}, FloatDistribution(math.exp(-4), 1.0, log=True)),
        ({"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1}, FloatDistribution(1e-4, 0.1, log=True)),
        ({"distribution": "inv_log_uniform", "min": 0, "max": 4}, FloatDistribution(math.exp(-4), 1.0, log=True)),
        ({"distribution": "inv_log_uniform_values", "min": 1e-3, "max": 1}, FloatDistribution(1e-3, 1.0, log=True)),
    ],
)
def test_distributions_optuna_has_are_sampled_natively(spec, distribution):
    parameter = one(spec)
    assert parameter.inverse_cdf is None
    assert parameter.sampled_name == "p"
    assert parameter.distribution == distribution


@pytest.mark.parametrize(
    "spec, frozen",
    [
        ({"distribution": "normal", "mu": 2, "sigma": 3}, stats.norm(2, 3)),
        ({"distribution": "normal"}, stats.norm(0, 1)),
        ({"distribution": "log_normal", "mu": -1, "sigma": 0.5}, stats.lognorm(s=0.5, scale=math.exp(-1))),
        ({"distribution": "beta", "a": 2, "b": 5}, stats.beta(2, 5)),
    ],
)
def test_other_distributions_map_the_quantile_through_the_inverse_cdf(spec, frozen):
    parameter = one(spec)
    assert parameter.distribution == QUANTILE
    assert parameter.sampled_name == "p:quantile"
    for u in (0.01, 0.3, 0.5, 0.97):
        assert parameter.inverse_cdf(u) == pytest.approx(frozen.ppf(u))


@pytest.mark.parametrize(
    "spec, check",
    [
        ({"distribution": "q_normal", "mu": 10, "sigma": 4, "q": 2}, lambda v: isinstance(v, int) and v % 2 == 0),
        ({"distribution": "q_normal", "q": 0.5}, lambda v: isinstance(v, float) and (v / 0.5).is_integer()),
        ({"distribution": "q_log_normal", "mu": 3, "q": 1}, lambda v: isinstance(v, int) and v >= 0),
        ({"distribution": "q_log_uniform", "min": 0, "max": 5}, lambda v: isinstance(v, int) and 1 <= v <= 148),
        (
            {"distribution": "q_log_uniform_values", "min": 8, "max": 512, "q": 8},
            lambda v: v % 8 == 0 and 8 <= v <= 512,
        ),
        ({"distribution": "q_beta", "a": 2, "b": 2, "q": 0.25}, lambda v: v in (0.0, 0.25, 0.5, 0.75, 1.0)),
    ],
)
def test_quantized_distributions_round_to_multiples_of_q(spec, check):
    values = [row["p"] for row in samples({"p": spec}, 200)]
    assert all(check(v) for v in values), values[:10]
    assert len(set(values)) > 1


def test_sampled_values_follow_their_distributions():
    rows = samples(
        {
            "n": {"distribution": "normal", "mu": 5, "sigma": 2},
            "ln": {"distribution": "log_normal", "mu": 1, "sigma": 0.5},
            "b": {"distribution": "beta", "a": 2, "b": 6},
            "lu": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1},
            "w": {
                "distribution": "categorical_w_probabilities",
                "values": ["a", "b", "c"],
                "probabilities": [0.6, 0.3, 0.1],
            },
        },
        n=3000,
    )
    n = np.array([r["n"] for r in rows])
    assert n.mean() == pytest.approx(5, abs=0.15) and n.std() == pytest.approx(2, abs=0.15)
    assert np.log([r["ln"] for r in rows]).mean() == pytest.approx(1, abs=0.05)
    assert np.mean([r["b"] for r in rows]) == pytest.approx(2 / 8, abs=0.02)
    assert np.log10([r["lu"] for r in rows]).mean() == pytest.approx(-2, abs=0.1)
    shares = {v: sum(r["w"] == v for r in rows) / len(rows) for v in "abc"}
    assert shares == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1}, abs=0.03)


def test_nested_parameters_flatten_to_dotted_names():
    s = space(
        {"optimizer": {"parameters": {"lr": {"min": 0.1, "max": 1.0}, "inner": {"parameters": {"m": {"value": 1}}}}}}
    )
    assert s.names == ["optimizer.lr", "optimizer.inner.m"]


def test_conditions_chain_and_absent_parameters_are_not_sampled():
    parameters = {
        # listed before what it depends on: the space orders parents first
        "momentum": {"min": 0.0, "max": 0.99, "if": {"optimizer": "sgd"}},
        "nesterov": {"values": [True, False], "if": {"momentum": [0.0]}},
        "nesterov_damping": {"values": [0.1, 0.2], "if": {"nesterov": True}},
        "optimizer": {"values": ["sgd", "adam"]},
        "schedule": {"values": ["cos", "step"], "if": {"optimizer": ["sgd", "adam"]}},
    }
    assert space(parameters).names[0] == "optimizer"
    rows = samples(parameters, 200)
    for row in rows:
        assert ("momentum" in row) == (row["optimizer"] == "sgd")
        assert "schedule" in row
        assert "nesterov" not in row or row["momentum"] == 0.0
        assert ("nesterov_damping" in row) == (row.get("nesterov") is True)
    assert {r["optimizer"] for r in rows} == {"sgd", "adam"}


@pytest.mark.parametrize(
    "parameters, key, words",
    [
        ({"a": {"values": [1], "if": {"b": 1}}}, "parameters.a.if.b", "no such parameter"),
        ({"a": {"values": [1], "if": {"a": 1}}}, "parameters.a.if.a", "no such parameter"),
        ({"a": {"values": [1], "if": {"b": 1}}, "b": {"values": [1], "if": {"a": 1}}}, "parameters.a.if", "cycle"),
        ({"a": {"distribution": "normal", "sigma": 0}}, "parameters.a.sigma", "must be > 0"),
        ({"a": {"distribution": "beta", "a": -1}}, "parameters.a.a", "must be > 0"),
        ({"a": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0}}, "parameters.a.q", "must be > 0"),
        ({"a": {"distribution": "q_uniform", "min": 0.1, "max": 0.2, "q": 1}}, "parameters.a.q", "no multiple"),
        (
            {"a": {"distribution": "normal", "min": 0}},
            "parameters.a.min",
            "not used by distribution normal; it takes mu, sigma",
        ),
        ({"a": {"distribution": "q_log_uniform_values", "min": 0, "max": 2}}, "parameters.a.min", "> 0 on a log scale"),
        ({"a": {"values": [1, 2], "probabilities": [0.5]}}, "parameters.a.probabilities", "one probability per value"),
        ({"a": {"values": [1, 2], "probabilities": [0.5, 0.6]}}, "parameters.a.probabilities", "sum to 1"),
        ({"a": {"values": [1, 1]}}, "parameters.a.values", "lists a value twice"),
    ],
)
def test_invalid_parameters(parameters, key, words):
    with pytest.raises(ConfigError) as caught:
        space(parameters)
    assert caught.value.key == key
    assert words in str(caught.value)


def test_grid_needs_finite_unconditional_parameters():
    assert space({"a": {"values": [1, 2]}, "b": {"min": 1, "max": 3}, "c": {"value": 0}}).grid_size() == 6
    with pytest.raises(ConfigError, match="parameters.a: method grid needs a finite set"):
        space({"a": {"distribution": "normal"}}).grid()
    with pytest.raises(ConfigError, match="parameters.b.if: method grid does not take conditional"):
        space({"a": {"values": [1]}, "b": {"values": [1], "if": {"a": 1}}}).grid()


def test_choices_enumerates_small_discrete_spaces_only():
    assert space({"a": {"values": ["x", "y"]}, "b": {"min": 1, "max": 2}}).choices() == [
        {"a": "x", "b": 1},
        {"a": "x", "b": 2},
        {"a": "y", "b": 1},
        {"a": "y", "b": 2},
    ]
    assert space({"a": {"values": [1]}, "b": {"min": 0.0, "max": 1.0}}).choices() is None
    assert space({"a": {"min": 0, "max": 200}, "b": {"min": 0, "max": 200}}).choices() is None
