"""The folded inference path (smooth_infomax/inference/) against the modules' own forward pass."""

import re
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.config import ConvLayerConfig
from smooth_infomax.inference import FoldedModule, SlowDtypeWarning, default_sizes_s, slow_dtype_reason
from smooth_infomax.inference.chunks import is_chunked
from smooth_infomax.inference.convs import FoldedConv, block_conv_applies, block_taps, conv1d_channels_last
from smooth_infomax.inference.pieces import conv_modules_in_pieces, piece_groups
from smooth_infomax.inputs import prepare_audio


def trained_looking(name: str) -> SmoothInfoMaxEncoder:
    """A preset encoder whose BatchNorms carry non-trivial statistics and affine parameters, so that folding them
    into the convs is actually exercised."""
    torch.manual_seed(0)
    encoder = SmoothInfoMaxEncoder.from_preset(name)
    for module in encoder.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.2, 3.0)
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.3, 0.3)
    return encoder.eval()


def clips() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return [0.1 * torch.randn(n, generator=generator) for n in (16000, 9001, 300, 4321)]


def unfolded(encoder: SmoothInfoMaxEncoder, wavs: list[torch.Tensor]):
    audio = prepare_audio(wavs, 16000, None, 16000, torch.float32, torch.device("cpu"))
    with torch.no_grad():
        return encoder.forward_features(audio.waveform, audio.lengths)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sim", "gim_sim_repo", "gim", "cpc"])
def test_extract_equals_the_modules_forward(name):
    encoder = trained_looking(name)
    wavs = clips()
    folded, reference = encoder.extract(wavs), unfolded(encoder, wavs)
    for got, want in zip(folded, reference, strict=True):
        assert torch.equal(got.lengths, want.lengths)
        assert (got.mean - want.mean).abs().max() < 1e-4 * max(1.0, want.mean.abs().max())
        if want.logvar is not None:
            assert (got.logvar - want.logvar).abs().max() < 1e-4 * max(1.0, want.logvar.abs().max())


@pytest.mark.slow
def test_bfloat16_autocast_is_close_and_skipping_logvar_keeps_means():
    encoder = trained_looking("sim")
    wavs = clips()
    reference = encoder.extract(wavs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = encoder.extract(wavs, logvar=False)
    for got, want in zip(low, reference, strict=True):
        assert got.logvar is None
        error = (got.mean.float() - want.mean).norm() / want.mean.norm()
        assert 0 < error < 1e-2
    means_only = encoder.extract(wavs, logvar=False)
    assert all(torch.equal(a.mean, b.mean) for a, b in zip(means_only, reference, strict=True))


def test_extract_warns_when_the_cpu_has_no_native_16_bit_path():
    encoder = SmoothInfoMaxEncoder.from_preset("gim")
    native = {torch.bfloat16: torch.ops.mkldnn._is_mkldnn_bf16_supported(),
              torch.float16: torch.ops.mkldnn._is_mkldnn_fp16_supported()}
    for dtype, supported in native.items():
        assert (slow_dtype_reason(dtype, torch.device("cpu")) is None) == supported
        assert slow_dtype_reason(dtype, torch.device("cuda")) is None
        with warnings.catch_warnings(record=True) as caught, torch.autocast("cpu", dtype=dtype):
            warnings.simplefilter("always")
            encoder.extract(torch.zeros(4000))
        assert any(issubclass(w.category, SlowDtypeWarning) for w in caught) != supported
    assert slow_dtype_reason(torch.float32, torch.device("cpu")) is None


@pytest.mark.slow
def test_folded_weights_follow_parameter_changes():
    encoder = trained_looking("sim")
    wav = clips()[0]
    before = encoder.extract(wav)[0].mean
    with torch.no_grad():
        encoder.stages[0].convs[1].conv.weight.mul_(2.0)
    after = encoder.extract(wav)[0].mean
    assert not torch.allclose(before, after)
    assert torch.allclose(after, unfolded(encoder, [wav])[0].mean, atol=1e-4)


@pytest.mark.slow
def test_train_mode_uses_batch_statistics_like_forward():
    encoder = trained_looking("sim").train()
    wavs = [clips()[0], clips()[0].flip(0)]
    got = encoder.extract(wavs)
    encoder_copy = trained_looking("sim").train()
    want = unfolded(encoder_copy, wavs)
    assert torch.allclose(got[1].mean, want[1].mean, atol=1e-4)


@pytest.mark.parametrize("kernel,stride,padding", [(10, 5, 2), (7, 3, 0), (3, 5, 1), (1, 1, 0)])
def test_single_channel_conv_equals_conv1d(kernel, stride, padding):
    """The first layer's shape (one input channel), as this CPU runs it: Winograd where the kernel is twice the
    stride (10, 5: the presets' first layer), else conv1d."""
    generator = torch.Generator().manual_seed(kernel)
    weight, bias = torch.randn(16, 1, kernel, generator=generator), torch.randn(16, generator=generator)
    x = torch.randn(3, 1, 1000, generator=generator)
    taps = block_taps(weight, stride) if block_conv_applies(weight, stride, torch.device("cpu")) else None
    got = FoldedConv(weight, bias, stride, padding, relu=False, taps=taps)(x.transpose(1, 2))  # channels-last
    assert torch.allclose(got.transpose(1, 2), F.conv1d(x, weight, bias, stride, padding), atol=1e-5)


@pytest.mark.parametrize("channels,kernel,stride,padding", [(8, 8, 4, 2), (5, 3, 2, 0), (4, 1, 1, 0)])
def test_conv1d_of_channels_last_frames_equals_conv1d(channels, kernel, stride, padding):
    generator = torch.Generator().manual_seed(channels)
    weight, bias = torch.randn(6, channels, kernel, generator=generator), torch.randn(6, generator=generator)
    x = torch.randn(2, channels, 200, generator=generator)
    got = conv1d_channels_last(x.transpose(1, 2).contiguous(), weight, bias, stride, padding)
    assert got.is_contiguous()
    assert torch.allclose(got.transpose(1, 2), F.conv1d(x, weight, bias, stride, padding), atol=1e-5)


@pytest.mark.parametrize("samples,kernel,stride,padding", [(200, 8, 4, 2), (203, 8, 4, 2), (101, 4, 2, 1),
                                                        (100, 4, 2, 0), (9, 4, 2, 2), (4, 4, 2, 0)])
def test_conv_as_winograd_over_blocks_equals_conv1d(samples, kernel, stride, padding):
    generator = torch.Generator().manual_seed(samples)
    weight, bias = torch.randn(6, 5, kernel, generator=generator), torch.randn(6, generator=generator)
    x = torch.randn(2, 5, samples, generator=generator)
    conv = FoldedConv(weight, bias, stride, padding, relu=False, taps=block_taps(weight, stride))
    got = conv(x.transpose(1, 2).contiguous())
    torch.testing.assert_close(got.transpose(1, 2), F.conv1d(x, weight, bias, stride, padding))


def folded_stack(channels: int, layers: list[tuple[int, int, int]]) -> tuple[FoldedModule, list]:
    """A ``FoldedModule`` of ReLU convs ``(kernel, stride, padding)`` on one input channel, as block convs (kernel
    twice the stride, as the presets'), and the conv1d weights it was made of."""
    generator = torch.Generator().manual_seed(len(layers))
    convs, weights, in_channels = [], [], 1
    for kernel, stride, padding in layers:
        weight = torch.randn(channels, in_channels, kernel, generator=generator) / in_channels
        bias = torch.randn(channels, generator=generator)
        layer = ConvLayerConfig(kernel, stride, padding, channels, relu=True)
        convs.append((FoldedConv(weight, bias, stride, padding, relu=True, taps=block_taps(weight, stride)), layer))
        weights.append((weight, bias, stride, padding))
        in_channels = channels
    return FoldedModule(tuple(convs), None, None), weights


def test_a_module_of_block_convs_equals_its_conv1d_layers_masked_to_the_lengths():
    module, weights = folded_stack(8, [(10, 5, 2), (8, 4, 2), (4, 2, 2), (4, 2, 2)])
    lengths = torch.tensor([1999, 1200, 37])
    x = torch.randn(3, 1, 1999, generator=torch.Generator().manual_seed(5))
    x = x * (torch.arange(1999) < lengths[:, None]).unsqueeze(1)
    want, want_lengths = x, lengths
    for weight, bias, stride, padding in weights:
        want = torch.relu(F.conv1d(want, weight, bias, stride, padding))
        want_lengths = (want_lengths + 2 * padding - weight.shape[-1]) // stride + 1
        want = want * (torch.arange(want.shape[-1]) < want_lengths[:, None]).unsqueeze(1)
    got, _, got_lengths = module.encode(x.transpose(1, 2).contiguous(), lengths)
    assert torch.equal(got_lengths, want_lengths)
    torch.testing.assert_close(got.transpose(1, 2), want)


def test_block_conv_is_chosen_on_every_cpu_where_the_kernel_is_twice_the_stride():
    weight, cpu = torch.zeros(4, 3, 8), torch.device("cpu")
    assert block_conv_applies(weight, 4, cpu)
    assert block_conv_applies(torch.zeros(4, 1, 10), 5, cpu)  # one input channel: the first layer
    assert not block_conv_applies(weight, 3, cpu)  # kernel not twice the stride
    assert not block_conv_applies(weight, 4, torch.device("cuda"))
    encoder = trained_looking("sim")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = encoder.inference_modules()
    for modules in (encoder.inference_modules(), low):  # float32 and bfloat16: every conv of the preset
        assert all(conv.taps is not None for module in modules for conv, _ in module.convs)


def assert_same_features(got_extraction, want_extraction) -> None:
    """Means, samples and log-variances of every module equal to float32 rounding; same lengths and shapes."""
    for got, want in zip(got_extraction, want_extraction, strict=True):
        assert got.mean.shape == want.mean.shape and torch.equal(got.lengths, want.lengths)
        assert torch.allclose(got.mean, want.mean, atol=1e-5)
        assert torch.allclose(got.sample, want.sample, atol=1e-5)
        if want.logvar is not None:
            assert torch.allclose(got.logvar, want.logvar, atol=1e-5)


def test_cpu_chunks_are_sized_in_bytes_and_gpu_chunks_in_seconds():
    assert default_sizes_s("cpu", torch.float32) == (4.0, 8.0)
    assert default_sizes_s("cpu", torch.bfloat16) == default_sizes_s("cpu", torch.float16) == (8.0, 16.0)
    assert default_sizes_s("cuda", torch.float32) == default_sizes_s("cuda", torch.bfloat16) == (30.0, 60.0)


@pytest.mark.slow
def test_a_long_clip_is_computed_in_chunks_and_equals_the_whole_pass():
    encoder = trained_looking("sim")
    wav = 0.1 * torch.randn(30000, generator=torch.Generator().manual_seed(3))
    whole = encoder.extract(wav, sample=True, generator=torch.Generator().manual_seed(0))
    assert is_chunked(encoder.config, 1, wav.shape[0], encoder.num_modules - 1, chunk_samples=4000)
    chunked = encoder.extract(wav, sample=True, generator=torch.Generator().manual_seed(0), chunk_samples=4000,
                              piece_samples=160000)
    assert_same_features(chunked, whole)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sim", "gim_sim_repo", "gim"])  # cpc: its only conv module ends in the GRU
def test_a_large_batch_computed_in_pieces_equals_the_whole_batch_pass(monkeypatch, name):
    import smooth_infomax.inference.plan as plan

    encoder = trained_looking(name)
    wavs = clips() + [0.1 * torch.randn(30000, generator=torch.Generator().manual_seed(4))]
    whole = encoder.extract(wavs, sample=True, generator=torch.Generator().manual_seed(0))
    calls = []

    def spy(*args, **kwargs):
        calls.append(args)
        return conv_modules_in_pieces(*args, **kwargs)

    monkeypatch.setattr(plan, "conv_modules_in_pieces", spy)
    # pieces of 20000 samples: the four short clips in three groups, the 30000-sample one alone in 8000-sample chunks
    pieced = encoder.extract(wavs, sample=True, generator=torch.Generator().manual_seed(0), chunk_samples=8000,
                             piece_samples=20000)
    assert len(calls) == 1
    assert_same_features(pieced, whole)
    assert piece_groups([5, 1, 9, 3, 2], 6) == [[1, 4], [3], [0], [2]]


@pytest.mark.slow
@pytest.mark.parametrize("chunk_samples,piece_samples", [(4000, 20000), (1600, 6000), (None, 12000), (8000, None)])
def test_chunk_and_piece_sizes_change_how_not_what_is_computed(chunk_samples, piece_samples):
    encoder = trained_looking("sim")
    long_clip = 0.1 * torch.randn(30000, generator=torch.Generator().manual_seed(4))
    for wavs in (clips() + [long_clip], long_clip):
        default = encoder.extract(wavs, sample_rate=16000, sample=True, generator=torch.Generator().manual_seed(0))
        sized = encoder.extract(wavs, sample_rate=16000, sample=True, generator=torch.Generator().manual_seed(0),
                                chunk_samples=chunk_samples, piece_samples=piece_samples)
        assert_same_features(sized, default)


@pytest.mark.parametrize("bad", [0, -160, 1.5, True])
def test_sizes_must_be_positive_sample_counts(bad):
    encoder = trained_looking("sim")
    with pytest.raises(ValueError, match="chunk_samples"):
        encoder.extract(clips()[0], chunk_samples=bad)
    with pytest.raises(ValueError, match="piece_samples"):
        encoder.extract(clips()[0], piece_samples=bad)


def test_the_model_and_its_inference_path_never_import_extraction():
    """The model and ``inference/`` sit below the CLI's pipeline (``extraction/``): they never import it, and no
    file reaches into the encoder's private inference helpers."""
    package = Path(__file__).resolve().parents[1] / "smooth_infomax"
    files = [package / "encoder.py", *sorted((package / "inference").glob("*.py"))]
    assert len(files) > 5
    importing = re.compile(r"^\s*(from\s+(\.+|smooth_infomax\.)(\w+\.)*extraction\b|import\s+smooth_infomax\.extraction"
                           r"|from\s+\.+\s+import\s+.*\bextraction\b)", re.M)
    for path in files:
        assert not importing.search(path.read_text(encoding="utf-8")), f"{path} imports extraction"
    private = re.compile(r"\b(?!self\b)\w+\._(chunkable|chunked_features|folded_features|folded_pass|folded_stages"
                         r"|min_input_samples|sizes_samples|folded)\b")
    for path in sorted(package.rglob("*.py")):
        assert not private.search(path.read_text(encoding="utf-8")), f"{path} uses the encoder's private names"
