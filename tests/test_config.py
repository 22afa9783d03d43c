import dataclasses
import json

import pytest

from smooth_infomax import PRESETS, EncoderConfig, preset
from smooth_infomax.config import FORMAT_VERSION


@pytest.mark.parametrize("name", PRESETS)
def test_preset_json_round_trip(name):
    config = preset(name)
    assert EncoderConfig.from_json(config.to_json()) == config


def test_preset_loss_settings():
    assert preset("sim").loss.prediction_steps == 10
    assert preset("sim").loss.kl_weight == 0.001
    assert preset("gim").loss.prediction_steps == 12
    assert preset("gim_sim_repo").loss.kl_weight == 0.0
    assert [m.head for m in preset("sim").modules] == ["gaussian"] * 3 + ["none"]
    assert [m.head for m in preset("gim_sim_repo").modules] == ["mean"] * 3 + ["none"]
    assert not any(m.batch_norm for m in preset("gim").modules)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'simm'"):
        preset("simm")


def _data(name="sim"):
    return json.loads(preset(name).to_json())


def test_unknown_top_level_key_is_named():
    data = _data()
    data["dropout"] = 0.1
    with pytest.raises(ValueError, match="unknown key.*'dropout'"):
        EncoderConfig.from_dict(data)


def test_unknown_nested_key_is_named_with_its_place():
    data = _data()
    data["modules"][1]["conv_layers"][0]["dilation"] = 2
    with pytest.raises(ValueError, match=r"modules\[1\]\.conv_layers\[0\].*'dilation'"):
        EncoderConfig.from_dict(data)


@pytest.mark.parametrize(
    "path, value, field",
    [
        (("modules", 0, "conv_layers", 0, "channels"), 10**9, "channels"),
        (("modules", 0, "conv_layers", 0, "kernel_size"), 0, "kernel_size"),
        (("modules", 3, "gru_hidden_size"), -1, "gru_hidden_size"),
        (("modules", 0, "head"), "laplace", "head"),
        (("loss", "kl_weight"), -1.0, "kl_weight"),
        (("loss", "prediction_steps"), "ten", "prediction_steps"),
        (("sample_rate", ), 3, "sample_rate"),
    ],
)
def test_bad_values_name_the_field(path, value, field):
    data = _data()
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=field):
        EncoderConfig.from_dict(data)


def test_absurd_total_size_rejected_before_allocation():
    data = _data()
    for layer in data["modules"][0]["conv_layers"]:
        layer["channels"] = 8192
    data["modules"][0]["conv_layers"] = data["modules"][0]["conv_layers"] * 32
    with pytest.raises(ValueError, match="parameters"):
        EncoderConfig.from_dict(data)


def test_newer_format_version_refused():
    data = _data()
    data["format_version"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="newer.*upgrade"):
        EncoderConfig.from_dict(data)


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        preset("sim").preset = "x"


def test_invalid_json_text():
    with pytest.raises(ValueError, match="not valid JSON"):
        EncoderConfig.from_json("{not json")
