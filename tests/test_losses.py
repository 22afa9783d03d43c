"""InfoNCE and KL (reference spec, section 2)."""

import math

import pytest
import torch

from smooth_infomax import SmoothInfoMaxEncoder, preset
from training.losses import Predictors, draw_infonce, gaussian_kl, info_nce, info_nce_loop


def _setup(frames=300, batch=3, dim=16, context_dim=8, steps=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    context = torch.randn(batch, frames, context_dim, generator=g, requires_grad=True)
    target = torch.randn(batch, frames, dim, generator=g, requires_grad=True)
    predictor = torch.nn.Linear(context_dim, dim * steps, bias=False)
    torch.nn.init.normal_(predictor.weight, std=0.3, generator=g)
    draws = draw_infonce(batch, frames, 128, 10, g, torch.device("cpu"))
    return context, target, predictor, draws


@pytest.mark.parametrize("frames", [300, 128, 64, 6])
def test_vectorised_equals_loop_formulation(frames):
    context, target, predictor, draws = _setup(frames=frames)
    fast = info_nce(context, target, predictor, 10, 128, draws).loss
    slow = info_nce_loop(context, target, predictor, 10, 128, draws)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=1e-5)
    grad_fast = torch.autograd.grad(fast, [context, target, predictor.weight])
    grad_slow = torch.autograd.grad(slow, [context, target, predictor.weight])
    for a, b in zip(grad_fast, grad_slow, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_vectorised_equals_loop_formulation_under_bfloat16_autocast():
    """As training runs on a GPU: the predictor and the negatives' scores in bfloat16, the positives' in float32."""
    context, target, predictor, draws = _setup()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = info_nce(context, target, predictor, 10, 128, draws).loss
        slow = info_nce_loop(context, target, predictor, 10, 128, draws)
    torch.testing.assert_close(fast, slow, atol=0, rtol=1e-3)
    grad_fast = torch.autograd.grad(fast, [context, target, predictor.weight])
    grad_slow = torch.autograd.grad(slow, [context, target, predictor.weight])
    for a, b in zip(grad_fast, grad_slow, strict=True):
        assert a.dtype == b.dtype == torch.float32
        assert (a - b).norm() / b.norm() < 2e-2


def test_zero_predictor_gives_log_of_one_plus_negatives():
    context, target, predictor, draws = _setup()
    torch.nn.init.zeros_(predictor.weight)
    result = info_nce(context, target, predictor, 10, 128, draws)
    assert result.loss.item() == pytest.approx(math.log(11), abs=1e-6)


def test_window_start_covers_every_full_window():
    g = torch.Generator().manual_seed(0)
    starts = {draw_infonce(1, 131, 128, 1, g, torch.device("cpu")).start for _ in range(200)}
    assert starts == {0, 1, 2, 3}  # the reference never reaches the last one (spec bug 9)
    assert draw_infonce(2, 128, 128, 1, g, torch.device("cpu")).start == 0


def test_accuracy_is_one_when_the_positive_is_obvious():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 200, 16, generator=g)
    predictor = torch.nn.Linear(16, 16, bias=False)
    # context_t = z_{t+1}, predictor step 1 = 50 * identity: the positive scores 50 |z|^2
    with torch.no_grad():
        predictor.weight.copy_(50 * torch.eye(16))
    context = torch.roll(target, shifts=-1, dims=1)
    draws = draw_infonce(2, 200, 128, 10, g, torch.device("cpu"))
    result = info_nce(context, target, predictor, 1, 128, draws)
    assert result.accuracy.item() > 0.97


def test_kl_is_zero_at_the_prior_and_matches_the_closed_form():
    mean, logvar = torch.zeros(2, 5, 4), torch.zeros(2, 5, 4)
    assert gaussian_kl(mean, logvar, "time_sum").item() == 0.0
    mean, logvar = torch.full((2, 5, 4), 1.0), torch.full((2, 5, 4), math.log(2.0))
    per_element = 0.5 * (1 + 2 - math.log(2) - 1)
    assert gaussian_kl(mean, logvar, "per_element").item() == pytest.approx(per_element)
    assert gaussian_kl(mean, logvar, "time_sum").item() == pytest.approx(5 * per_element)  # summed over 5 frames


def test_predictor_shapes_match_the_reference_checkpoints():
    sim = Predictors(preset("sim"))
    assert [tuple(p.weight.shape) for p in sim.layers] == [(5120, 512)] * 3 + [(5120, 256)]
    gim = Predictors(preset("gim"))
    assert [tuple(p.weight.shape) for p in gim.layers] == [(6144, 512)] * 5 + [(6144, 256)]
    cpc = Predictors(preset("cpc"))
    assert [tuple(p.weight.shape) for p in cpc.layers] == [(5120, 256)]
    encoder = SmoothInfoMaxEncoder.from_preset("sim")
    total = sum(p.numel() for p in encoder.parameters()) + sum(p.numel() for p in sim.parameters())
    assert total == 16_598_016
