from pathlib import Path

import pytest

from sweeps.config import DEFAULT_CONFIG, ConfigError, load_config, parse_config
from sweeps.storage import is_shared
from tests.conftest import SCRIPTS, report_config


def test_bundled_example_loads_with_its_defaults():
    config = load_config(DEFAULT_CONFIG)
    assert config.name == "digits-svm"
    assert config.program == (DEFAULT_CONFIG.parent / "scripts" / "train_digits.py").resolve()
    assert config.metric.goal == "maximize"
    assert config.storage == "sqlite:///sweeps.db"
    assert config.parallel == 2
    assert config.output_dir == Path("results") / "digits-svm"
    assert config.space.names == ["C", "gamma", "kernel", "degree", "coef0"]


def test_sweep_config_env_var_names_the_file(tmp_path, write_config, monkeypatch):
    path = write_config(report_config(tmp_path, name="from-env"))
    monkeypatch.setenv("SWEEP_CONFIG", str(path))
    assert load_config().name == "from-env"


def test_defaults_name_from_file_stem_and_program_relative_to_config(tmp_path, write_config):
    (tmp_path / "train.py").write_text("print('loss=1')\n")
    config = report_config(tmp_path, program="train.py", method="random", run_cap=3)
    del config["name"]
    path = write_config(config, name="my-sweep.yaml")
    loaded = load_config(path)
    assert loaded.name == "my-sweep"
    assert loaded.program == (tmp_path / "train.py").resolve()
    assert loaded.method == "random"


def test_n_trials_is_an_alias_of_run_cap(tmp_path, write_config):
    config = report_config(tmp_path, method="random", n_trials=7)
    assert load_config(write_config(config)).run_cap == 7


def test_grid_run_cap_defaults_to_grid_size(tmp_path, write_config):
    config = report_config(tmp_path, parameters={"x": {"values": [1, 2, 3]}, "k": {"min": 1, "max": 4}})
    assert load_config(write_config(config)).run_cap == 3 * 4


def test_autostart_env_var(tmp_path, write_config, monkeypatch):
    path = write_config(report_config(tmp_path))
    assert load_config(path).autostart is False
    monkeypatch.setenv("SWEEPS_AUTOSTART", "1")
    assert load_config(path).autostart is True


def test_wandb_only_keys_are_accepted_and_listed(tmp_path, write_config):
    config = report_config(
        tmp_path,
        entity="me",
        project="p",
        description="d",
        command=["${env}", "${interpreter}", "${program}", "${args}"],
        early_terminate={"type": "hyperband", "min_iter": 3},
    )
    loaded = load_config(write_config(config))
    assert loaded.ignored_keys == ["description", "entity", "project"]
    assert loaded.launch.command is None, "W&B's default command runs the program warm"
    assert loaded.early_terminate.build().__class__.__name__ == "HyperbandPruner"


LOSS = {"name": "loss", "goal": "minimize"}
TWO = [LOSS, {"name": "acc", "goal": "maximize"}]

BAD_CONFIGS = [
    # (change to a valid config, key path in the message, words in the message)
    ({"colour": "red"}, "colour", "unknown key; valid keys here: name, program"),
    ({"metric": {"goal": "minimize"}}, "metric.name", "required"),
    ({"metric": {"name": "loss", "goal": "lower"}}, "metric.goal", "'minimize' or 'maximize'"),
    ({"method": "annealing"}, "method", "'bayes', 'random', 'grid', 'tpe', 'gp', 'cmaes', 'qmc' or 'nsga2'"),
    ({"parallel": 0}, "parallel", "greater than 0"),
    ({"parallel": "two"}, "parallel", "valid integer"),
    ({"program": "missing.py"}, "program", "no such file"),
    ({"parameters": {}}, "parameters", "at least 1"),
    ({"parameters": {"lr": {"min": 1.0, "max": 0.5}}}, "parameters.lr.min", "must be less than max"),
    ({"parameters": {"lr": {"min": "abc", "max": 0.5}}}, "parameters.lr.min", "should be a number"),
    ({"parameters": {"lr": {"mni": 1}}}, "parameters.lr.mni", "unknown key; valid keys here: value, values"),
    (
        {"parameters": {"lr": {"distribution": "gaussian", "min": 0, "max": 1}}},
        "parameters.lr.distribution",
        "unknown 'gaussian'; valid: constant",
    ),
    (
        {"parameters": {"lr": {"distribution": "log_uniform_values", "min": 0, "max": 1}}},
        "parameters.lr.min",
        "must be > 0 on a log scale",
    ),
    (
        {"parameters": {"lr": {"distribution": "uniform", "min": 0}}},
        "parameters.lr.max",
        "required by distribution uniform",
    ),
    (
        {"parameters": {"lr": {"distribution": "uniform", "min": 0, "max": 1, "values": [1]}}},
        "parameters.lr.values",
        "not used by distribution uniform",
    ),
    ({"parameters": {"n": {"distribution": "int_uniform", "min": 0.5, "max": 3}}}, "parameters.n.min", "whole numbers"),
    ({"parameters": {"n": {"values": []}}}, "parameters.n.values", "at least one value"),
    ({"parameters": {"n": {"values": [1, [2, 3]]}}}, "parameters.n.values[1]", "a number, a string"),
    ({"parameters": {"n": {}}}, "parameters.n", "give one of value, values"),
    ({"parameters": {"opt": {"parameters": {"lr": {"max": 1}}}}}, "parameters.opt.parameters.lr", "give one of"),
    (
        {"method": "grid", "parameters": {"lr": {"min": 0.1, "max": 1.0}}},
        "parameters.lr",
        "method grid needs a finite set",
    ),
    ({"method": "random"}, "run_cap", "required for method 'random'"),
    ({"metric": None, "method": "bayes", "run_cap": 5}, "metric", "required for method bayes (it models the metric)"),
    ({"metric": None, "early_terminate": {"type": "median"}}, "metric", "required with early_terminate"),
    ({"metrics": [{"name": "loss"}]}, "metrics", "give metric (one objective) or metrics (several), not both"),
    ({"metric": None, "metrics": []}, "metrics", "at least 1"),
    ({"metric": None, "metrics": [{"name": "loss", "goal": "up"}]}, "metrics[0].goal", "'minimize' or 'maximize'"),
    ({"metric": None, "metrics": [{"goal": "minimize"}]}, "metrics[0].name", "required"),
    ({"metric": None, "metrics": [{"name": "a", "colour": 1}]}, "metrics[0].colour", "valid keys here: name, goal"),
    ({"metric": None, "metrics": [LOSS, LOSS]}, "metrics[1].name", "loss is already an objective"),
    ({"metric": None, "metrics": TWO, "method": "cmaes"}, "method", "cmaes optimises one objective; with several"),
    (
        {"metric": None, "metrics": TWO, "early_terminate": {"type": "median"}},
        "early_terminate",
        "a pruner follows one objective's curve",
    ),
    (
        {"metric": None, "metrics": [LOSS, {"name": "acc", "goal": "maximize", "target": 0.9}]},
        "metrics[1].target",
        "a target ends a sweep on one objective",
    ),
    ({"scheduler": {"engine": "ax"}}, "scheduler.engine", "ax is not available: Sweeps runs every sweep on Optuna"),
    ({"scheduler": {"engine": "hyperopt"}}, "scheduler.engine", "'wandb' or 'optuna'"),
    ({"scheduler": {"engine": "optuna", "num_workers": 4}}, "scheduler.num_workers", "unknown key"),
]


@pytest.mark.parametrize("change, key, words", BAD_CONFIGS, ids=[case[1] + ":" + case[2][:20] for case in BAD_CONFIGS])
def test_invalid_config_is_one_line_naming_the_key(tmp_path, write_config, change, key, words):
    config = report_config(tmp_path, program=str(SCRIPTS / "report.py"))
    config.update(change)
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(config))
    message = str(caught.value)
    assert "\n" not in message
    assert caught.value.key == key
    assert message.startswith(f"{key}: ")
    assert words in message


def test_yaml_errors_and_non_mappings_are_one_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("program: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d"):
        load_config(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(listing)
    with pytest.raises(ConfigError, match="cannot read sweep config"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("method", ["grid", "random", "qmc"])
def test_grid_random_and_qmc_run_without_a_metric(tmp_path, write_config, method):
    config = report_config(tmp_path, method=method, run_cap=3)
    del config["metric"]
    loaded = load_config(write_config(config))
    assert (loaded.metric, loaded.metric_names, loaded.directions, loaded.target) == (None, [], [], None)


@pytest.mark.parametrize("method", ["bayes", "tpe", "nsga2", "random", "grid", "qmc", "gp"])
def test_several_objectives_make_one_direction_each(tmp_path, write_config, method):
    if method == "gp":
        pytest.importorskip("torch")
    config = report_config(tmp_path, method=method, metric=None, metrics=TWO, run_cap=5)
    loaded = load_config(write_config(config))
    assert (loaded.metric_names, loaded.directions, loaded.target) == (["loss", "acc"], ["minimize", "maximize"], None)


def test_one_entry_of_metrics_is_one_objective_as_metric_is(tmp_path, write_config):
    target = {**LOSS, "target": 0.1}
    loaded = load_config(write_config(report_config(tmp_path, metric=None, metrics=[target])))
    assert (loaded.metric_names, loaded.directions, loaded.target) == (["loss"], ["minimize"], 0.1)


@pytest.mark.parametrize("engine", ["wandb", "optuna"])
def test_a_scheduler_engine_that_runs_on_optuna_is_accepted(tmp_path, write_config, engine):
    loaded = load_config(write_config(report_config(tmp_path, scheduler={"engine": engine})))
    assert loaded.scheduler.engine == engine and "scheduler" not in loaded.ignored_keys


@pytest.mark.parametrize(
    "url", ["grpc://proxy-host", "grpc://proxy-host:port", "grpc://:13000", "grpc://host:13000/db"]
)
def test_a_proxy_storage_without_host_and_port_is_one_line(tmp_path, url):
    with pytest.raises(ConfigError) as err:
        parse_config(report_config(tmp_path, storage=url), base_dir=SCRIPTS)
    assert str(err.value).startswith("storage: a gRPC proxy is grpc://host:port (sweeps-proxy prints it)")


def test_a_proxy_storage_is_taken_as_shared(tmp_path):
    config = parse_config(report_config(tmp_path, storage="grpc://proxy-host:13000"), base_dir=SCRIPTS)
    assert is_shared(config.storage)


@pytest.mark.parametrize(
    "cluster, words",
    [
        ({"ray": " "}, "cluster.ray: should be auto, ray://<head>:10001 or <head>:6379"),
        ({"ray": "auto", "nodes": 2}, "cluster.nodes: unknown key; valid keys here: ray, shared"),
        ({"shared": True}, "cluster.ray: required"),
    ],
)
def test_a_bad_cluster_is_one_line_naming_the_key(tmp_path, cluster, words):
    with pytest.raises(ConfigError) as raised:
        parse_config(report_config(tmp_path, cluster=cluster), base_dir=tmp_path)
    assert str(raised.value).startswith(words), str(raised.value)


def test_with_cloud_the_cluster_not_this_machine_bounds_parallel(tmp_path):
    from sweeps.resources import Machine

    two_cores = Machine((), "no NVIDIA driver", (0, 1))
    config = report_config(
        tmp_path, parallel=8, cluster={"ray": "auto"}, resources={"gpus_per_trial": 1, "memory_per_trial": "1GB"}
    )
    with pytest.raises(ConfigError, match="^resources.gpus_per_trial: 1 per trial, but this machine has no GPU"):
        parse_config(config, base_dir=tmp_path, machine=two_cores)
    on_cluster = parse_config(config, base_dir=tmp_path, machine=two_cores, cloud=True)
    assert on_cluster.parallel == 8 and on_cluster.ray_address == "auto"
    assert {share.memory for share in on_cluster.shares} == {10**9}, "the memory cap, kept by each trial's host"
    assert parse_config(config | {"resources": None}, base_dir=tmp_path).ray_address is None, "without --cloud"
