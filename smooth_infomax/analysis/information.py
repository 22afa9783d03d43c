"""Where information sits in a module's latents: KL to the prior per dimension, active units, and total correlation.

* :func:`posterior_stats` (posterior-collapse check): per dimension, the KL of ``N(mu, sigma^2)`` to ``N(0, 1)``
  averaged over valid frames (nats per frame), and the variance of ``mu`` over frames and utterances; a unit is
  *active* when that variance exceeds 0.01 (Burda et al., 2016). A collapsed unit has KL near 0 and ``mu`` near 0.
* :func:`gaussian_total_correlation`: ``TC = sum_i H(z_i) - H(z)`` of a Gaussian fitted to the data, ``-1/2 log det
  R`` with ``R`` the sample correlation matrix. It is sound in 512 dimensions as long as rows outnumber
  dimensions. Its bias is known in closed form for independent Gaussian rows (from the Wishart distribution,
  ``E[TC_hat] - TC = 1/2 sum_{i=1..d} [psi((n-1)/2) - psi((n-i)/2)]``, about ``d^2 / 4n`` for ``n >> d``) and
  is subtracted by default. It measures only linear (second-order) dependence, so it is a lower bound on the
  TC of non-Gaussian data; consecutive frames are correlated, so pass frames spread over many utterances.
* :func:`kde_total_correlation`: the reference's estimator (Gaussian KDE entropies), made leave-one-out and used
  on small channel subsets only. Plug-in KDE entropies are biased in a way that grows with dimension and depends on
  the bandwidth; with the reference's resubstitution and fixed bandwidth 0.1 in 512 dimensions the estimate says
  more about the bandwidth than about the data (bug 26).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

ACTIVE_VARIANCE = 0.01


def valid_frames(features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Rows of valid frames: ``(batch, frames, dim)`` and ``(batch,)`` -> ``(n_valid, dim)``."""
    if lengths is None:
        return features.reshape(-1, features.shape[-1])
    mask = torch.arange(features.shape[1])[None, :] < lengths.cpu()[:, None]
    return features.cpu()[mask]


@dataclass(frozen=True)
class PosteriorStats:
    """Per-dimension statistics ``(dim,)`` of a module's posteriors; ``kl_per_dim`` and ``posterior_variance``
    are ``None`` for deterministic modules."""

    kl_per_dim: torch.Tensor | None
    posterior_variance: torch.Tensor | None
    mean_variance: torch.Tensor
    active: torch.Tensor
    threshold: float

    @property
    def n_active(self) -> int:
        return int(self.active.sum())

    @property
    def kl_total(self) -> float | None:
        """KL summed over dimensions, nats per frame."""
        return None if self.kl_per_dim is None else float(self.kl_per_dim.sum())

    def as_dict(self) -> dict:
        out = {k: (v.tolist() if isinstance(v, torch.Tensor) else v) for k, v in asdict(self).items()}
        return {**out, "n_active": self.n_active, "kl_total": self.kl_total}


def posterior_stats(mean: torch.Tensor, logvar: torch.Tensor | None, lengths: torch.Tensor | None = None,
                    threshold: float = ACTIVE_VARIANCE) -> PosteriorStats:
    """KL to N(0, I), posterior variance and activity per dimension from ``mean``/``logvar (batch, frames, dim)``
    and valid ``lengths (batch,)``."""
    mu = valid_frames(mean, lengths).double()
    mean_variance = mu.var(0, unbiased=False) if len(mu) > 1 else torch.zeros(mu.shape[-1], dtype=torch.float64)
    kl = variance = None
    if logvar is not None:
        lv = valid_frames(logvar, lengths).double()
        kl = (0.5 * (mu ** 2 + lv.exp() - lv - 1)).mean(0)
        variance = lv.exp().mean(0)
    return PosteriorStats(kl, variance, mean_variance, mean_variance > threshold, threshold)


@dataclass(frozen=True)
class TotalCorrelation:
    """A total-correlation estimate in nats: ``value`` (bias-corrected if ``bias`` was subtracted), the ``raw``
    plug-in value, the ``bias`` term, ``n`` rows, ``dim`` dimensions used and ``dropped`` constant dimensions."""

    value: float
    raw: float
    bias: float
    n: int
    dim: int
    dropped: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def gaussian_tc_from_covariance(covariance: torch.Tensor) -> float:
    """TC of ``N(0, covariance)`` in nats: ``1/2 (sum log diag - log det) = -1/2 log det R``."""
    cov = torch.as_tensor(covariance, dtype=torch.float64)
    sign, logdet = torch.linalg.slogdet(cov)
    if sign <= 0:
        raise ValueError("covariance is not positive definite")
    return float(0.5 * (cov.diagonal().log().sum() - logdet))


def gaussian_tc_bias(n: int, dim: int) -> float:
    """Expected plug-in Gaussian TC of ``n`` independent rows of a ``dim``-dimensional Gaussian with independent
    coordinates (the estimator's bias): ``1/2 sum_{i=1..dim} [psi((n-1)/2) - psi((n-i)/2)]``; needs ``n > dim``."""
    if n <= dim:
        raise ValueError(f"need more rows than dimensions (n={n}, dim={dim})")
    i = torch.arange(1, dim + 1, dtype=torch.float64)
    return float(0.5 * (torch.special.digamma(torch.tensor((n - 1) / 2, dtype=torch.float64))
                        - torch.special.digamma((n - i) / 2)).sum())


def gaussian_total_correlation(rows: torch.Tensor, bias_correction: bool = True,
                               min_variance: float = 1e-10) -> TotalCorrelation:
    """Gaussian TC (nats) of ``rows (n, dim)``; dimensions with variance below ``min_variance`` are dropped
    (they carry no information and make the covariance singular)."""
    x = torch.as_tensor(rows, dtype=torch.float64).cpu()
    keep = x.var(0) > min_variance
    x = x[:, keep]
    n, dim = x.shape
    if n <= dim + 1:
        raise ValueError(f"Gaussian TC needs more rows than dimensions: {n} rows, {dim} dimensions; "
                         "use more frames or fewer channels")
    raw = gaussian_tc_from_covariance(torch.cov(x.T).reshape(dim, dim))
    bias = gaussian_tc_bias(n, dim) if bias_correction else 0.0
    return TotalCorrelation(raw - bias, raw, bias, n, dim, int((~keep).sum()))


def _kde_log_density(x: torch.Tensor, bandwidth: float, leave_one_out: bool, chunk: int = 1024) -> torch.Tensor:
    """``log p_hat(x_i)`` ``(n,)`` of an isotropic Gaussian KDE fitted on ``x (n, d)`` itself."""
    n, d = x.shape
    out = torch.empty(n, dtype=torch.float64)
    for start in range(0, n, chunk):
        squared = torch.cdist(x[start:start + chunk], x).pow(2)
        logits = -0.5 * squared / bandwidth ** 2
        if leave_one_out:
            rows = torch.arange(start, min(start + chunk, n))
            logits[rows - start, rows] = -math.inf
        out[start:start + chunk] = torch.logsumexp(logits, dim=1)
    count = n - 1 if leave_one_out else n
    return out - math.log(count) - d * math.log(bandwidth) - 0.5 * d * math.log(2 * math.pi)


def kde_total_correlation(rows: torch.Tensor, bandwidth: float | None = None, leave_one_out: bool = True,
                          standardize: bool = True) -> float:
    """KDE total correlation (nats) ``sum_i H(z_i) - H(z)`` of ``rows (n, c)`` for small ``c``.

    Entropies are ``-mean log p_hat`` with leave-one-out Gaussian KDEs (``leave_one_out=False`` is the reference's
    resubstitution). ``bandwidth`` ``None`` uses Scott's rule, ``n^(-1/(d+4))`` on standardised data for a
    ``d``-dimensional KDE; the reference used 0.1 on raw features (pass ``bandwidth=0.1, leave_one_out=False,
    standardize=False`` to reproduce it).
    """
    x = torch.as_tensor(rows, dtype=torch.float64).cpu()
    if standardize:
        x = (x - x.mean(0)) / x.std(0).clamp_min(1e-12)
    n, c = x.shape
    scott = lambda d: n ** (-1.0 / (d + 4))
    joint = -float(_kde_log_density(x, bandwidth or scott(c), leave_one_out).mean())
    marginals = sum(-float(_kde_log_density(x[:, i:i + 1], bandwidth or scott(1), leave_one_out).mean())
                    for i in range(c))
    return marginals - joint
