"""Module decoders: reference layers and sizes, output length for every module and input length, persistence
(local and Hub sub-folder, strict), and training with a frozen encoder (bug 21)."""

from __future__ import annotations

import json
import math
import uuid

import pytest
import torch

from smooth_infomax import (
    ConvLayerConfig,
    EncoderConfig,
    ModuleConfig,
    SmoothInfoMaxEncoder,
    preset,
)
from smooth_infomax.analysis.decoder import (
    ModuleDecoder,
    decoder_config_for,
    default_subfolder,
)
from smooth_infomax.analysis.decoder_training import (
    DecoderTrainConfig,
    MelSettings,
    train_decoder,
)
from smooth_infomax.hub import LoadError
from test_cli_common import randomise_batch_norm, tiny_config


def tiny_encoder(seed: int = 0, config: EncoderConfig | None = None) -> SmoothInfoMaxEncoder:
    torch.manual_seed(seed)
    return randomise_batch_norm(SmoothInfoMaxEncoder(config or tiny_config(channels=8)).eval(), seed)


def tiny_gim_config() -> EncoderConfig:
    """Five single-layer conv modules (GIM's split), so modules 0 and 2 use mirrored, not reference, layers."""
    strides = [(10, 5, 2), (8, 4, 2), (4, 2, 2), (4, 2, 2), (4, 2, 1)]
    return EncoderConfig(modules=tuple(ModuleConfig(conv_layers=(ConvLayerConfig(k, s, p, channels=8),))
                                       for k, s, p in strides))


@pytest.mark.parametrize("module, params", [(0, 7_081_985), (1, 4_200_961), (2, 5_250_049)])
def test_reference_decoders_match_the_spec_table(module, params):
    config = decoder_config_for(preset("sim"), module)
    assert sum(p.numel() for p in ModuleDecoder(config).parameters()) == params
    assert config.hop_samples == (20, 80, 160)[module]
    # the spec's round trips: 20480 -> 1023/257/128 frames -> 20480 samples, and 10240 -> 511/129/64 -> 10240
    assert config.output_samples((1023, 257, 128)[module]) == 20480
    assert config.output_samples((511, 129, 64)[module]) == 10240


def test_gru_modules_have_no_decoder():
    with pytest.raises(ValueError, match="CNN module"):
        decoder_config_for(preset("sim"), 3)


@pytest.mark.parametrize("layout", ["sim", "gim"])
def test_decoded_length_equals_input_length_for_every_module(layout):
    encoder = tiny_encoder(config=tiny_config(channels=8) if layout == "sim" else tiny_gim_config())
    modules = [i for i, m in enumerate(encoder.config.modules) if m.conv_layers]
    for samples in (800, 3200, 4001, 8821):
        wav = torch.randn(samples) * 0.1
        out = encoder.extract(wav)
        for m in modules:
            config = decoder_config_for(encoder.config, m, hidden_channels=4)
            decoder = ModuleDecoder(config)
            features = out[m]
            decoded = decoder(features.mean.clone(), num_samples=samples)
            assert decoded.shape == (1, samples)
            # cropping/padding only trims the transposed stack's edge: it covers the input to within a frame
            natural = config.output_samples(features.mean.shape[1])
            assert abs(natural - samples) <= config.hop_samples + 8, (m, samples, natural)
            assert decoder(features.mean.clone()).shape == (1, features.mean.shape[1] * config.hop_samples)


def test_batched_decoding_zeroes_samples_past_each_length():
    encoder = tiny_encoder()
    waves = torch.randn(2, 3200) * 0.1
    lengths = torch.tensor([3200, 1600])
    out = encoder.extract(waves, lengths=lengths)[2]
    decoder = ModuleDecoder(decoder_config_for(encoder.config, 2, 4))
    decoded = decoder(out.mean.clone(), 3200, sample_lengths=lengths)
    assert decoded.shape == (2, 3200)
    assert torch.all(decoded[1, 1600:] == 0) and decoded[0, 1600:].abs().sum() > 0


def test_save_and_load_round_trip_is_strict(tmp_path):
    encoder = tiny_encoder()
    decoder = ModuleDecoder(decoder_config_for(encoder.config, 1, 4))
    decoder.save_pretrained(tmp_path / "dec")
    assert sorted(p.name for p in (tmp_path / "dec").iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = ModuleDecoder.from_pretrained(tmp_path / "dec")
    z = torch.randn(2, 5, 8)
    assert torch.equal(loaded(z), decoder.eval()(z)) and loaded.config == decoder.config
    config = json.loads((tmp_path / "dec" / "config.json").read_text())
    config["hidden_channels"] = 5
    (tmp_path / "dec" / "config.json").write_text(json.dumps(config))
    with pytest.raises(LoadError, match="wrong shapes"):
        ModuleDecoder.from_pretrained(tmp_path / "dec")
    encoder.save_pretrained(tmp_path / "enc")
    with pytest.raises(LoadError):
        ModuleDecoder.from_pretrained(tmp_path / "enc")


def test_decoder_pushed_beside_its_encoder(hub, tmp_path):
    repo_id = f"sim-team/analysis-{uuid.uuid4().hex[:8]}"
    encoder = tiny_encoder()
    decoder = ModuleDecoder(decoder_config_for(encoder.config, 2, 4))
    encoder.push_to_hub(repo_id)
    decoder.push_to_hub(repo_id)
    loaded = ModuleDecoder.from_pretrained(repo_id, subfolder=default_subfolder(2), cache_dir=tmp_path)
    z = torch.randn(1, 4, 8)
    assert torch.equal(loaded(z), decoder.eval()(z))
    again = SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path)
    assert all(torch.equal(a, b)
               for a, b in zip(again.state_dict().values(), encoder.state_dict().values(), strict=True))


@pytest.mark.slow
def test_training_keeps_the_encoder_frozen_and_out_of_the_optimiser(monkeypatch):
    encoder = tiny_encoder().train()  # a caller's encoder in train mode: training must switch it to eval
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    optimised: list[int] = []

    class RecordingAdam(torch.optim.Adam):
        def __init__(self, params, **kwargs):
            params = list(params)
            optimised.extend(id(p) for p in params)
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", RecordingAdam)
    clips = torch.randn(4, 3200) * 0.1
    config = DecoderTrainConfig(steps=40, batch_size=2, learning_rate=3e-3, seed=0)
    decoder, losses = train_decoder(encoder, clips, 2, config, hidden_channels=8)
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    assert all(torch.equal(before[k], v) for k, v in encoder.state_dict().items())  # BatchNorm stats included
    assert set(optimised) == {id(p) for p in decoder.parameters()}
    assert len(losses) == 40 and all(math.isfinite(x) for x in losses)
    assert sum(losses[-5:]) < sum(losses[:5])
    assert decoder.config.training["steps_done"] == 40 and not decoder.training


def test_mel_losses_train(tmp_path):
    encoder = tiny_encoder()
    clips = torch.randn(3, 3200) * 0.1
    mel = MelSettings(n_fft=256, hop_samples=128, n_mels=16)
    for loss in ("mel", "mse+mel"):
        config = DecoderTrainConfig(steps=2, batch_size=2, loss=loss, mel=mel, sample=False)
        _, losses = train_decoder(encoder, clips, 0, config, hidden_channels=4)
        assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    with pytest.raises(ValueError, match="too short"):
        train_decoder(encoder, clips[:, :1000], 0, DecoderTrainConfig(steps=1, loss="mel"), hidden_channels=4)
