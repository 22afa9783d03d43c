"""Reproducible samples ``mean + exp(logvar / 2) * eps`` that do not depend on batching or chunking.

The noise ``eps`` of module ``m`` is drawn in fixed blocks of ``NOISE_BLOCK_FRAMES`` frames: block ``b`` is
``torch.randn(NOISE_BLOCK_FRAMES, dim)`` from a CPU ``torch.Generator`` seeded with
``block_seed(seed, m, b)``, where ``seed`` is the per-file seed stored in the output's metadata. So the samples
can be recomputed from the stored mean, logvar and seed, and are the same whichever rows a chunk covers.
"""

from __future__ import annotations

import hashlib

import torch

NOISE_BLOCK_FRAMES = 1024


def block_seed(seed: int, module: int, block: int) -> int:
    """64-bit seed of noise block ``block`` of module ``module``: the first 16 hex digits of
    ``sha256(f"{seed}:{module}:{block}")``."""
    return int(hashlib.sha256(f"{seed}:{module}:{block}".encode()).hexdigest()[:16], 16)


def noise_rows(seed: int, module: int, start_frame: int, stop_frame: int, dim: int) -> torch.Tensor:
    """Standard normal noise ``(stop_frame - start_frame, dim)`` float32 for frames ``[start_frame, stop_frame)``."""
    pieces = []
    for block in range(start_frame // NOISE_BLOCK_FRAMES, -(-stop_frame // NOISE_BLOCK_FRAMES)):
        generator = torch.Generator().manual_seed(block_seed(seed, module, block))
        noise = torch.randn(NOISE_BLOCK_FRAMES, dim, generator=generator)
        first = block * NOISE_BLOCK_FRAMES
        pieces.append(noise[max(start_frame, first) - first: min(stop_frame, first + NOISE_BLOCK_FRAMES) - first])
    return torch.cat(pieces) if pieces else torch.zeros(0, dim)


def draw_sample(mean: torch.Tensor, logvar: torch.Tensor, seed: int, module: int, start_frame: int) -> torch.Tensor:
    """``mean + exp(logvar / 2) * eps`` in float32 for rows ``(rows, dim)`` starting at ``start_frame``."""
    eps = noise_rows(seed, module, start_frame, start_frame + mean.shape[0], mean.shape[1])
    return mean.float() + torch.exp(0.5 * logvar.float()) * eps
