"""Pooled representations in two dimensions (t-SNE, spec section 5.6) and a number to go with the picture.

A t-SNE plot shows neighbourhoods but its distances and cluster sizes mean little, so :func:`knn_accuracy` gives
the leave-one-out k-nearest-neighbour label accuracy in the original (standardised) feature space.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import torch


def tsne_embedding(features: torch.Tensor | np.ndarray, perplexity: float | None = None, seed: int = 0,
                   iterations: int = 1000) -> np.ndarray:
    """t-SNE of ``features (n, dim)`` to ``(n, 2)`` with scikit-learn (PCA initialisation, learning rate 'auto').

    ``perplexity`` defaults to the reference's ``floor(sqrt(n))``, capped at ``(n - 1) / 3`` as t-SNE needs.
    Features are standardised per dimension first.
    """
    from sklearn.manifold import TSNE

    x = _standardise(np.asarray(torch.as_tensor(features).double().cpu()))
    n = len(x)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    perplexity = min(perplexity or math.floor(math.sqrt(n)), (n - 1) / 3)
    steps = "max_iter" if "max_iter" in inspect.signature(TSNE).parameters else "n_iter"  # renamed in 1.5
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed,
                **{steps: iterations})
    return tsne.fit_transform(x)


def knn_accuracy(features: torch.Tensor | np.ndarray, labels, k: int = 5) -> float:
    """Leave-one-out accuracy of a ``k``-nearest-neighbour majority vote (Euclidean, standardised features).

    ``features (n, dim)``, ``labels (n,)`` (any hashable values); ties go to the nearest neighbour's label.
    """
    x = torch.as_tensor(_standardise(np.asarray(torch.as_tensor(features).double().cpu())))
    _, label_codes = np.unique(np.asarray(labels), return_inverse=True)
    codes = torch.as_tensor(label_codes)
    n = len(x)
    if n < 2:
        raise ValueError("kNN accuracy needs at least 2 points")
    k = min(k, n - 1)
    distances = torch.cdist(x, x)
    distances.fill_diagonal_(math.inf)
    neighbours = distances.topk(k, largest=False).indices  # (n, k), nearest first
    votes = torch.zeros(n, int(codes.max()) + 1, dtype=torch.float64)
    weights = 1.0 + 1e-6 * torch.arange(k, 0, -1, dtype=torch.float64)  # nearest wins ties
    votes.scatter_add_(1, codes[neighbours], weights.expand(n, k).contiguous())
    return float((votes.argmax(1) == codes).double().mean())


def _standardise(x: np.ndarray) -> np.ndarray:
    std = x.std(0)
    return (x - x.mean(0)) / np.where(std > 1e-12, std, 1.0)
