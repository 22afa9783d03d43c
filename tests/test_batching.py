"""``collate_audio`` (clips at any rates -> a padded 16 kHz batch that ``forward_features`` reads as ``extract``
does) and ``FeatureStandardizer`` (fitted over valid frames only, saved as safetensors)."""

from functools import partial

import numpy as np
import pytest
import torch
import torchaudio
from safetensors import safe_open
from safetensors.torch import load_model, save_file, save_model

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.batching import AudioBatch, FeatureStandardizer, collate_audio
from test_cli_common import randomise_batch_norm, tiny_config


def _clips(seconds, rate, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(round(s * rate)) * 0.1).astype(np.float32) for s in seconds]


@pytest.fixture(scope="module")
def encoder():
    """A SIM-shaped encoder with few channels (3 Gaussian conv modules + a GRU), BatchNorm statistics randomised."""
    torch.manual_seed(0)
    return randomise_batch_norm(SmoothInfoMaxEncoder(tiny_config()).eval())


def test_collate_resamples_pads_and_feeds_forward_features_as_extract(encoder):
    clips = _clips([0.31, 0.5, 0.17], 22050)
    waveform, lengths = collate_audio(clips, 22050)
    expected = [torchaudio.functional.resample(torch.from_numpy(c), 22050, 16000) for c in clips]
    assert waveform.dtype == torch.float32 and lengths.dtype == torch.long
    assert lengths.tolist() == [e.shape[0] for e in expected] and waveform.shape == (3, max(lengths.tolist()))
    for row, e in enumerate(expected):
        torch.testing.assert_close(waveform[row, : e.shape[0]], e, atol=0, rtol=0)
        assert not waveform[row, e.shape[0]:].any()
    with torch.no_grad():
        trained = encoder.forward_features(waveform, lengths)
    extracted = encoder.extract(clips, sample_rate=22050)
    assert extracted.input_lengths.tolist() == lengths.tolist()
    for got, want in zip(trained, extracted, strict=True):
        assert got.lengths.tolist() == want.lengths.tolist()
        for row in range(3):
            torch.testing.assert_close(got.unpad(row), want.unpad(row), atol=1e-4, rtol=0)


def test_rates_per_item_equal_collating_each_alone():
    clips = [*_clips([0.2], 16000), *_clips([0.3], 44100, seed=1), *_clips([0.25], 8000, seed=2)]
    batch = collate_audio(clips, [16000, 44100, 8000])
    for row, (clip, rate) in enumerate(zip(clips, [16000, 44100, 8000], strict=True)):
        alone = collate_audio([torch.from_numpy(clip)], rate)
        assert int(batch.lengths[row]) == int(alone.lengths[0])
        torch.testing.assert_close(batch.waveform[row, : alone.lengths[0]], alone.waveform[0], atol=0, rtol=0)


def test_int16_is_scaled_and_a_dataloader_can_use_it():
    clips = [np.array([16384, -32768, 0] * 40, dtype=np.int16), np.array([8192] * 50, dtype=np.int16)]
    loader = torch.utils.data.DataLoader(clips, batch_size=2, collate_fn=partial(collate_audio, sample_rate_hz=16000))
    batch = next(iter(loader))
    assert isinstance(batch, AudioBatch) and batch.lengths.tolist() == [120, 50]
    assert batch.waveform[0, :3].tolist() == [0.5, -1.0, 0.0] and batch.waveform[1, 49] == 0.25
    assert not batch.waveform[1, 50:].any()


@pytest.mark.parametrize("items, rate, error, words", [
    ([np.zeros((8000, 2), np.float32)], 16000, ValueError, ["(samples,)", "audio.mean(axis=1)", "(8000, 2)"]),
    ([torch.zeros(1, 8000)], 16000, ValueError, ["(samples,)", "wav.mean(0)"]),
    (np.zeros((2, 8000), np.float32), 16000, ValueError, ["ambiguous", "list of (samples,) clips"]),
    (torch.zeros(8000), 16000, ValueError, ["[clip]"]),
    ([], 16000, ValueError, ["empty"]),
    ([np.zeros(800, np.float32)] * 2, [16000], ValueError, ["1 rates for 2 items"]),
    ([np.zeros(800, np.float32)], 1, ValueError, ["between 4000 and 384000"]),
    ([np.zeros(800, np.float32)], 16000.0, TypeError, ["integer"]),
    ([[0.0] * 800], 16000, TypeError, ["numpy array or a torch tensor"]),
    ([np.zeros(0, np.float32)], 16000, ValueError, ["empty"]),
    ([np.full(800, np.nan, np.float32)], 16000, ValueError, ["NaN"]),
])
def test_ambiguous_or_bad_input_is_refused_naming_the_layout(items, rate, error, words):
    with pytest.raises(error) as raised:
        collate_audio(items, rate)
    for word in words:
        assert word in str(raised.value)


def _padded_features(seed=0):
    """``(3, 7, 4)`` features with junk (1e6) past ``lengths`` [7, 3, 5], and the valid frames ``(15, 4)``."""
    generator = torch.Generator().manual_seed(seed)
    features = torch.randn(3, 7, 4, generator=generator) * torch.tensor([1.0, 3.0, 0.5, 2.0]) + 5
    lengths = torch.tensor([7, 3, 5])
    valid = torch.cat([features[i, :n] for i, n in enumerate(lengths.tolist())])
    for i, n in enumerate(lengths.tolist()):
        features[i, n:] = 1e6
    return features, lengths, valid


def test_standardizer_fits_valid_frames_only_and_keeps_padding_zero():
    features, lengths, valid = _padded_features()
    standardizer = FeatureStandardizer(4).fit(features, lengths)
    assert int(standardizer.frames) == 15
    torch.testing.assert_close(standardizer.mean, valid.mean(0), atol=1e-5, rtol=0)
    torch.testing.assert_close(standardizer.var, valid.var(0, correction=0), atol=1e-5, rtol=0)
    out = standardizer(features, lengths)
    got = torch.cat([out[i, :n] for i, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(got.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(got.std(0, correction=0), torch.ones(4), atol=1e-5, rtol=0)
    assert not out[1, 3:].any() and not out[2, 5:].any()
    torch.testing.assert_close(FeatureStandardizer(4).fit(valid).mean, standardizer.mean)  # (frames, dim) input


def test_partial_fit_over_batches_equals_one_fit():
    first, first_lengths, valid_a = _padded_features(0)
    second, second_lengths, valid_b = _padded_features(1)
    streamed = FeatureStandardizer(4).partial_fit(first, first_lengths).partial_fit(second, second_lengths)
    once = FeatureStandardizer(4).fit(torch.cat([valid_a, valid_b]))
    assert int(streamed.frames) == int(once.frames) == 30
    torch.testing.assert_close(streamed.mean, once.mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(streamed.var, once.var, atol=1e-6, rtol=0)
    refit = FeatureStandardizer(4).fit(first, first_lengths).fit(second, second_lengths)  # fit forgets
    torch.testing.assert_close(refit.mean, valid_b.mean(0), atol=1e-5, rtol=0)


def test_save_load_is_safetensors_and_round_trips(tmp_path):
    features, lengths, _ = _padded_features()
    standardizer = FeatureStandardizer(4).fit(features, lengths)
    standardizer.save(tmp_path / "standardizer.safetensors")
    with safe_open(str(tmp_path / "standardizer.safetensors"), framework="pt") as handle:
        assert sorted(handle.keys()) == ["frames", "mean", "var"]
        assert handle.metadata()["format"] == "smooth_infomax.FeatureStandardizer"
    loaded = FeatureStandardizer.load(tmp_path / "standardizer.safetensors")
    assert loaded.dim == 4 and int(loaded.frames) == 15
    torch.testing.assert_close(loaded(features, lengths), standardizer(features, lengths), atol=0, rtol=0)
    save_file({"mean": torch.zeros(4)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="not a FeatureStandardizer file"):
        FeatureStandardizer.load(tmp_path / "other.safetensors")


def test_a_head_carries_its_statistics_and_gradients_flow(tmp_path):
    features, lengths, _ = _padded_features()
    torch.manual_seed(0)
    head = torch.nn.Sequential(FeatureStandardizer(4).fit(features, lengths), torch.nn.Linear(4, 2))
    save_model(head, str(tmp_path / "head.safetensors"))
    fresh = torch.nn.Sequential(FeatureStandardizer(4), torch.nn.Linear(4, 2))
    load_model(fresh, str(tmp_path / "head.safetensors"))
    torch.testing.assert_close(fresh(features), head(features), atol=0, rtol=0)
    wanting_grad = features.clone().requires_grad_(True)
    head[0](wanting_grad, lengths).sum().backward()
    assert wanting_grad.grad is not None and not wanting_grad.grad[1, 3:].any()


def test_standardizer_refusals_and_zero_variance():
    with pytest.raises(RuntimeError, match="not fitted"):
        FeatureStandardizer(4)(torch.zeros(1, 2, 4))
    constant = FeatureStandardizer(2).fit(torch.tensor([[1.0, 5.0], [3.0, 5.0]]))
    torch.testing.assert_close(constant(torch.tensor([[3.0, 6.0]])), torch.tensor([[1.0, 1.0]]))  # dim 1 centred only
    with pytest.raises(ValueError, match="dim 3"):
        constant(torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"\(batch, frames, 2\) or \(frames, 2\)"):
        FeatureStandardizer(2).fit(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="integer frame counts"):
        FeatureStandardizer(2).fit(torch.zeros(2, 3, 2), torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="only for a"):
        FeatureStandardizer(2).fit(torch.zeros(3, 2), torch.tensor([3]))
    with pytest.raises(ValueError, match="no valid frame"):
        FeatureStandardizer(2).fit(torch.zeros(2, 3, 2), torch.tensor([0, 0]))
