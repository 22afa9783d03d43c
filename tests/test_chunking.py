"""Chunked extraction of long files (``extract_chunks``, smooth_infomax/inference/chunks.py) equals a whole-file
pass; windows are bounded and aligned."""

import dataclasses
import itertools

import pytest
import torch

from smooth_infomax import ConvLayerConfig, EncoderConfig, ModuleConfig, SmoothInfoMaxEncoder
from smooth_infomax.extraction.compute import long_rows
from smooth_infomax.extraction.store import noise_rows
from smooth_infomax.geometry import output_lengths
from smooth_infomax.inference.chunks import plan_chunks, supports_chunking
from test_cli_common import randomise_batch_norm, tiny_config


def encoder_for(name):
    torch.manual_seed(3)
    if name == "tiny_offset":
        config = dataclasses.replace(tiny_config(), input_gain=3.0, input_offset=0.05)
        return randomise_batch_norm(SmoothInfoMaxEncoder(config).eval())
    return randomise_batch_norm(SmoothInfoMaxEncoder.from_preset(name).eval())


def stitched(chunks, modules):
    """Concatenate per-chunk rows; checks that each chunk starts where the previous one ended."""
    means, logvars = {m: [] for m in modules}, {m: [] for m in modules}
    for rows in chunks:
        for m, r in rows.items():
            assert r.start_frame == sum(t.shape[0] for t in means[m])
            means[m].append(r.mean)
            if r.logvar is not None:
                logvars[m].append(r.logvar)
    return {m: torch.cat(v) for m, v in means.items()}, {m: torch.cat(v) for m, v in logvars.items() if v}


@pytest.mark.parametrize("name, samples, chunk_samples", [
    ("sim", 12_000 + 37, 2_400), ("gim", 8_345, 1_600), ("cpc", 6_111, 1_000), ("tiny_offset", 20_003, 800),
])
def test_chunked_equals_whole_file(name, samples, chunk_samples):
    encoder = encoder_for(name)
    waveform = torch.randn(samples, generator=torch.Generator().manual_seed(samples)) * 0.3
    modules = list(range(encoder.num_modules))
    assert len(plan_chunks(encoder.config, encoder.geometries, samples, modules[-1], chunk_samples)) >= 4  # several
    means, logvars = stitched(encoder.extract_chunks(waveform, modules=modules, chunk_samples=chunk_samples), modules)
    for features in encoder.extract(waveform):
        torch.testing.assert_close(means[features.index], features.unpad(0), atol=1e-4, rtol=0)
        if features.logvar is not None:
            torch.testing.assert_close(logvars[features.index], features.unpad(0, "logvar"), atol=1e-4, rtol=0)


@pytest.mark.parametrize("modules", [[0], [1], [0, 3]])
def test_module_subsets_are_chunked_on_their_own_hop(modules):
    encoder = encoder_for("tiny_offset")
    waveform = torch.randn(7_777, generator=torch.Generator().manual_seed(1))
    means, _ = stitched(encoder.extract_chunks(waveform, modules=modules, chunk_samples=500), modules)
    assert sorted(means) == modules
    for features in encoder.extract(waveform, modules=modules):
        torch.testing.assert_close(means[features.index], features.unpad(0), atol=1e-4, rtol=0)


def test_one_hour_file_gets_bounded_aligned_windows():
    encoder = SmoothInfoMaxEncoder(tiny_config())
    samples, chunk = 3600 * 16_000 + 123, 30 * 16_000
    windows = plan_chunks(encoder.config, encoder.geometries, samples, 3, chunk)
    lengths = output_lengths(encoder.config, samples)
    assert len(windows) == -(-lengths[2] // 3000)  # 120 full windows and one of a single frame
    context = encoder.geometries[2].conv_receptive_field_samples + 2 * encoder.geometries[2].hop_samples
    for window in windows:
        assert window.sample_start % 160 == 0
        assert window.sample_stop - window.sample_start <= chunk + context
    for m in range(3):  # the kept frames tile [0, frames) exactly
        spans = [w.frames[m] for w in windows]
        assert spans[0][0] == 0 and spans[-1][1] == lengths[m]
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    assert windows[0].sample_start == 0 and windows[-1].sample_stop == samples


def test_architecture_without_chunking_falls_back_to_a_whole_pass():
    conv = (ConvLayerConfig(10, 5, 2, channels=8), ConvLayerConfig(8, 4, 2, channels=8))
    config = EncoderConfig(modules=(ModuleConfig(conv_layers=conv, head="mean", gru_hidden_size=8),
                                    ModuleConfig(conv_layers=(ConvLayerConfig(4, 2, 1, channels=8),))))
    encoder = SmoothInfoMaxEncoder(config).eval()
    assert not supports_chunking(config, 1) and supports_chunking(config, 0)
    waveform = torch.randn(5_000)
    means, _ = stitched(long_rows(encoder, waveform, [0, 1], 400, bf16=False), [0, 1])
    for features in encoder.extract(waveform):
        torch.testing.assert_close(means[features.index], features.unpad(0), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="cannot be computed in chunks"):
        encoder.extract_chunks(waveform, modules=[0, 1])


def test_bf16_chunks_run_and_stay_close():
    encoder = encoder_for("tiny_offset")
    waveform = torch.randn(6_000, generator=torch.Generator().manual_seed(2)) * 0.3
    means, _ = stitched(encoder.extract_chunks(waveform, modules=[2], chunk_samples=900, autocast_dtype=torch.bfloat16),
                        [2])
    torch.testing.assert_close(means[2].float(), encoder.extract(waveform, modules=2)[2].unpad(0), atol=0.1, rtol=0.1)


def test_sample_noise_does_not_depend_on_how_rows_are_split():
    whole = noise_rows(seed=42, module=1, start_frame=0, stop_frame=3000, dim=4)
    pieces = [noise_rows(42, 1, a, b, 4) for a, b in [(0, 700), (700, 2100), (2100, 3000)]]
    assert torch.equal(whole, torch.cat(pieces))
    assert not torch.equal(whole, noise_rows(43, 1, 0, 3000, 4))
    assert not torch.equal(whole, noise_rows(42, 2, 0, 3000, 4))
