"""save_pretrained / from_pretrained with local folders, and every way a model folder can be bad."""

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.batching import FeatureStandardizer
from smooth_infomax.card import ModelCard
from smooth_infomax.hub import LoadError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = SmoothInfoMaxEncoder.from_preset("sim").eval()
    folder = tmp_path_factory.mktemp("model")
    card = ModelCard(training_data="3 x 3 synthetic utterances", metrics={"phone accuracy (%)": 42.5})
    model.save_pretrained(folder, card)
    return model, folder


def _copy(folder, tmp_path):
    target = tmp_path / "copy"
    target.mkdir()
    for name in os.listdir(folder):
        (target / name).write_bytes((folder / name).read_bytes())
    return target


def test_round_trip_gives_identical_features(saved):
    model, folder = saved
    assert sorted(os.listdir(folder)) == ["README.md", "config.json", "model.safetensors"]
    loaded = SmoothInfoMaxEncoder.from_pretrained(folder)
    assert not loaded.training
    wav = torch.randn(5000)
    for a, b in zip(model.extract(wav, sample=True, generator=torch.Generator().manual_seed(0)),
                    loaded.extract(wav, sample=True, generator=torch.Generator().manual_seed(0)), strict=True):
        assert torch.equal(a.mean, b.mean) and torch.equal(a.sample, b.sample)
    assert loaded.config == model.config


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_saved_files_get_the_mode_the_umask_gives_every_file(saved, tmp_path, umask, mode):
    """safetensors alone would write the weights 0600, unreadable to anyone else sharing the folder."""
    model, _ = saved
    previous = os.umask(umask)
    try:
        model.save_pretrained(tmp_path / "model")
        FeatureStandardizer(4).fit(torch.randn(3, 4)).save(tmp_path / "stats.safetensors")
    finally:
        os.umask(previous)
    for path in (tmp_path / "model" / "model.safetensors", tmp_path / "model" / "config.json",
                 tmp_path / "stats.safetensors"):
        assert os.stat(path).st_mode & 0o777 == mode, path


def test_model_card_has_hub_metadata_and_results(saved):
    card = (saved[1] / "README.md").read_text()
    header = card.split("---")[1]
    assert "library_name: smooth-infomax" in header and "license: mit" in header and "- sim" in header
    assert "3 x 3 synthetic utterances" in card and "| phone accuracy (%) | 42.50 |" in card


def test_device_and_dtype(saved):
    loaded = SmoothInfoMaxEncoder.from_pretrained(saved[1], device="cpu", dtype=torch.float64)
    assert next(loaded.parameters()).dtype == torch.float64
    assert loaded.stages[0].convs[0].norm.num_batches_tracked.dtype == torch.long


def test_corrupted_weights(saved, tmp_path):
    folder = _copy(saved[1], tmp_path)
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[8:40] = b"\xff" * 32  # break the JSON header
    (folder / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(LoadError, match=r"model\.safetensors: not a valid safetensors file"):
        SmoothInfoMaxEncoder.from_pretrained(folder)


def test_truncated_weights(saved, tmp_path):
    folder = _copy(saved[1], tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(LoadError, match=r"model\.safetensors: not a valid safetensors file"):
        SmoothInfoMaxEncoder.from_pretrained(folder)


def test_weights_of_another_architecture(saved, tmp_path):
    folder = _copy(saved[1], tmp_path)
    SmoothInfoMaxEncoder.from_preset("gim").save_pretrained(tmp_path / "gim")
    (folder / "model.safetensors").write_bytes((tmp_path / "gim" / "model.safetensors").read_bytes())
    with pytest.raises(LoadError, match="missing keys.*unexpected keys"):
        SmoothInfoMaxEncoder.from_pretrained(folder)


def test_config_with_unknown_key(saved, tmp_path):
    folder = _copy(saved[1], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["attention_heads"] = 8
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match=r"config\.json.*'attention_heads'"):
        SmoothInfoMaxEncoder.from_pretrained(folder)


def test_config_with_absurd_size_is_refused_before_allocating(saved, tmp_path):
    folder = _copy(saved[1], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["modules"][0]["conv_layers"][0]["channels"] = 10**7
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match="channels = 10000000 is outside"):
        SmoothInfoMaxEncoder.from_pretrained(folder)


def test_config_from_a_newer_version(saved, tmp_path):
    folder = _copy(saved[1], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["format_version"] = 99
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match="newer than this smooth-infomax"):
        SmoothInfoMaxEncoder.from_pretrained(folder)


MARKER = "/tmp/smooth_infomax_pickle_ran"


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.safetensors"])
def test_pickle_files_are_refused_and_never_executed(saved, tmp_path, name):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    folder = _copy(saved[1], tmp_path)
    (folder / "model.safetensors").unlink()
    (folder / name).write_bytes(pickle.dumps({"weight": _Payload()}))
    with pytest.raises(LoadError, match="pickle-based files .* are never loaded"):
        SmoothInfoMaxEncoder.from_pretrained(folder)
    assert not os.path.exists(MARKER)


def test_missing_folder_and_non_model_folder(tmp_path):
    with pytest.raises(LoadError, match="not a model folder"):
        SmoothInfoMaxEncoder.from_pretrained(str(tmp_path / "nowhere"))
    with pytest.raises(LoadError, match="missing config.json, model.safetensors"):
        SmoothInfoMaxEncoder.from_pretrained(tmp_path)


@pytest.mark.slow
def test_import_has_no_side_effects():
    code = (
        "import sys, socket\n"
        "def no_net(*a, **k): raise AssertionError('network used at import')\n"
        "socket.socket.connect = no_net\n"
        "import smooth_infomax\n"
        "heavy = [m for m in ('matplotlib', 'sklearn', 'training', 'huggingface_hub', 'torchaudio', 'tensorboard') "
        "if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


def test_float16_weights_load_into_float32(saved, tmp_path):
    model, _ = saved
    model.save_pretrained(tmp_path / "half", weights_dtype=torch.float16)
    from safetensors.torch import load_file

    stored = load_file(tmp_path / "half" / "model.safetensors")
    assert stored["stages.0.convs.0.conv.weight"].dtype == torch.float16
    assert stored["stages.0.convs.0.norm.num_batches_tracked"].dtype == torch.long
    loaded = SmoothInfoMaxEncoder.from_pretrained(tmp_path / "half")
    assert next(loaded.parameters()).dtype == torch.float32
    wav = torch.randn(8000)
    for a, b in zip(model.extract(wav), loaded.extract(wav), strict=True):
        assert ((a.mean - b.mean).norm() / a.mean.norm()).item() < 1e-2
