"""The model and example audio shipped inside the package, as a new user meets them (offline)."""

import soundfile as sf
import torch
from click.testing import CliRunner
from safetensors import safe_open

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.cli import main
from smooth_infomax.examples import copy_examples, example_files
from smooth_infomax.extraction import load_features
from smooth_infomax.hub import DEFAULT_MODEL, shipped_models


def test_the_default_model_is_shipped_and_trained_on_real_speech():
    assert DEFAULT_MODEL == "sim-mix" and DEFAULT_MODEL in shipped_models()
    folder = shipped_models()[DEFAULT_MODEL]
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        assert weights.get_tensor("stages.0.convs.0.conv.weight").dtype == torch.float16
    encoder = SmoothInfoMaxEncoder.from_pretrained()
    assert encoder.name_or_path == DEFAULT_MODEL and encoder.config.preset == "sim" and not encoder.training
    same = SmoothInfoMaxEncoder.from_pretrained(DEFAULT_MODEL)
    assert all(torch.equal(a, b)
               for a, b in zip(encoder.state_dict().values(), same.state_dict().values(), strict=True))
    card = (folder / "README.md").read_text()
    for source in ("asterisk-core-sounds-en-g722", "CC-BY-SA-3.0", "CC-BY-3.0", "espeak-ng", "phone accuracy"):
        assert source in card, source


def test_the_shipped_models_fit_a_small_wheel():
    """Every file of every shipped model, its decoders included, under the 40 MB wheel budget."""
    total_bytes = sum(p.stat().st_size for folder in shipped_models().values() for p in folder.rglob("*")
                      if p.is_file())
    assert total_bytes < 40e6


def test_only_the_default_model_is_shipped_with_its_decoders():
    """sim-synth moved to training/models/ (tests/test_training_models.py): it no longer ships."""
    assert sorted(shipped_models()) == [DEFAULT_MODEL]
    folder = shipped_models()[DEFAULT_MODEL]
    for kind_folder in ("module-0/logmel", "module-1/logmel", "module-2/logmel", "module-2/waveform"):
        for name in ("config.json", "model.safetensors", "README.md"):
            assert (folder / "decoders" / kind_folder / name).is_file(), f"{kind_folder}/{name}"


def test_the_shipped_model_gives_finite_features_on_the_examples():
    assert_trained_features_on_an_example(SmoothInfoMaxEncoder.from_pretrained(DEFAULT_MODEL))


def assert_trained_features_on_an_example(encoder: SmoothInfoMaxEncoder) -> None:
    """Finite features of the right shape for the first example clip, with posteriors narrower than the prior."""
    audio, rate = sf.read(example_files()[0], dtype="float32")
    out = encoder.extract(audio, sample_rate=rate)
    assert out[2].mean.shape == (1, len(audio) // 160, 512)
    assert all(torch.isfinite(f.mean).all() for f in out)
    assert out[0].logvar.exp().mean() < 1.5  # trained posteriors are narrower than the prior


def test_readme_main_job_extracts_the_examples_with_the_default_model(tmp_path):
    copy_examples(tmp_path / "sim_examples")
    result = CliRunner().invoke(main, [str(tmp_path / "sim_examples"), str(tmp_path / "sim_features"), "-q"])
    assert result.exit_code == 0, result.output
    outputs = sorted((tmp_path / "sim_features").glob("*.safetensors"))
    assert len(outputs) == 3
    features, metadata = load_features(outputs[0])
    assert DEFAULT_MODEL in str(metadata)
    assert features["module2.mean"].shape[1] == 512
