"""Models kept in the source tree, out of the wheel, for the evaluations that compare against them: sim-synth (the
earlier model trained only on synthetic speech; shipped in the package until it was moved to training/models/ to
keep the wheel under 40 MB with the default model's decoders)."""

from pathlib import Path

import torch
from safetensors import safe_open

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.hub import shipped_models
from test_shipped import assert_trained_features_on_an_example

SIM_SYNTH = Path(__file__).resolve().parents[1] / "training" / "models" / "sim-synth"


def test_sim_synth_loads_by_path_and_says_what_it_is():
    assert "sim-synth" not in shipped_models()
    with safe_open(str(SIM_SYNTH / "model.safetensors"), "pt") as weights:
        assert weights.get_tensor("stages.0.convs.0.conv.weight").dtype == torch.float16
    encoder = SmoothInfoMaxEncoder.from_pretrained(SIM_SYNTH)
    assert encoder.config.preset == "sim" and not encoder.training
    card = (SIM_SYNTH / "README.md").read_text()
    assert "synthetic" in card and "Not LibriSpeech" in card and "phone accuracy" in card


def test_sim_synth_gives_finite_features_on_the_examples():
    assert_trained_features_on_an_example(SmoothInfoMaxEncoder.from_pretrained(SIM_SYNTH))


def test_sim_synth_loads_by_its_relative_path_from_the_checkout(monkeypatch):
    """As the recipes and docs name it: training/models/sim-synth, from the repository root."""
    monkeypatch.chdir(SIM_SYNTH.parents[2])
    encoder = SmoothInfoMaxEncoder.from_pretrained("training/models/sim-synth")
    reference = SmoothInfoMaxEncoder.from_pretrained(SIM_SYNTH)
    assert all(torch.equal(a, b)
               for a, b in zip(encoder.state_dict().values(), reference.state_dict().values(), strict=True))
