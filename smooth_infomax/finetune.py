"""Fine-tuning helpers: a learnable softmax-weighted sum over modules (s3prl's Featurizer idea, with lengths)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch
from torch import nn

from .encoder import SmoothInfoMaxEncoder
from .outputs import ModuleFeatures


class LayerWeightedSum(nn.Module):
    """``sum_m softmax(w)_m * mean_m`` over several modules, at the coarsest frame rate among them.

    Modules with a finer hop are average-pooled over ``hop / finer_hop`` frames (only complete windows count as
    valid), so module 0 of ``sim`` (20-sample hop) lines up with module 2 (160) to within 60 samples (3.75 ms).
    All chosen modules must have the same dim; by default the modules sharing the most common dim are used (the
    three conv modules of ``sim``).

    Example:
        >>> weighted = LayerWeightedSum(encoder)
        >>> feats, lengths = weighted(encoder.forward_features(wav, lengths))   # (batch, frames, 512), (batch,)
    """

    def __init__(self, encoder: SmoothInfoMaxEncoder, modules: Sequence[int] | None = None):
        super().__init__()
        dims = encoder.output_dims
        if modules is None:
            common = Counter(dims).most_common(1)[0][0]
            modules = [i for i, d in enumerate(dims) if d == common]
        self.modules_used = encoder.resolve_modules(list(modules))
        if len({dims[i] for i in self.modules_used}) != 1:
            raise ValueError(f"modules {self.modules_used} have different dims {[dims[i] for i in self.modules_used]}; "
                             "choose modules of equal dim")
        hops = [encoder.geometries[i].hop_samples for i in self.modules_used]
        self.hop_samples = max(hops)
        if any(self.hop_samples % h for h in hops):
            raise ValueError(f"module hops {hops} do not divide the coarsest hop {self.hop_samples}")
        self.pool = [self.hop_samples // h for h in hops]
        self.weights = nn.Parameter(torch.zeros(len(self.modules_used)))

    def forward(self, features: Sequence[ModuleFeatures]) -> tuple[torch.Tensor, torch.Tensor]:
        """``features``: ``extract``/``forward_features`` output containing at least ``modules_used``.

        Returns ``(batch, frames, dim)`` weighted features (zero past each length) and ``(batch,)`` frame lengths.
        """
        by_index = {f.index: f for f in features}
        missing = [i for i in self.modules_used if i not in by_index]
        if missing:
            raise ValueError(f"features of modules {missing} are missing; "
                             f"extract them with modules={self.modules_used}")
        pooled = [_pool(by_index[i], r) for i, r in zip(self.modules_used, self.pool, strict=True)]
        frames = min(p.shape[1] for p, _ in pooled)
        lengths = torch.stack([n for _, n in pooled]).min(dim=0).values.clamp_max(frames)
        stacked = torch.stack([p[:, :frames] for p, _ in pooled])  # (modules, batch, frames, dim)
        weighted = (torch.softmax(self.weights, 0).to(stacked.dtype)[:, None, None, None] * stacked).sum(0)
        valid = torch.arange(frames, device=weighted.device)[None, :] < lengths.to(weighted.device)[:, None]
        return weighted * valid.unsqueeze(-1).to(weighted.dtype), lengths


def _pool(features: ModuleFeatures, ratio: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Average ``ratio`` consecutive frames: ``(batch, frames, dim)`` -> ``(batch, frames // ratio, dim)``."""
    mean = features.mean
    frames = mean.shape[1] // ratio
    pooled = mean[:, : frames * ratio].reshape(mean.shape[0], frames, ratio, mean.shape[2]).mean(2)
    return pooled, torch.div(features.lengths, ratio, rounding_mode="floor")
