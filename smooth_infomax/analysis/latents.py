"""Editing latents: traversal of chosen dimensions, interpolation between utterances, draws from the prior, and
decoding the results to audio (spec section 5.2).

Latents are one utterance's module output ``(frames, dim)`` (or a batch ``(batch, frames, dim)``); every function
returns a new tensor and leaves its input alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch


def _dims(dims: Sequence[int] | torch.Tensor, dim: int) -> torch.Tensor:
    index = torch.as_tensor(list(dims) if not isinstance(dims, torch.Tensor) else dims, dtype=torch.long).reshape(-1)
    if index.numel() and (int(index.min()) < -dim or int(index.max()) >= dim):
        raise ValueError(f"dimensions must lie in [0, {dim}), got {index.tolist()}")
    return index % dim


def traverse(latents: torch.Tensor, dims: Sequence[int], values: Sequence[float] | torch.Tensor,
             mode: str = "set") -> torch.Tensor:
    """Vary the latent dimensions ``dims`` jointly, over every frame, leaving all other dimensions unchanged.

    Args:
        latents: ``(frames, dim)`` one utterance's latents.
        dims: the dimensions to vary.
        values: ``(n_values,)`` the value to give them (``mode="set"``) or to add to them (``mode="shift"``).

    Returns:
        ``(n_values, frames, dim)``.
    """
    if latents.ndim != 2:
        raise ValueError(f"latents must be (frames, dim), got {tuple(latents.shape)}")
    if mode not in ("set", "shift"):
        raise ValueError(f"mode must be 'set' or 'shift', not {mode!r}")
    index = _dims(dims, latents.shape[-1])
    values = torch.as_tensor(values, dtype=latents.dtype, device=latents.device).reshape(-1, 1, 1)
    out = latents.unsqueeze(0).repeat(values.shape[0], 1, 1)
    base = out[:, :, index] if mode == "shift" else 0
    out[:, :, index] = (base + values).expand(-1, latents.shape[0], index.numel())
    return out


def traversal_grid(latents: torch.Tensor, dims: Sequence[int], values: Sequence[float] | torch.Tensor,
                   mode: str = "shift") -> torch.Tensor:
    """Each dimension of ``dims`` varied on its own: ``(len(dims), n_values, frames, dim)``."""
    return torch.stack([traverse(latents, [d], values, mode) for d in dims])


def posterior_sd(mean: torch.Tensor, logvar: torch.Tensor | None) -> torch.Tensor:
    """The unit of every latent shift: per dimension ``(dim,)``, the posterior standard deviation
    ``exp(logvar / 2)`` averaged over the utterance's frames, from ``(frames, dim)`` latents. A deterministic module
    (``logvar`` is ``None``) has no posterior spread; its unit is then the standard deviation of ``mean`` over the
    frames."""
    if logvar is not None:
        return torch.exp(0.5 * logvar.float()).mean(0)
    return mean.float().std(0) if mean.shape[0] > 1 else torch.ones(mean.shape[-1])


def shift_grid_sd(mean: torch.Tensor, sd: torch.Tensor, dims: Sequence[int], shifts_sd: Sequence[float]
                  ) -> torch.Tensor:
    """Each dimension ``d`` of ``dims`` shifted on its own, on every frame, by ``shifts_sd * sd[d]`` (shifts in
    posterior standard deviations, see :func:`posterior_sd`): ``(len(dims), len(shifts_sd), frames, dim)``."""
    index = _dims(dims, mean.shape[-1]).tolist()
    steps = torch.as_tensor(list(shifts_sd), dtype=mean.dtype)
    return torch.stack([traverse(mean, [d], steps * sd[d].to(mean.dtype), "shift") for d in index])


def dimension_importance(start: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
    """The reference's importance of each dimension for a pair: ``(mean_t start - mean_t end) ** 2``.

    ``start``, ``end``: ``(..., frames, dim)``; returns ``(..., dim)``.
    """
    return (start.mean(-2) - end.mean(-2)) ** 2


def top_k_dims(start: torch.Tensor, end: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(..., k)`` of the ``k`` dimensions that differ most between ``start`` and ``end`` (by
    :func:`dimension_importance`), most important first."""
    return torch.argsort(dimension_importance(start, end), dim=-1, descending=True)[..., :k]


def interpolate(start: torch.Tensor, end: torch.Tensor, steps: int,
                dims: Sequence[int] | torch.Tensor | None = None, top_k: int | None = None) -> torch.Tensor:
    """Linear interpolation from ``start`` to ``end``, on every dimension or only on some.

    Step ``i`` has ``alpha = i / (steps - 1)`` and latents ``(1 - alpha) * start + alpha * end`` on the chosen
    dimensions, ``start`` elsewhere; so the first step is ``start`` and, with all dimensions, the last is ``end``.
    (The reference runs alpha the other way and, for partial interpolation, keeps the other dimensions at z1.)

    Args:
        start, end: ``(frames, dim)`` latents of two utterances; the longer is cropped to the shorter.
        steps: number of steps (>= 2).
        dims: interpolate only these dimensions.
        top_k: interpolate only the ``top_k`` dimensions of :func:`top_k_dims` (instead of ``dims``).

    Returns:
        ``(steps, frames, dim)``.
    """
    if steps < 2:
        raise ValueError("steps must be at least 2")
    frames = min(start.shape[0], end.shape[0])
    start, end = start[:frames], end[:frames]
    if top_k is not None:
        dims = top_k_dims(start, end, top_k)
    mask = torch.ones(start.shape[-1], dtype=torch.bool, device=start.device)
    if dims is not None:
        mask = torch.zeros_like(mask)
        mask[_dims(dims, start.shape[-1])] = True
    alpha = torch.linspace(0, 1, steps, dtype=start.dtype, device=start.device).reshape(-1, 1, 1)
    mixed = (1 - alpha) * start + alpha * end
    return torch.where(mask, mixed, start.expand_as(mixed))


def sample_prior(n: int, frames: int, dim: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` draws ``(n, frames, dim)`` from the prior N(0, I), as the reference's decoder callbacks decode."""
    return torch.randn(n, frames, dim, generator=generator)


def decode(decoder, latents: torch.Tensor, num_samples: int | None = None, batch_size: int = 16) -> torch.Tensor:
    """Decode ``(n, frames, dim)`` latents in chunks, without gradients: ``(n, num_samples)`` on the CPU."""
    device = next(decoder.parameters()).device
    with torch.no_grad():
        parts = [decoder(latents[i:i + batch_size].to(device), num_samples).cpu()
                 for i in range(0, len(latents), batch_size)]
    return torch.cat(parts)


def write_wavs(waves: torch.Tensor | np.ndarray, directory: str | Path, prefix: str, sample_rate: int = 16_000,
               peak: float | None = 0.95) -> list[Path]:
    """Write each row of ``(n, samples)`` as ``<prefix>-<i>.wav`` (16-bit PCM); rows louder than ``peak`` are scaled
    down to it (decoders can overshoot [-1, 1]). Returns the paths."""
    import soundfile as sf

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, wave in enumerate(np.asarray(torch.as_tensor(waves).detach().cpu().float())):
        top = float(np.abs(wave).max()) if wave.size else 0.0
        if peak is not None and top > peak:
            wave = wave * (peak / top)
        path = directory / f"{prefix}-{i:02d}.wav"
        sf.write(str(path), wave, sample_rate, subtype="PCM_16")
        paths.append(path)
    return paths
