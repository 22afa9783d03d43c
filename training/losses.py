"""Per-module losses of Greedy InfoMax / Smooth InfoMax (reference spec, section 2).

InfoNCE is the CPC log-bilinear critic: ``score = <W_k c_t, z>`` with one bias-free predictor per module
(``Linear(context_dim, target_dim * K)``), positives ``z_{t+k}`` inside a window of ``window_frames`` frames and
negatives drawn from every frame of every sequence in the batch. The random draws (window start, negative
indices) are made once in ``draw_infonce`` so that two formulations can be compared on the same draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from smooth_infomax import EncoderConfig


@dataclass(frozen=True)
class InfoNCEDraws:
    """The random choices of one InfoNCE evaluation.

    Attributes:
        start: first frame of the positive window.
        negative_rows: ``(negatives, batch * frames)`` rows of the flattened targets, one permutation per negative.
    """

    start: int
    negative_rows: torch.Tensor


@dataclass(frozen=True)
class InfoNCEResult:
    loss: torch.Tensor  # scalar, mean over the K steps
    accuracy: torch.Tensor  # scalar, share of rows whose positive scores highest, mean over the K steps


def draw_infonce(batch: int, frames: int, window_frames: int, negatives: int, generator: torch.Generator | None,
                 device: torch.device) -> InfoNCEDraws:
    """Draw the window start (uniform over every full window, 0 when ``frames <= window_frames``) and the
    negatives (independent permutations of all ``batch * frames`` target rows)."""
    last_start = max(frames - window_frames, 0)
    start = int(torch.randint(last_start + 1, (1,), generator=generator))
    rows = torch.stack([torch.randperm(batch * frames, generator=generator) for _ in range(negatives)])
    return InfoNCEDraws(start, rows.to(device))


def info_nce(context: torch.Tensor, target: torch.Tensor, predictor: nn.Linear, steps: int, window_frames: int,
             draws: InfoNCEDraws) -> InfoNCEResult:
    """Vectorised InfoNCE of one module.

    Args:
        context: ``(batch, frames, context_dim)`` predictor inputs c.
        target: ``(batch, frames, dim)`` targets z; negatives come from all of its frames.
        predictor: ``Linear(context_dim, dim * steps, bias=False)``.
        steps: K, the number of future frames predicted.
        window_frames: length of the positive window.
        draws: the window start and negative rows (``draw_infonce``).

    Step k scores its ``batch * (window - k)`` predictions against the last that many of each permutation's
    ``batch * (window - 1)`` used rows (as the reference). So every step reads the same gathered negatives, shifted:
    the predictions and positives of all steps are laid out against those rows (``_StepRows``) and scored in one
    batched product, all steps at once (docs/performance.md).
    """
    batch, frames, dim = target.shape
    c = context[:, draws.start : draws.start + window_frames]
    z = target[:, draws.start : draws.start + window_frames]
    window = c.shape[1]
    used_steps = min(steps, window - 1)
    predictions = predictor(c).view(batch, window, steps, dim)
    aligned = _StepRows.apply(predictions, used_steps, _step_predictions)  # (rows, K', dim)
    positive = (aligned * _StepRows.apply(z, used_steps, _step_targets)).sum(-1)  # (rows, K')
    rows = aligned.shape[0]
    used_rows = draws.negative_rows[:, -rows:].T.reshape(-1)  # row r's N negatives, consecutive
    negatives = target.reshape(batch * frames, dim).index_select(0, used_rows).view(rows, -1, dim)  # (rows, N, dim)
    negative = torch.bmm(negatives, aligned.transpose(1, 2))  # (rows, N, K')
    logits = torch.cat([positive.unsqueeze(1), negative], dim=1)  # (rows, 1 + N, K')
    nll = -F.log_softmax(logits, dim=1)[:, 0]  # (rows, K')
    hits = (logits.argmax(dim=1) == 0).float()
    step = torch.arange(1, used_steps + 1, device=target.device)
    valid = (torch.arange(rows, device=target.device)[:, None] >= batch * (step - 1)).float()  # (rows, K')
    per_step = lambda values: ((values * valid).sum(0) / valid.sum(0)).mean()  # noqa: E731
    return InfoNCEResult(per_step(nll), per_step(hits))


def _step_predictions(predictions: torch.Tensor, k: int) -> torch.Tensor:
    """Step k's predictions ``(batch, window - k, dim)`` of ``predictions (batch, window, K, dim)``."""
    return predictions[:, : predictions.shape[1] - k, k - 1]


def _step_targets(z: torch.Tensor, k: int) -> torch.Tensor:
    """Step k's positives ``(batch, window - k, dim)`` of the window's targets ``z (batch, window, dim)``."""
    return z[:, k:]


class _StepRows(torch.autograd.Function):
    """``part(x, k) (batch, window - k, dim)`` of every step k laid out against the negatives' rows:
    ``(batch * (window - 1), steps, dim)``, where row ``batch * (k - 1) + i`` of step k holds its i-th row
    (flattened over batch and frames) and its first ``batch * (k - 1)`` rows are zero.

    Autograd through per-step slices would build one full-size gradient per slice and add them up (a quarter of
    a bfloat16 training step); this backward writes each step's gradient into place instead."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, steps: int, part) -> torch.Tensor:
        batch, length, dim = part(x, 1).shape
        out = x.new_zeros(batch * length, steps, dim)
        for k in range(1, steps + 1):
            out[batch * (k - 1) :, k - 1] = part(x, k).reshape(-1, dim)
        ctx.shape, ctx.steps, ctx.part = x.shape, steps, part
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad_x = grad.new_zeros(ctx.shape)
        for k in range(1, ctx.steps + 1):
            step = ctx.part(grad_x, k)
            step += grad[step.shape[0] * (k - 1) :, k - 1].reshape(step.shape)
        return grad_x, None, None


def info_nce_loop(context: torch.Tensor, target: torch.Tensor, predictor: nn.Linear, steps: int,
                  window_frames: int, draws: InfoNCEDraws) -> torch.Tensor:
    """The straightforward formulation, as the reference code computes it: a loop over steps and negatives.
    Kept as the oracle the vectorised ``info_nce`` is tested against, and as the benchmark baseline."""
    batch, frames, dim = target.shape
    c = context[:, draws.start : draws.start + window_frames]
    z = target[:, draws.start : draws.start + window_frames]
    window = c.shape[1]
    flat_target = target.reshape(batch * frames, dim)
    total = 0.0
    used = range(1, min(steps, window - 1) + 1)
    for k in used:
        w_k = predictor.weight[(k - 1) * dim : k * dim]  # (dim, context_dim)
        pred = (c[:, : window - k] @ w_k.T).reshape(-1, dim)
        rows = pred.shape[0]
        scores = [(pred * z[:, k:].reshape(-1, dim)).sum(-1)]
        for n in range(draws.negative_rows.shape[0]):
            neg = flat_target[draws.negative_rows[n, -rows:]]
            scores.append((pred * neg).sum(-1))
        logits = torch.stack(scores, dim=1)
        total = total - F.log_softmax(logits, dim=1)[:, 0].sum() / rows
    return total / len(used)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor, normalisation: str) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, I)) of ``(batch, frames, dim)`` posteriors.

    ``"time_sum"`` is the reference form: summed over frames, averaged over batch and dims (so its weight grows
    with the number of frames). ``"per_element"`` averages over every element.
    """
    kl = 0.5 * (mean.pow(2) + logvar.exp() - logvar - 1)
    if normalisation == "time_sum":
        return kl.sum(dim=1).mean()
    if normalisation == "per_element":
        return kl.mean()
    raise ValueError(f"unknown KL normalisation {normalisation!r}")


class Predictors(nn.Module):
    """One bias-free InfoNCE predictor per module: ``Linear(context_dim, target_dim * K)``."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        steps = config.loss.prediction_steps
        dims = config.output_dims()
        layers, channels = [], config.in_channels
        for module, out_dim in zip(config.modules, dims):
            target_dim = module.conv_layers[-1].channels if module.conv_layers else channels
            layers.append(nn.Linear(out_dim, target_dim * steps, bias=False))
            channels = out_dim
        self.layers = nn.ModuleList(layers)
