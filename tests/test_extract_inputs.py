"""The input contract of ``extract`` (docs/extract.md, "Inputs").

Every input shape from 0-D to 4-D, in both axis orders, numpy and torch, int16/int32/float32/float64, with and
without ``lengths`` and ``sample_rate``, is either computed exactly as its documented float32 ``(batch, samples)``
equivalent or refused with a message naming the expected layout: none gives silently different features.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
import soundfile as sf
import torch

from smooth_infomax import ConvLayerConfig, EncoderConfig, ModuleConfig, SmoothInfoMaxEncoder

BATCH, CHANNELS, SAMPLES, SHORT = 2, 2, 1600, 1300  # 0.1 s at 16 kHz; a ragged list's second item is SHORT long
LENGTHS = [SAMPLES, SHORT]
BATCH_LAYOUT = r"\(batch, samples\)"
MULTI_LAYOUT = r"\(batch, channels, samples\)"
ITEM_LAYOUT = r"\(channels, samples\)"


@pytest.fixture(scope="module")
def encoder() -> SmoothInfoMaxEncoder:
    """The ``sim`` layout (3 Gaussian conv modules and a GRU) with 16 channels and trained-looking BatchNorm
    statistics: seconds for the whole table."""
    torch.manual_seed(0)
    layers = [ConvLayerConfig(k, s, p, channels=16) for k, s, p in [(10, 5, 2), (8, 4, 2), (4, 2, 2), (4, 2, 2),
                                                                     (4, 2, 1)]]
    convs = tuple(ModuleConfig(conv_layers=tuple(g), batch_norm=True, head="gaussian")
                  for g in (layers[0:2], layers[2:4], layers[4:5]))
    encoder = SmoothInfoMaxEncoder(EncoderConfig(modules=convs + (ModuleConfig(gru_hidden_size=8),))).eval()
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return encoder


def source(dtype: str) -> np.ndarray:
    """``(batch, channels, samples)`` audio stored as ``dtype``."""
    rng = np.random.default_rng(0)
    shape = (BATCH, CHANNELS, SAMPLES)
    if dtype == "int16":
        return rng.integers(-20_000, 20_000, shape).astype(np.int16)
    if dtype == "int32":
        return rng.integers(-2**30, 2**30, shape).astype(np.int32)
    return rng.uniform(-0.5, 0.5, shape).astype(dtype)


def as_float32(x: np.ndarray) -> np.ndarray:
    """The documented scaling: int16 / 2^15, int32 / 2^31, floats cast to float32."""
    scale = {"int16": 2.0**15, "int32": 2.0**31}.get(x.dtype.name, 1.0)
    return x.astype(np.float32) / np.float32(scale)


def mono(x: np.ndarray) -> np.ndarray:
    return x[:, 0]


def downmix(x: np.ndarray) -> np.ndarray:
    return x.mean(axis=1, dtype=np.float32)  # two channels: (a + b) / 2, exact in any summation order


def ragged(items: np.ndarray) -> list[np.ndarray]:
    return [items[0], items[1][..., :SHORT]]


@dataclass(frozen=True)
class Case:
    make: Callable  # (batch, channels, samples) source -> what the caller passes (numpy arrays)
    equivalent: Callable | None = None  # float32 source -> the (batch, samples) float32 input it must equal
    refusal: str = ""  # what the error must name
    lengths: list[int] | None = None  # the lengths an array case is given; None: a list (lengths refused)


CASES = {
    "0-D": Case(lambda x: x[0, 0, 0], refusal=r"\(samples,\)"),
    "1-D (samples,)": Case(lambda x: x[0, 0], lambda f: f[:1, 0], lengths=[SHORT]),
    "2-D (batch, samples)": Case(mono, mono, lengths=LENGTHS),
    "2-D (samples, batch)": Case(lambda x: mono(x).T, refusal=BATCH_LAYOUT),
    "2-D (samples, channels) of one item": Case(lambda x: x[0].T, refusal=BATCH_LAYOUT),
    "3-D (batch, channels, samples)": Case(lambda x: x, downmix, lengths=LENGTHS),
    "3-D (batch, 1, samples)": Case(lambda x: x[:, :1], mono, lengths=LENGTHS),
    "3-D (batch, samples, channels)": Case(lambda x: x.transpose(0, 2, 1), refusal=MULTI_LAYOUT),
    "3-D (1, samples, channels)": Case(lambda x: x[:1].transpose(0, 2, 1), refusal=MULTI_LAYOUT),
    "3-D (samples, channels, batch)": Case(lambda x: x.transpose(2, 1, 0), refusal=MULTI_LAYOUT),
    "4-D (1, batch, channels, samples)": Case(lambda x: x[None], refusal=MULTI_LAYOUT),
    "4-D (1, batch, samples, channels)": Case(lambda x: x.transpose(0, 2, 1)[None], refusal=MULTI_LAYOUT),
    "list of (samples,)": Case(lambda x: ragged(mono(x)), mono),
    "list of (channels, samples)": Case(ragged, downmix),
    "list of (1, samples)": Case(lambda x: ragged(x[:, :1]), mono),
    "list of (samples, channels)": Case(lambda x: [item.T for item in ragged(x)], refusal=ITEM_LAYOUT),
    "list of 0-D": Case(lambda x: list(x[0, 0, :3]), refusal=r"\(samples,\)"),
    "list of 3-D": Case(lambda x: [x], refusal=ITEM_LAYOUT),
}


def to_library(wav, library: str):
    """numpy arrays as ``library`` arrays (0-D included), lists item by item."""
    if isinstance(wav, list):
        return [to_library(item, library) for item in wav]
    wav = np.array(wav, order="C")  # not ascontiguousarray: it turns 0-D into (1,)
    return torch.from_numpy(wav) if library == "torch" else wav


def extract(encoder, wav, rate: int | None, lengths):
    """``extract`` that checks the sample-rate warning: given when ``rate`` is None, never otherwise."""
    if rate is None:
        with pytest.warns(UserWarning, match="sample_rate"):
            return encoder.extract(wav, lengths=lengths)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*sample_rate")
        return encoder.extract(wav, sample_rate=rate, lengths=lengths)


def assert_identical(got, want) -> None:
    assert torch.equal(got.input_lengths, want.input_lengths)
    assert (got.input_sample_rate, got.resampler) == (want.input_sample_rate, want.resampler)
    for a, b in zip(got, want, strict=True):
        assert torch.equal(a.lengths, b.lengths)
        assert torch.equal(a.mean, b.mean)
        assert torch.equal(a.logvar, b.logvar) if b.logvar is not None else a.logvar is None


@pytest.mark.parametrize("rate", [None, 16000, 22050])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["no-lengths", "lengths"])
@pytest.mark.parametrize("dtype", ["int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("library", ["numpy", "torch"])
@pytest.mark.parametrize("name", list(CASES))
def test_every_input_is_its_documented_equivalent_or_refused(encoder, name, library, dtype, with_lengths, rate):
    case, x = CASES[name], source(dtype)
    wav = to_library(case.make(x), library)
    is_list = case.equivalent is not None and case.lengths is None
    lengths = (LENGTHS if is_list else case.lengths) if with_lengths else None
    refusal = case.refusal or (r"lengths .*\(batch, samples\)" if is_list and with_lengths else "")
    if refusal:
        with pytest.raises(ValueError, match=refusal):
            encoder.extract(wav, sample_rate=rate, lengths=lengths)
        return
    got = extract(encoder, wav, rate, lengths)
    want_lengths = LENGTHS if is_list else lengths
    canonical = torch.from_numpy(np.ascontiguousarray(case.equivalent(as_float32(x))))
    assert_identical(got, encoder.extract(canonical, sample_rate=rate or 16000, lengths=want_lengths))


# --- hostile and ambiguous inputs -------------------------------------------------------------------------------

def test_a_soundfile_stereo_array_is_refused_with_the_layout_to_use(encoder, tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.random.default_rng(1).uniform(-0.5, 0.5, (3000, 2)), 16000)
    audio, rate = sf.read(path, dtype="float32")  # (samples, channels)
    for wav in (audio, torch.from_numpy(audio)):
        with pytest.raises(ValueError, match=r"\(samples, channels\).*\(batch, samples\).*audio\.T"):
            encoder.extract(wav, sample_rate=rate)
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\)"):
        encoder.extract(audio[None], sample_rate=rate)  # (1, samples, channels): read as 3000 channels before


def test_a_soundfile_stereo_file_passed_as_documented_equals_the_cli_downmix(encoder, tmp_path):
    """``[audio.T]`` and ``audio.T[None]`` see bit for bit the waveform ``sim-extract`` decodes (float samples: the
    channel sum's order matters from 7 channels on; int16 samples: the scaling)."""
    from smooth_infomax.extraction.audio_io import decode

    for channels in (2, 3, 8):
        for subtype in ("FLOAT", "PCM_16"):
            path = tmp_path / f"{channels}-{subtype}.wav"
            sf.write(path, np.random.default_rng(channels).uniform(-0.9, 0.9, (2500, channels)), 16000, subtype)
            cli = encoder.extract(decode(path).waveform, sample_rate=16000)
            audio, rate = sf.read(path, dtype="float32")
            wavs = [[audio.T], audio.T[None], [torch.from_numpy(audio.T)]]
            if subtype == "PCM_16":
                pcm, _ = sf.read(path, dtype="int16")
                wavs += [[torch.from_numpy(pcm.T)], pcm.T[None]]
            for wav in wavs:
                assert_identical(encoder.extract(wav, sample_rate=rate), cli)


def test_a_stereo_clip_as_2d_is_a_batch_of_two(encoder):
    """2-D is always (batch, samples), even (2, samples): the documented contract, not a guess."""
    stereo = torch.rand(2, 2000) - 0.5
    out = encoder.extract(stereo, sample_rate=16000)
    assert out.input_lengths.tolist() == [2000, 2000] and out[0].mean.shape[0] == 2


def test_omitted_sample_rate_warns_and_means_16khz(encoder):
    wav = torch.rand(1600) - 0.5
    with pytest.warns(UserWarning, match=r"sample_rate.*16000"):
        implicit = encoder.extract(wav)
    assert implicit.input_sample_rate == 16000 and implicit.resampler == ""
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*sample_rate")
        assert_identical(implicit, encoder.extract(wav, sample_rate=16000))
        assert encoder.extract(wav, sample_rate=np.int64(22050)).input_sample_rate == 22050


@pytest.mark.parametrize("rate", [1, 100, 3999, 384_001, 10**9, 0, -16000, 16000.5, True, "16000"])
def test_absurd_sample_rates_are_refused_before_anything_is_allocated(encoder, monkeypatch, rate):
    import torchaudio.functional

    import smooth_infomax.inputs as inputs

    def must_not_run(*args, **kwargs):
        raise AssertionError("input processed before the sample rate was checked")

    monkeypatch.setattr(torchaudio.functional, "resample", must_not_run)
    monkeypatch.setattr(inputs, "_as_items", must_not_run)
    with pytest.raises((ValueError, TypeError), match=r"sample_rate.*4000.*384000|sample_rate must be an integer"):
        encoder.extract(torch.zeros(40), sample_rate=rate)


@pytest.mark.parametrize("rate", [4000, 384_000])
def test_the_extreme_allowed_rates_work(encoder, rate):
    out = encoder.extract(torch.rand(rate // 10) - 0.5, sample_rate=rate)
    assert int(out.input_lengths[0]) == 1600


@pytest.mark.parametrize("wav, match", [
    (torch.zeros(0, 16000), r"empty batch.*\(batch, samples\)"),
    (np.zeros((0, 16000), np.float32), r"empty batch.*\(batch, samples\)"),
    (torch.zeros(0, 2, 16000), r"empty batch.*\(batch, channels, samples\)"),
    (torch.zeros(2, 0, 16000), r"0 channels.*\(batch, channels, samples\)"),
    ([torch.zeros(0, 16000)], r"0 channels.*\(channels, samples\)"),
    (torch.zeros(0), r"empty"),
    (torch.zeros(2, 0), r"empty"),
])
def test_an_empty_batch_is_a_clear_error(encoder, wav, match):
    with pytest.raises(ValueError, match=match):
        encoder.extract(wav, sample_rate=16000)


@pytest.mark.slow
@pytest.mark.parametrize("items", [1, 4000, 20000])
def test_any_batch_size_works(encoder, items):
    """Tiny items in batches of any size: 4,000 items shorter than the first layer's 41-sample minimum overflowed
    the stack, as a group padded to that minimum was larger than a piece and was split into itself."""
    generator = torch.Generator().manual_seed(items)
    lengths = torch.randint(1, 31, (items,), generator=generator)
    wavs = [torch.rand(int(n), generator=generator) - 0.5 for n in lengths]
    out = encoder.extract(wavs, sample_rate=16000)
    assert out[3].mean.shape[0] == items and torch.equal(out.input_lengths, lengths)
    for i in {0, items // 2, items - 1}:
        alone = encoder.extract(wavs[i], sample_rate=16000)
        for a, b in zip(out, alone, strict=True):
            assert int(a.lengths[i]) == int(b.lengths[0])
            torch.testing.assert_close(a.unpad(i), b.unpad(0), atol=1e-5, rtol=0)


@pytest.mark.slow
def test_a_large_padded_batch_of_tiny_items_works(encoder):
    lengths = torch.randint(1, 31, (4000,), generator=torch.Generator().manual_seed(0))
    out = encoder.extract(torch.rand(4000, 100) - 0.5, sample_rate=16000, lengths=lengths)
    assert out[3].mean.shape[0] == 4000 and torch.equal(out.input_lengths, lengths)
