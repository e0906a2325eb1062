"""Environments merge into base parameters key by key, except the mappings whose keys are data (label tables)."""

from __future__ import annotations

import logging

import yaml

from lstm_lab.config_loader import ProjectConfigLoader

BASE = {
    "sentiment": {"data": {"labels": {0: 0, 1: 1}, "text_column": "sentence"}},
    "forecast": {"window": {"lookback": 104, "horizon": 13}},
}


def loader(tmp_path, env_params, runtime_params=None):
    for env, params in (("base", BASE), ("mine", env_params)):
        (tmp_path / env).mkdir(exist_ok=True)
        (tmp_path / env / "parameters.yml").write_text(yaml.safe_dump(params))
    return ProjectConfigLoader(str(tmp_path), env="mine", base_env="base", default_run_env="local",
                               merge_strategy={"parameters": "soft"}, runtime_params=runtime_params or {})


def test_an_environment_replaces_the_label_table_and_says_so(tmp_path, caplog):
    env = {"sentiment": {"data": {"labels": {"neg": 0, "pos": 1}}}, "forecast": {"window": {"horizon": 24}}}
    with caplog.at_level(logging.INFO, logger="lstm_lab.config_loader"):
        params = loader(tmp_path, env)["parameters"]
    assert params["sentiment"]["data"]["labels"] == {"neg": 0, "pos": 1}  # not four labels
    assert params["sentiment"]["data"]["text_column"] == "sentence"  # the rest still merges key by key
    assert params["forecast"]["window"] == {"lookback": 104, "horizon": 24}
    assert "sentiment.data.labels replaces the base mapping" in caplog.text


def test_an_environment_that_does_not_name_the_table_keeps_base(tmp_path):
    params = loader(tmp_path, {"forecast": {"window": {"horizon": 24}}})["parameters"]
    assert params["sentiment"]["data"]["labels"] == {0: 0, 1: 1}


def test_params_on_one_label_adds_it_instead_of_replacing_the_table(tmp_path):
    runtime = {"sentiment": {"data": {"labels": {"neutral": 1}}}}
    params = loader(tmp_path, {"forecast": {"window": {"horizon": 24}}}, runtime)["parameters"]
    assert params["sentiment"]["data"]["labels"] == {0: 0, 1: 1, "neutral": 1}
