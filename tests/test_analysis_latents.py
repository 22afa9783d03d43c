"""Latent editing: traversal touches only the chosen dimensions, interpolation end points and top-k choice,
prior draws, chunked decoding and WAV writing."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from smooth_infomax.analysis.decoder import DecoderConfig, ModuleDecoder
from smooth_infomax.analysis.latents import (
    decode,
    interpolate,
    sample_prior,
    top_k_dims,
    traversal_grid,
    traverse,
    write_wavs,
)


def latents(frames: int = 6, dim: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.randn(frames, dim, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("mode", ["set", "shift"])
def test_traversal_changes_only_the_chosen_dimensions(mode):
    z = latents()
    values = torch.tensor([-2.0, 0.5, 3.0])
    out = traverse(z, [1, 7], values, mode)
    assert out.shape == (3, 6, 10)
    others = [d for d in range(10) if d not in (1, 7)]
    assert torch.equal(out[:, :, others], z[None, :, others].expand(3, -1, -1))
    for i, value in enumerate(values):
        expected = value.expand(6, 2) if mode == "set" else z[:, [1, 7]] + value
        assert torch.allclose(out[i][:, [1, 7]], expected)
    assert torch.equal(z, latents())  # the input is not modified


def test_traversal_grid_varies_one_dimension_per_row():
    z = latents()
    grid = traversal_grid(z, [0, 3, -1], [-1.0, 1.0])
    assert grid.shape == (3, 2, 6, 10)
    for row, dim in enumerate((0, 3, 9)):
        changed = (grid[row] != z[None]).any(dim=(0, 1))
        assert changed.nonzero().flatten().tolist() == [dim]
    with pytest.raises(ValueError, match="dimensions"):
        traverse(z, [10], [0.0])


def test_full_interpolation_runs_from_start_to_end():
    a, b = latents(seed=1), latents(frames=8, seed=2)
    out = interpolate(a, b, 5)
    assert out.shape == (5, 6, 10)  # cropped to the shorter utterance
    assert torch.allclose(out[0], a) and torch.allclose(out[-1], b[:6])
    assert torch.allclose(out[2], (a + b[:6]) / 2)


def test_top_k_interpolation_moves_only_the_most_different_dimensions():
    a = torch.zeros(4, 6)
    b = torch.zeros(4, 6)
    b[:, 2], b[:, 5], b[:, 0] = 3.0, -5.0, 0.1
    assert top_k_dims(a, b, 2).tolist() == [5, 2]
    out = interpolate(a, b, 3, top_k=2)
    assert torch.equal(out[:, :, [0, 1, 3, 4]], torch.zeros(3, 4, 4))
    assert torch.allclose(out[-1][:, [2, 5]], b[:, [2, 5]])
    assert torch.allclose(out[1][:, 2], torch.full((4,), 1.5))
    explicit = interpolate(a, b, 3, dims=[0])
    assert torch.allclose(explicit[-1][:, 0], b[:, 0]) and torch.equal(explicit[:, :, 1:], torch.zeros(3, 4, 5))


def test_prior_draws_are_seeded_standard_normal():
    draws = sample_prior(64, 20, 16, torch.Generator().manual_seed(3))
    again = sample_prior(64, 20, 16, torch.Generator().manual_seed(3))
    assert draws.shape == (64, 20, 16) and torch.equal(draws, again)
    assert abs(float(draws.mean())) < 0.05 and abs(float(draws.std()) - 1) < 0.05


def test_chunked_decoding_equals_one_batch():
    config = DecoderConfig(module=0, in_dim=10, hidden_channels=4, layers=((4, 2, 1, 1), (4, 4, 0, 0)), hop_samples=8)
    torch.manual_seed(0)
    decoder = ModuleDecoder(config).eval()
    z = torch.randn(7, 6, 10)
    assert torch.allclose(decode(decoder, z, 50, batch_size=3), decoder(z, 50).detach(), atol=1e-6)
    assert decode(decoder, z).shape == (7, 48)


def test_write_wavs_limits_the_peak(tmp_path):
    waves = torch.stack([torch.linspace(-2, 2, 800), 0.1 * torch.ones(800)])
    paths = write_wavs(waves, tmp_path / "out", "clip")
    assert [p.name for p in paths] == ["clip-00.wav", "clip-01.wav"]
    loud, rate = sf.read(paths[0])
    quiet, _ = sf.read(paths[1])
    assert rate == 16000 and np.abs(loud).max() == pytest.approx(0.95, abs=1e-3)
    assert quiet.max() == pytest.approx(0.1, abs=1e-3)
