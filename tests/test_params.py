"""Parameters are validated against their schema; the shipped config is valid as written."""

import pytest
import yaml

from lstm_lab.errors import LstmLabError
from lstm_lab.models.spec import ModelSpec
from lstm_lab.params import validate
from tests.conftest import REPO


def base_forecast():
    return yaml.safe_load((REPO / "conf/base/parameters_forecast.yml").read_text())["forecast"]


def test_shipped_configs_are_valid():
    p = validate("forecast", base_forecast())
    assert p.model.hidden_sizes == [50] and p.split.fractions == (0.7, 0.15, 0.15)
    etth1 = yaml.safe_load((REPO / "conf/etth1/parameters_forecast.yml").read_text())["forecast"]
    merged = base_forecast()
    for key, section in etth1.items():
        merged[key] = {**merged[key], **section} if isinstance(section, dict) else section
    p = validate("forecast", merged)
    assert p.split.rows == (8640, 11520, 14400) and p.data.target_columns == ["OT"]


def test_unknown_parameter_is_named_with_allowed_keys():
    raw = base_forecast()
    raw["training"]["lerning_rate"] = 0.1
    with pytest.raises(LstmLabError) as info:
        validate("forecast", raw)
    message = str(info.value)
    assert "\n" not in message
    assert "parameters_forecast.yml: forecast.training.lerning_rate: unknown parameter" in message
    assert "learning_rate" in message  # the allowed keys are listed


def test_wrong_value_is_named():
    raw = base_forecast()
    raw["window"]["horizon"] = 0
    with pytest.raises(LstmLabError, match=r"forecast.window.horizon: Input should be greater than or equal to 1"):
        validate("forecast", raw)
    raw = base_forecast()
    raw["split"]["rows"] = [1, 2, 3]
    with pytest.raises(LstmLabError, match="exactly one of fractions, rows, times"):
        validate("forecast", raw)


def test_model_spec_output_size():
    assert ModelSpec(hidden_sizes=[64, 32], bidirectional=True).output_size == 64
    assert ModelSpec(hidden_sizes=[16], bidirectional=True, merge="sum").output_size == 16
    with pytest.raises(ValueError):
        ModelSpec(hidden_sizes=[0])
