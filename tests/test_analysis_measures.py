"""The measures on constructed inputs with known answers: weight concentration, posterior statistics, Gaussian and
KDE total correlation, the vectorised ICS against a per-pair loop, kNN accuracy and t-SNE."""

from __future__ import annotations

import math

import pytest
import torch

from smooth_infomax.analysis.concentration import (
    participation_ratio,
    top_k_share,
    weight_concentration,
    weight_density,
)
from smooth_infomax.analysis.decoder import DecoderConfig, ModuleDecoder
from smooth_infomax.analysis.embedding import knn_accuracy, tsne_embedding
from smooth_infomax.analysis.ics import (
    choose_pairs,
    interpolation_contribution_score,
    swap_top_k,
)
from smooth_infomax.analysis.information import (
    gaussian_tc_bias,
    gaussian_tc_from_covariance,
    gaussian_total_correlation,
    kde_total_correlation,
    posterior_stats,
)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- concentration -------------------------------------------------------------------------------------------------

def test_one_hot_rows_are_fully_concentrated():
    weights = torch.zeros(5, 64)
    weights[torch.arange(5), torch.tensor([3, 9, 9, 40, 63])] = torch.tensor([2.0, -1.0, 0.5, 7.0, -3.0])
    result = weight_concentration(weights, top_k=(1, 4))
    assert result.row_top_k_share == pytest.approx((1.0, 1.0))
    assert result.row_participation_ratio == pytest.approx(1.0)
    assert result.row_participation_fraction == pytest.approx(1 / 64)
    # four dimensions are used overall, with importances 2, sqrt(1.25), 7, 3
    importance = torch.tensor([2.0, 1.25 ** 0.5, 7.0, 3.0])
    assert result.dim_top_k_share == pytest.approx((7.0 / float(importance.sum()), 1.0))
    expected = float((importance ** 2).sum() ** 2 / (importance ** 4).sum())
    assert result.dim_participation_ratio == pytest.approx(expected)


def test_uniform_rows_are_spread_over_every_dimension():
    weights = torch.ones(3, 32) * torch.tensor([[1.0], [-2.0], [0.5]])
    result = weight_concentration(weights, top_k=(1, 8, 32, 100))
    assert result.row_top_k_share == pytest.approx((1 / 32, 8 / 32, 1.0, 1.0))
    assert result.row_participation_ratio == pytest.approx(32.0)
    assert result.dim_participation_fraction == pytest.approx(1.0)


def test_row_measures_on_a_known_row_and_feature_scaling():
    row = torch.tensor([[3.0, -1.0, 0.0, 0.0]])
    assert float(top_k_share(row, 1)[0]) == pytest.approx(0.75)
    assert float(participation_ratio(row)[0]) == pytest.approx(100 / 82)
    assert float(participation_ratio(torch.zeros(1, 4))[0]) == 0.0
    # a weight of 3 on a feature with std 1/3 moves the logit as much as a weight of 1 on a unit feature
    scaled = weight_concentration(row, top_k=(1,), feature_std=torch.tensor([1 / 3, 1.0, 1.0, 1.0]))
    assert scaled.row_top_k_share[0] == pytest.approx(0.5)


def test_weight_density_is_a_density_on_minus_one_to_one():
    weights = torch.randn(40, 128, generator=generator())
    grid, density = weight_density(weights, points=401)
    assert grid[0] == -1 and grid[-1] == 1
    mass = float(torch.trapezoid(density, grid))
    assert 0.95 < mass <= 1.001
    flipped = weight_density(-weights, points=401)[1]
    assert torch.allclose(flipped, density.flip(0), atol=1e-9)  # 0 stays at 0, so negating mirrors the curve


# --- posterior statistics and total correlation ------------------------------------------------------------------

def test_posterior_stats_kl_and_active_units():
    mean = torch.zeros(2, 5, 4)
    mean[:, :, 1] = 1.0  # KL 0.5, but constant: not active
    mean[:, :, 2] = torch.randn(2, 5, generator=generator())  # varies: active
    logvar = torch.zeros(2, 5, 4)
    mean[1, 3:], logvar[1, 3:] = 100.0, 50.0  # padding past the valid length is ignored
    stats = posterior_stats(mean, logvar, torch.tensor([5, 3]))
    assert stats.kl_per_dim[[0, 3]].tolist() == [0.0, 0.0]
    assert float(stats.kl_per_dim[1]) == pytest.approx(0.5)
    assert stats.active.tolist() == [False, False, True, False] and stats.n_active == 1
    assert posterior_stats(mean, None).kl_per_dim is None


def test_gaussian_tc_is_zero_for_independent_data():
    for n, dim in ((3000, 8), (1500, 300)):
        result = gaussian_total_correlation(torch.randn(n, dim, generator=generator(n)))
        assert result.raw > 0 and abs(result.value) < 0.1 * max(1.0, result.bias), result
    assert gaussian_tc_bias(100_000, 10) == pytest.approx(10 * 9 / (4 * 100_000), rel=0.01)


def test_gaussian_tc_matches_the_closed_form():
    assert gaussian_tc_from_covariance(torch.tensor([[1.0, 0.6], [0.6, 1.0]])) == pytest.approx(-0.5 * math.log(0.64))
    a = torch.randn(6, 6, generator=generator(1), dtype=torch.float64)
    covariance = a @ a.T + 0.5 * torch.eye(6, dtype=torch.float64)
    scaled = torch.diag(torch.tensor([1.0, 10, 0.1, 2, 3, 4], dtype=torch.float64))
    exact = gaussian_tc_from_covariance(covariance)
    assert gaussian_tc_from_covariance(scaled @ covariance @ scaled) == pytest.approx(exact)  # scale-free
    rows = torch.randn(100_000, 6, generator=generator(2), dtype=torch.float64) @ torch.linalg.cholesky(covariance).T
    result = gaussian_total_correlation(rows)
    assert result.value == pytest.approx(exact, abs=0.01)
    with pytest.raises(ValueError, match="more rows"):
        gaussian_total_correlation(torch.randn(10, 20))


def test_gaussian_tc_drops_constant_dimensions():
    rows = torch.randn(500, 5, generator=generator())
    rows[:, 3] = 2.0
    result = gaussian_total_correlation(rows)
    assert result.dim == 4 and result.dropped == 1 and math.isfinite(result.value)


def test_kde_tc_on_small_subsets():
    rho = 0.8
    x = torch.randn(1200, 2, generator=generator(4))
    x[:, 1] = rho * x[:, 0] + math.sqrt(1 - rho ** 2) * x[:, 1]
    assert kde_total_correlation(x) == pytest.approx(-0.5 * math.log(1 - rho ** 2), abs=0.1)
    assert abs(kde_total_correlation(torch.randn(1200, 3, generator=generator(5)))) < 0.15


# --- ICS -----------------------------------------------------------------------------------------------------------

def tiny_decoder() -> ModuleDecoder:
    torch.manual_seed(0)
    config = DecoderConfig(module=2, in_dim=12, hidden_channels=6, layers=((4, 2, 1, 1), (4, 4, 0, 0)), hop_samples=8)
    return ModuleDecoder(config).eval()


def naive_ics(decoder, latents, ks, pairs):
    """The reference's per-pair loop (spec 5.3), written plainly."""
    with torch.no_grad():
        dec = [decoder(z[None])[0].double() for z in latents]
        max_error = sum(float(((dec[i] - dec[j]) ** 2).mean()) for i, j in pairs.tolist()) / len(pairs)
        errors = []
        for k in ks:
            total = 0.0
            for i, j in pairs.tolist():
                importance = (latents[i].mean(0) - latents[j].mean(0)) ** 2
                top = torch.argsort(importance, descending=True)[:k]
                edited = latents[i].clone()
                edited[:, top] = latents[j][:, top]
                total += float(((decoder(edited[None])[0].double() - dec[j]) ** 2).mean())
            errors.append(total / len(pairs))
    return max_error, errors


def test_vectorised_ics_equals_the_per_pair_loop():
    decoder = tiny_decoder()
    latents = torch.randn(5, 7, 12, generator=generator(6))  # 5 files: far fewer than the reference's 200
    ks = (1, 2, 4, 12, 40)
    result = interpolation_contribution_score(decoder, latents, ks, pairs_per_batch=3)
    assert result.n_pairs == 20 and result.ks == (1, 2, 4, 12)
    max_error, errors = naive_ics(decoder, latents, result.ks, choose_pairs(5, None))
    assert result.max_error == pytest.approx(max_error, rel=1e-5)
    assert result.absolute == pytest.approx(errors, rel=1e-4, abs=1e-12)
    assert result.absolute[-1] == 0.0 and result.relative[-1] == 0.0
    assert 0 < result.mean_relative < 1.5


def test_ics_pair_subsets_and_swaps():
    pairs = choose_pairs(30, 50, generator(7))
    assert pairs.shape == (50, 2) and bool((pairs[:, 0] != pairs[:, 1]).all())
    assert len({tuple(p) for p in pairs.tolist()}) == 50
    with pytest.raises(ValueError, match="at least 2"):
        choose_pairs(1, None)
    a, b = torch.zeros(1, 3, 5), torch.zeros(1, 3, 5)
    b[0, :, 4], b[0, :, 1] = 2.0, 1.0
    swapped = swap_top_k(a, b, [1, 2])
    assert swapped.shape == (1, 2, 3, 5)
    assert swapped[0, 0, :, 4].tolist() == [2.0] * 3 and swapped[0, 0, :, 1].tolist() == [0.0] * 3
    assert torch.equal(swapped[0, 1], b[0])


# --- pooled representations --------------------------------------------------------------------------------------

@pytest.mark.slow
def test_knn_accuracy_and_tsne_on_separated_clusters():
    centres = torch.tensor([[0.0] * 8, [10.0] * 8, [-10.0] * 4 + [10.0] * 4])
    labels = [c for c in "abc" for _ in range(10)]
    features = centres.repeat_interleave(10, 0) + torch.randn(30, 8, generator=generator(8))
    assert knn_accuracy(features, labels) == 1.0
    assert knn_accuracy(torch.randn(30, 8, generator=generator(9)), labels) < 0.8
    points = tsne_embedding(features, iterations=250)
    assert points.shape == (30, 2)
