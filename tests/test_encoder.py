"""The encoder against the reference spec (sections 1 and 2) and the extract() contract."""

import dataclasses

import numpy as np
import pytest
import torch

from smooth_infomax import SmoothInfoMaxEncoder, preset
from smooth_infomax.geometry import output_lengths

FRAMES = {  # spec 1.1: input samples -> frames after each conv layer
    20480: [4095, 1023, 512, 257, 128],
    10240: [2047, 511, 256, 129, 64],
    8821: [1764, 441, 221, 111, 55],
}


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.fixture(scope="module")
def sim():
    torch.manual_seed(0)
    return SmoothInfoMaxEncoder.from_preset("sim").eval()


@pytest.mark.parametrize("samples", sorted(FRAMES))
def test_frame_counts_match_spec(samples, sim):
    per_layer = FRAMES[samples]
    assert output_lengths(preset("gim"), samples) == per_layer + [per_layer[-1]]
    assert output_lengths(preset("sim"), samples) == [per_layer[1], per_layer[3], per_layer[4], per_layer[4]]
    out = sim.extract(torch.zeros(samples))
    assert [f.mean.shape[1] for f in out] == [per_layer[1], per_layer[3], per_layer[4], per_layer[4]]
    assert [int(f.lengths[0]) for f in out] == [per_layer[1], per_layer[3], per_layer[4], per_layer[4]]


def test_parameter_counts_match_spec():
    sim = SmoothInfoMaxEncoder.from_preset("sim")
    assert [n_params(s) for s in sim.stages] == [2_630_656, 2_625_536, 1_575_424, 591_360]
    assert n_params(sim) == 7_422_976
    no_bn = preset("sim")
    no_bn = dataclasses.replace(no_bn, modules=tuple(dataclasses.replace(m, batch_norm=False) for m in no_bn.modules))
    assert n_params(SmoothInfoMaxEncoder(no_bn)) == 7_422_976 - 5_120
    logvar = sum(n_params(s.head.logvar) for s in sim.stages if s.head is not None)
    assert logvar == 787_968
    gim = SmoothInfoMaxEncoder.from_preset("gim")
    assert [n_params(s) for s in gim.stages] == [5_632, 2_097_664, 1_049_088, 1_049_088, 1_049_088, 591_360]
    # with the InfoNCE predictors (spec 1.6): 512*K*D per module, counted from the config
    k = sim.config.loss.prediction_steps
    predictors = sum(512 * k * d for d in sim.output_dims)
    assert n_params(sim) + predictors == 16_598_016


def test_geometry_matches_spec(sim):
    out = sim.extract(torch.zeros(20480))
    assert [f.hop_samples for f in out] == [20, 80, 160, 160]
    assert [f.receptive_field_samples for f in out] == [45, 225, 465, None]
    assert [f.frame_rate_hz for f in out] == [800.0, 200.0, 100.0, 100.0]
    # frame i of module 2 covers samples [160 i - 212, 160 i + 253): its centre is 160 i + 20
    times = out[2].frame_times_s()
    assert times.shape == (128,)
    assert times[:3].tolist() == pytest.approx([20 / 16000, 180 / 16000, 340 / 16000])


def test_sample_false_returns_means(sim):
    out = sim.extract(torch.randn(8000))
    for f in out:
        assert f.sample is f.mean
    assert out[3].logvar is None and out[0].logvar is not None


def test_seeded_samples_are_reproducible(sim):
    wav = torch.randn(8000)
    draws = [sim.extract(wav, sample=True, generator=torch.Generator().manual_seed(s)) for s in (1, 1, 2)]
    assert torch.equal(draws[0][1].sample, draws[1][1].sample)
    assert not torch.equal(draws[0][1].sample, draws[2][1].sample)
    assert torch.equal(draws[0][1].mean, draws[2][1].mean)  # means never depend on the noise


def test_samples_have_the_predicted_variance(sim):
    out = sim.extract(torch.randn(16000), sample=True, generator=torch.Generator().manual_seed(0), modules=[0])
    f = out[0]
    ratio = ((f.sample - f.mean) ** 2 / f.logvar.exp()).mean().item()
    assert ratio == pytest.approx(1.0, abs=0.01)  # about 409,600 elements


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sim", "gim", "cpc"])
def test_batched_equals_unbatched(name):
    torch.manual_seed(1)
    encoder = SmoothInfoMaxEncoder.from_preset(name).eval()
    _randomise_batch_norm(encoder)
    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(500, 12000, size=4)] + [300, 100]  # the last ones: under 465 samples
    items = [torch.randn(n) for n in lengths]
    batched = encoder.extract(items)
    for i, item in enumerate(items):
        alone = encoder.extract(item)
        for a, b in zip(batched, alone, strict=True):
            assert int(a.lengths[i]) == int(b.lengths[0])
            torch.testing.assert_close(a.unpad(i), b.unpad(0), atol=1e-5, rtol=0)
            assert not a.mean[i, int(a.lengths[i]):].any()  # padding frames are zero


def _randomise_batch_norm(encoder):
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)


def test_padded_tensor_with_lengths_equals_list(sim):
    items = [torch.randn(5000), torch.randn(3000)]
    padded = torch.zeros(2, 5000)
    padded[0], padded[1, :3000] = items[0], items[1]
    a = sim.extract(padded, lengths=torch.tensor([5000, 3000]))
    b = sim.extract(items)
    for fa, fb in zip(a, b, strict=True):
        assert torch.equal(fa.lengths, fb.lengths)
        torch.testing.assert_close(fa.mean, fb.mean)


def test_too_short_item_gives_empty_frames(sim):
    out = sim.extract(torch.randn(10))
    assert [int(f.lengths[0]) for f in out] == [0, 0, 0, 0]
    assert out[2].unpad(0).shape == (0, 512)


def test_modules_selects_and_stops_early(sim):
    calls = []
    hook = sim.stages[2].register_forward_hook(lambda *a: calls.append(1))
    try:
        out = sim.extract(torch.randn(4000), modules=[1, 0])
    finally:
        hook.remove()
    assert [f.index for f in out] == [0, 1]
    assert out[1].index == 1
    assert not calls  # module 2 never ran
    assert [f.index for f in sim.extract(torch.randn(4000), modules=-1)] == [3]
    with pytest.raises(ValueError, match="module indices"):
        sim.extract(torch.randn(4000), modules=[4])
    with pytest.raises(KeyError):
        out[3]


def test_layers_is_a_deprecated_alias_of_modules(sim):
    wav = torch.randn(4000)
    with pytest.warns(DeprecationWarning, match="modules="):
        old = sim.extract(wav, layers=[1, 0])
    assert [f.index for f in old] == [0, 1]
    torch.testing.assert_close(old[1].mean, sim.extract(wav, modules=[0, 1])[1].mean, rtol=0, atol=0)
    with pytest.raises(TypeError, match="modules="):
        sim.extract(wav, modules=[0], layers=[0])
    with pytest.warns(DeprecationWarning, match="modules="):
        assert [f.index for f in sim.forward_features(wav[None], layers=[2])] == [2]
    with pytest.warns(DeprecationWarning, match="resolve_modules"):
        assert sim.resolve_layers([-1, 0]) == sim.resolve_modules([-1, 0]) == [0, 3]


def test_options_of_extract_are_keyword_only(sim):
    with pytest.raises(TypeError):
        sim.extract(torch.randn(4000), 16000)


def test_extraction_is_indexed_by_module_number_only(sim):
    out = sim.extract(torch.randn(4000), modules=[1, 2])
    assert out[2].index == 2 and out[np.int64(1)].index == 1
    assert out.modules[-1].index == 2  # the deepest module extracted, by position
    for index in (-1, -2, 0, 3, "2", 1.0, True):
        with pytest.raises(KeyError, match=r"modules? \[1, 2\]"):
            out[index]


def test_int16_numpy_and_torch_agree(sim):
    pcm = (np.random.default_rng(0).uniform(-0.5, 0.5, 6000) * 32767).astype(np.int16)
    a = sim.extract(pcm, modules=[2])[2].mean
    b = sim.extract(torch.from_numpy(pcm.astype(np.float32) / 32768), modules=[2])[2].mean
    torch.testing.assert_close(a, b)


def test_multichannel_is_downmixed(sim):
    stereo = torch.randn(2, 6000)
    a = sim.extract([stereo], modules=[2])[2].mean
    b = sim.extract(stereo.mean(0), modules=[2])[2].mean
    torch.testing.assert_close(a, b)
    c = sim.extract(stereo[None], modules=[2])[2].mean  # (batch, channels, samples)
    torch.testing.assert_close(c, b)
    with pytest.raises(ValueError, match=r"\(channels, samples\)"):
        sim.extract([stereo.T.numpy()])  # soundfile's (samples, channels) layout


def test_other_sample_rates_are_resampled(sim):
    t = torch.arange(24000) / 48000
    tone48 = torch.sin(2 * torch.pi * 440 * t)
    tone16 = torch.sin(2 * torch.pi * 440 * torch.arange(8000) / 16000)
    out = sim.extract(tone48, sample_rate=48000)
    assert out.input_sample_rate == 48000 and out.sample_rate == 16000
    assert "48000->16000" in out.resampler
    assert int(out.input_lengths[0]) == 8000
    ref = sim.extract(tone16)
    # same tone, so same features away from the edges
    torch.testing.assert_close(out[2].mean[0, 5:-5], ref[2].mean[0, 5:-5], atol=2e-2, rtol=0.05)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.tensor([0.0, float("nan"), 0.0] * 100), "NaN"),
        (torch.zeros(0), "empty"),
        ([], "empty list"),
        ("audio.wav", "numpy array"),
        (torch.zeros(2, 2, 2, 2), "must be"),
        (np.array([1, 2, 3], dtype=np.uint64), "dtype"),
    ],
)
def test_bad_input_is_a_clear_error(sim, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sim.extract(bad)


def test_bad_lengths(sim):
    with pytest.raises(ValueError, match="lengths"):
        sim.extract(torch.zeros(2, 100), lengths=torch.tensor([0.5, 1.0]))
    with pytest.raises(ValueError, match="lengths"):
        sim.extract(torch.zeros(2, 100), lengths=torch.tensor([101, 5]))


def test_extract_runs_in_inference_mode_and_honours_dtype():
    encoder = SmoothInfoMaxEncoder.from_preset("sim").eval().to(torch.float64)
    out = encoder.extract(np.random.default_rng(0).standard_normal(4000))
    assert out[0].mean.dtype == torch.float64
    assert out[0].mean.is_inference()


@pytest.mark.slow
def test_training_forward_isolates_modules():
    torch.manual_seed(0)
    encoder = SmoothInfoMaxEncoder.from_preset("sim").train()
    outputs = encoder(torch.randn(2, 20480), generator=torch.Generator().manual_seed(0))
    assert [tuple(o.context.shape) for o in outputs] == [(2, 1023, 512), (2, 257, 512), (2, 128, 512), (2, 128, 256)]
    assert tuple(outputs[3].target.shape) == (2, 128, 512)
    # context and target are two different draws of the same Gaussian
    assert not torch.allclose(outputs[0].context, outputs[0].target)
    outputs[1].context.sum().backward()
    grads = [any(p.grad is not None and p.grad.abs().sum() > 0 for p in s.parameters()) for s in encoder.stages]
    assert grads == [False, True, False, False]


def test_training_sampling_ignores_train_mode():
    encoder = SmoothInfoMaxEncoder.from_preset("sim").eval()
    a = encoder(torch.randn(1, 4000), generator=torch.Generator().manual_seed(3))
    assert not torch.allclose(a[0].context, a[0].mean)  # sampling happens in eval mode too
    out = encoder.extract(torch.randn(4000))
    assert out[0].sample is out[0].mean  # and never in extract unless asked


def test_deterministic_module_context_is_mean():
    encoder = SmoothInfoMaxEncoder.from_preset("gim_sim_repo").train()
    outputs = encoder(torch.randn(2, 8000))
    assert outputs[0].logvar is None
    assert torch.equal(outputs[0].context, outputs[0].target)


def test_device_dtype_and_a_one_line_per_module_repr():
    encoder = SmoothInfoMaxEncoder.from_preset("sim").eval()
    assert (encoder.device, encoder.dtype) == (torch.device("cpu"), torch.float32)
    assert encoder.to(torch.float64).dtype == torch.float64
    encoder = encoder.float()
    out = encoder.extract(torch.randn(2, 8000), sample_rate=16000, lengths=torch.tensor([8000, 4000]), sample=True)
    lines = repr(out).splitlines()
    assert lines[0] == "Extraction(4 modules, batch 2, 16000 Hz in, 16000 Hz run)"
    assert lines[3] == ("  module 2: mean (2, 50, 512) torch.float32, hop 160 samples, valid frames [50, 25]; "
                        "logvar, sample")
    assert lines[4].endswith("valid frames [50, 25]") and len(lines) == 5  # the GRU has no logvar or sample
    assert "tensor(" not in repr(out)
