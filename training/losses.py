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
    ``_StepScores`` lays the predictions of all steps out against those rows and scores them in one batched
    product, with a backward that writes each gradient once (docs/performance.md).
    """
    batch, frames, dim = target.shape
    target = target.contiguous()  # the encoder's are (batch, dim, frames) in memory: one copy, then rows are rows
    c = context[:, draws.start : draws.start + window_frames].contiguous()
    z = target[:, draws.start : draws.start + window_frames]
    window = c.shape[1]
    used_steps = min(steps, window - 1)
    predictions = predictor(c).view(batch, window, steps, dim)
    rows = batch * (window - 1)
    used_rows = draws.negative_rows[:, -rows:].T.reshape(-1)  # row r's N negatives, consecutive
    negatives = target.reshape(batch * frames, dim).index_select(0, used_rows).view(rows, -1, dim)  # (rows, N, dim)
    positive, negative = _StepScores.apply(predictions, z, negatives, used_steps)  # (rows, K'), (rows, N, K')
    logits = torch.cat([positive.unsqueeze(1), negative.to(positive.dtype)], dim=1)  # (rows, 1 + N, K')
    nll = -F.log_softmax(logits, dim=1)[:, 0]  # (rows, K')
    hits = (logits.argmax(dim=1) == 0).float()
    step = torch.arange(1, used_steps + 1, device=target.device)
    valid = (torch.arange(rows, device=target.device)[:, None] >= batch * (step - 1)).float()  # (rows, K')
    per_step = lambda values: ((values * valid).sum(0) / valid.sum(0)).mean()
    return InfoNCEResult(per_step(nll), per_step(hits))


class _StepScores(torch.autograd.Function):
    """The scores of every step against the shared negatives, from ``predictions (batch, window, K, dim)``, the
    window's targets ``z (batch, window, dim)`` and ``negatives (rows, N, dim)``, ``rows = batch * (window - 1)``.

    Step k's predictions ``(batch, window - k, dim)``, flattened, sit at rows ``batch * (k - 1)`` onwards of
    ``aligned (rows, K', dim)`` (the rows before are zero); its positives are ``z[:, k:]``. Returns the positive
    scores ``(rows, K')`` in the targets' dtype and the negative ones ``(rows, N, K')`` in the predictions' (one
    ``bmm``; bfloat16 under autocast, as autocast would run it). Rows before a step's first are scored, not valid.

    Autograd through per-step slices and a laid-out copy of the positives would build one full-size gradient per
    slice and add them up; this backward writes each step's gradient into place, and the positives' products are
    taken step by step on small slices (docs/performance.md)."""

    @staticmethod
    def forward(ctx, predictions: torch.Tensor, z: torch.Tensor, negatives: torch.Tensor, steps: int):
        batch, window, _, dim = predictions.shape
        aligned = predictions.new_empty(batch * (window - 1), steps, dim)
        positive = z.new_zeros(aligned.shape[:2])
        for k in range(1, steps + 1):
            lead = batch * (k - 1)
            aligned[:lead, k - 1] = 0
            step = aligned[lead:, k - 1]
            step.view(batch, window - k, dim).copy_(predictions[:, : window - k, k - 1])
            positive[lead:, k - 1] = torch.linalg.vecdot(step.to(z.dtype), z[:, k:].reshape(-1, dim))
        negatives = negatives.to(aligned.dtype)
        negative = torch.bmm(negatives, aligned.transpose(1, 2))
        ctx.save_for_backward(aligned, z, negatives)
        ctx.predictions_shape = predictions.shape
        return positive, negative

    @staticmethod
    def backward(ctx, grad_positive: torch.Tensor, grad_negative: torch.Tensor):
        aligned, z, negatives = ctx.saved_tensors
        batch, window, _, dim = ctx.predictions_shape
        steps = aligned.shape[1]
        grad_negative = grad_negative.to(aligned.dtype)
        grad_negatives = torch.bmm(grad_negative, aligned)  # (rows, N, dim)
        grad_aligned = torch.bmm(grad_negative.transpose(1, 2), negatives)  # (rows, K', dim)
        grad_predictions = aligned.new_empty(ctx.predictions_shape)
        grad_predictions[:, :, steps:] = 0
        grad_z = torch.zeros_like(z)
        for k in range(1, steps + 1):
            lead = batch * (k - 1)
            weight = grad_positive[lead:, k - 1].reshape(batch, window - k, 1)
            step = grad_predictions[:, :, k - 1]
            step[:, window - k :] = 0
            step[:, : window - k].copy_(grad_aligned[lead:, k - 1].view(batch, window - k, dim))
            step[:, : window - k].addcmul_(weight, z[:, k:])
            grad_z[:, k:].addcmul_(weight, aligned[lead:, k - 1].view(batch, window - k, dim))
        return grad_predictions, grad_z, grad_negatives, None


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
        for module, out_dim in zip(config.modules, dims, strict=True):
            target_dim = module.conv_layers[-1].channels if module.conv_layers else channels
            layers.append(nn.Linear(out_dim, target_dim * steps, bias=False))
            channels = out_dim
        self.layers = nn.ModuleList(layers)
