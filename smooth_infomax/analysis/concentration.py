"""How concentrated a linear probe's weights are ("information in fewer dimensions", spec section 5.4).

The reference only plots a density of the weights; these are the scalars it lacks, for a weight matrix
``W (n_classes, dim)`` of a bias-free probe on time-averaged module means:

* **top-k share** of a class row: the fraction of the row's ``|w|`` mass in its ``k`` largest entries (1 for a
  one-hot row, ``k / dim`` for a uniform one); averaged over rows.
* **participation ratio** of a row: ``(sum w^2)^2 / sum w^4``, the effective number of dimensions it uses
  (1 for one-hot, ``dim`` for uniform); averaged over rows, also given as a fraction of ``dim``.
* the same two on **dimension importance** ``sqrt(sum_c W[c, d]^2)``: how many dimensions the probe as a whole
  reads, whichever class.

Weight sizes depend on the scale of each feature. ``feature_std`` (per-dimension standard deviation of the probe's
inputs) rescales ``W`` to ``W * std``: the weight per standard deviation of each feature, so that a dimension is not
"important" only because its values are small. The density (:func:`weight_density`) is that of all entries divided
by ``max |w|``, which keeps 0 at 0 (the reference's per-row min-max rescale does not: bug 27).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

DEFAULT_TOP_K = (1, 4, 16, 64)


def top_k_share(weights: torch.Tensor, k: int) -> torch.Tensor:
    """Share of each row's ``|w|`` mass in its ``k`` largest entries: ``(rows, dim)`` -> ``(rows,)``; 0 for an
    all-zero row."""
    magnitude = weights.abs().double()
    k = min(k, magnitude.shape[-1])
    total = magnitude.sum(-1)
    top = magnitude.topk(k, dim=-1).values.sum(-1)
    return torch.where(total > 0, top / total.clamp_min(1e-300), torch.zeros_like(total))


def participation_ratio(weights: torch.Tensor) -> torch.Tensor:
    """``(sum w^2)^2 / sum w^4`` of each row: ``(rows, dim)`` -> ``(rows,)``, between 1 and ``dim`` (0 for a zero
    row)."""
    energy = weights.double() ** 2
    fourth = (energy ** 2).sum(-1)
    return torch.where(fourth > 0, energy.sum(-1) ** 2 / fourth.clamp_min(1e-300), torch.zeros_like(fourth))


def dimension_importance(weights: torch.Tensor) -> torch.Tensor:
    """``sqrt(sum_c W[c, d]^2)``: ``(n_classes, dim)`` -> ``(dim,)``."""
    return weights.double().pow(2).sum(0).sqrt()


@dataclass(frozen=True)
class ConcentrationResult:
    """Concentration of one weight matrix (see the module docstring); per-``k`` tuples follow ``top_k``."""

    top_k: tuple[int, ...]
    row_top_k_share: tuple[float, ...]
    row_participation_ratio: float
    dim_top_k_share: tuple[float, ...]
    dim_participation_ratio: float
    dim: int
    n_classes: int

    @property
    def row_participation_fraction(self) -> float:
        return self.row_participation_ratio / self.dim

    @property
    def dim_participation_fraction(self) -> float:
        return self.dim_participation_ratio / self.dim

    def as_dict(self) -> dict:
        return {**asdict(self), "row_participation_fraction": self.row_participation_fraction,
                "dim_participation_fraction": self.dim_participation_fraction}


def weight_concentration(weights: torch.Tensor, top_k: Sequence[int] = DEFAULT_TOP_K,
                         feature_std: torch.Tensor | None = None) -> ConcentrationResult:
    """Concentration measures of ``weights (n_classes, dim)``, optionally of ``weights * feature_std (dim,)``."""
    weights = torch.as_tensor(weights).detach().double().cpu()
    if weights.ndim != 2:
        raise ValueError(f"weights must be (n_classes, dim), got {tuple(weights.shape)}")
    if feature_std is not None:
        weights = weights * torch.as_tensor(feature_std).double().cpu().reshape(1, -1)
    importance = dimension_importance(weights)[None, :]
    return ConcentrationResult(
        top_k=tuple(int(k) for k in top_k),
        row_top_k_share=tuple(float(top_k_share(weights, k).mean()) for k in top_k),
        row_participation_ratio=float(participation_ratio(weights).mean()),
        dim_top_k_share=tuple(float(top_k_share(importance, k)[0]) for k in top_k),
        dim_participation_ratio=float(participation_ratio(importance)[0]),
        dim=weights.shape[1], n_classes=weights.shape[0])


def weight_density(weights: torch.Tensor, points: int = 201, bw_adjust: float = 0.5
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian KDE of all entries of ``weights`` divided by ``max |w|``, on ``points`` grid points in [-1, 1].

    The bandwidth is Scott's rule times ``bw_adjust`` (0.5, as the paper's seaborn plot). Returns the grid
    ``(points,)`` and the density ``(points,)``.
    """
    values = torch.as_tensor(weights).detach().double().reshape(-1).cpu()
    grid = torch.linspace(-1, 1, points, dtype=torch.float64)
    top = values.abs().max() if values.numel() else torch.tensor(0.0)
    if values.numel() < 2 or top == 0:
        return grid, torch.zeros_like(grid)
    values = values / top
    bandwidth = max(float(values.std()) * values.numel() ** (-1 / 5) * bw_adjust, 1e-3)
    density = torch.zeros_like(grid)
    for chunk in values.split(65536):
        density += torch.exp(-0.5 * ((grid[:, None] - chunk[None, :]) / bandwidth) ** 2).sum(1)
    return grid, density / (values.numel() * bandwidth * (2 * torch.pi) ** 0.5)
