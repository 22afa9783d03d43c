"""Figures of the analyses, drawn with matplotlib's object API (no pyplot, no global backend change).

matplotlib is imported inside each function, so importing this module costs nothing. Every function takes results
keyed by a display label (e.g. ``"SIM, module 2"``) and returns a ``matplotlib.figure.Figure``;
:func:`figure_png` renders one to PNG bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .ics import IcsResult
    from .information import PosteriorStats


def new_figure(width_in: float, height_in: float):
    """A blank ``Figure`` of the given size in inches, with an Agg canvas attached."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def figure_png(figure, dpi: int = 90) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def log_spectrogram(wave: torch.Tensor | np.ndarray, n_fft: int = 512, hop_samples: int = 128) -> np.ndarray:
    """Power spectrogram in dB ``(n_fft // 2 + 1, frames)`` of a ``(samples,)`` waveform (Hann window)."""
    x = torch.as_tensor(np.asarray(wave), dtype=torch.float32).reshape(-1)
    if x.numel() < n_fft:
        x = torch.nn.functional.pad(x, (0, n_fft - x.numel()))
    spec = torch.stft(x, n_fft, hop_samples, window=torch.hann_window(n_fft), return_complex=True).abs() ** 2
    return (10 * torch.log10(spec.clamp_min(1e-10))).numpy()


def spectrogram_grid(waves: torch.Tensor | np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str],
                     sample_rate: int = 16_000, title: str = ""):
    """Spectrograms of ``waves (rows, columns, samples)`` as one mosaic image on one colour scale (80 dB range);
    each cell spans 0 to ``sample_rate / 2`` Hz (bottom to top) over the clip's duration (left to right)."""
    waves = np.asarray(torch.as_tensor(np.asarray(waves)).float())
    rows, columns = waves.shape[:2]
    specs = [[log_spectrogram(waves[r, c]) for c in range(columns)] for r in range(rows)]
    seconds = waves.shape[-1] / sample_rate
    return _mosaic(specs, row_labels, column_labels, 80.0, f"each cell: {seconds:.2f} s, 0-{sample_rate // 2000} kHz",
                   title)


def _stretched_cells(logmels: Sequence[Sequence[torch.Tensor | np.ndarray]]) -> list[list[np.ndarray]]:
    """``logmels[row][column]`` ``(frames, n_mels)`` as images ``(n_mels, width)``, all stretched to the widest."""
    cells = [[np.asarray(torch.as_tensor(np.asarray(c)).float()).T for c in row] for row in logmels]
    width = max(c.shape[1] for row in cells for c in row)
    return [[c[:, np.minimum((np.arange(width) * c.shape[1]) // width, c.shape[1] - 1)] for c in row]
            for row in cells]


def logmel_grid(logmels: Sequence[Sequence[torch.Tensor | np.ndarray]], row_labels: Sequence[str],
                column_labels: Sequence[str], seconds: float, sample_rate: int = 16_000, title: str = "",
                cell_width_in: float = 1.5):
    """Log-mel frames, ``logmels[row][column]`` each ``(frames, n_mels)`` (natural log of power; a tensor
    ``(rows, columns, frames, n_mels)`` works too), as one mosaic on one colour scale (18.4 nats = 80 dB range); each
    cell spans the mel bands (bottom to top) over ``seconds`` (left to right) and is ``cell_width_in`` inches wide.
    Cells with fewer frames (a coarser hop) are stretched to the widest."""
    specs = _stretched_cells(logmels)
    n_mels = specs[0][0].shape[0]
    return _mosaic(specs, row_labels, column_labels, 8 * math.log(10),
                   f"each cell: {seconds:.2f} s, {n_mels} mel bands 0-{sample_rate // 2000} kHz", title, cell_width_in)


def logmel_change_grid(changes: Sequence[Sequence[torch.Tensor | np.ndarray]], row_labels: Sequence[str],
                       column_labels: Sequence[str], seconds: float, sample_rate: int = 16_000, title: str = "",
                       cell_width_in: float = 1.5):
    """Changes of log-mel frames (``changes[row][column]`` each ``(frames, n_mels)``, in nats), as
    :func:`logmel_grid` lays them out, on a diverging colour scale symmetric around 0 (red: more energy, blue: less;
    the limit is the 99.5th percentile of ``|change|``) with a colour bar."""
    specs = _stretched_cells(changes)
    n_mels = specs[0][0].shape[0]
    return _mosaic(specs, row_labels, column_labels, None,
                   f"each cell: {seconds:.2f} s, {n_mels} mel bands 0-{sample_rate // 2000} kHz", title, cell_width_in)


def _tile(specs: list[list[np.ndarray]]) -> tuple[np.ndarray, list[float], list[float]]:
    """``specs[row][column]`` images ``(height, width)`` tiled with gaps (row 0 at the top with ``origin="lower"``);
    returns the mosaic and the centres of the columns and rows."""
    rows, columns = len(specs), len(specs[0])
    height, width = specs[0][0].shape
    gap, row_gap = max(2, width // 40), max(2, height // 16)
    mosaic = np.full((rows * (height + row_gap) - row_gap, columns * (width + gap) - gap), np.nan)
    for r in range(rows):
        for c in range(columns):
            top = (rows - 1 - r) * (height + row_gap)
            mosaic[top:top + height, c * (width + gap):c * (width + gap) + width] = specs[r][c]
    return (mosaic, [c * (width + gap) + width / 2 for c in range(columns)],
            [(rows - 1 - r) * (height + row_gap) + height / 2 for r in range(rows)])


def _mosaic(specs: list[list[np.ndarray]], row_labels: Sequence[str], column_labels: Sequence[str],
            value_range: float | None, xlabel: str, title: str, cell_width_in: float = 1.5):
    """``specs[row][column]`` images ``(height, width)`` tiled, labelled, on one colour scale of ``value_range``
    below the peak (``None``: a diverging scale symmetric around 0, with a colour bar in nats); each cell
    ``cell_width_in`` inches wide."""
    mosaic, xs, ys = _tile(specs)
    figure = new_figure(cell_width_in * len(xs) + 1.2 + (0.8 if value_range is None else 0), 1.1 * len(ys) + 0.7)
    axis = figure.subplots()
    if value_range is None:
        limit = max(float(np.nanpercentile(np.abs(mosaic), 99.5)), 1e-6)
        image = axis.imshow(np.ma.masked_invalid(mosaic), origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit,
                            vmax=limit, interpolation="nearest")
        figure.colorbar(image, ax=axis, fraction=0.03, pad=0.01).set_label("change (nats)", fontsize=7)
    else:
        peak = float(np.nanmax(mosaic))
        axis.imshow(np.ma.masked_invalid(mosaic), origin="lower", aspect="auto", cmap="magma",
                    vmin=peak - value_range, vmax=peak, interpolation="nearest")
    axis.set_xticks(xs, list(column_labels), fontsize=7)
    axis.set_yticks(ys, list(row_labels), fontsize=7)
    axis.tick_params(length=0)
    axis.xaxis.tick_top()
    for side in axis.spines.values():
        side.set_visible(False)
    axis.set_xlabel(xlabel, fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    return figure


def ics_figure(results: Mapping[str, IcsResult]):
    """Relative ICS error against ``k`` (log scale) for each labelled ``IcsResult``."""
    figure = new_figure(5.5, 3.4)
    axis = figure.subplots()
    for label, result in results.items():
        axis.plot(result.ks, result.relative, marker="o", label=f"{label} (mean {result.mean_relative:.2f})")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("k (dimensions swapped, most different first)")
    axis.set_ylabel("error_k / max_error")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title("Interpolation contribution score (lower at small k: more concentrated)", fontsize=9)
    return figure


def density_figure(weights: Mapping[str, torch.Tensor], title: str = "Probe weights / max |w|"):
    """The paper's density plot: a KDE of each labelled weight matrix's entries divided by ``max |w|``."""
    from .concentration import weight_density

    figure = new_figure(5.5, 3.4)
    axis = figure.subplots()
    for label, matrix in weights.items():
        grid, density = weight_density(matrix)
        axis.plot(grid.numpy(), density.numpy(), label=label)
    axis.set_xlabel("w / max |w|")
    axis.set_ylabel("density")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title(title, fontsize=9)
    return figure


def posterior_figure(stats: Mapping[str, PosteriorStats]):
    """Per-dimension KL to the prior and variance of the posterior mean, each sorted, for labelled
    ``PosteriorStats`` (log scale; the dashed line is the active-unit threshold)."""
    figure = new_figure(9.0, 3.2)
    kl_axis, var_axis = figure.subplots(1, 2)
    for label, item in stats.items():
        if item.kl_per_dim is not None:
            kl_axis.plot(np.sort(item.kl_per_dim.numpy())[::-1], label=f"{label} ({item.kl_total:.1f} nats)")
        var_axis.plot(np.sort(item.mean_variance.numpy())[::-1] + 1e-12, label=f"{label} ({item.n_active} active)")
    threshold = next(iter(stats.values())).threshold if stats else 0.01
    var_axis.axhline(threshold, color="grey", linestyle="--", linewidth=1)
    if not kl_axis.lines:
        kl_axis.text(0.5, 0.5, "no Gaussian module:\nno KL to the prior", ha="center", va="center",
                     transform=kl_axis.transAxes)
    for axis, name in ((kl_axis, "KL to N(0,1) per frame (nats)"), (var_axis, "variance of the posterior mean")):
        if axis.lines:
            axis.set_yscale("log")
        axis.set_xlabel("dimension (sorted)")
        axis.set_title(name, fontsize=9)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=7)
    return figure


def tsne_figure(embeddings: Mapping[str, tuple[np.ndarray, Sequence]], title: str = "t-SNE of pooled features",
                max_legend: int = 12):
    """One scatter per labelled ``(points (n, 2), labels (n,))``, coloured by label."""
    count = max(len(embeddings), 1)
    columns = min(count, 4)
    rows = math.ceil(count / columns)
    figure = new_figure(3.0 * columns, 3.0 * rows + 0.4)
    axes = figure.subplots(rows, columns, squeeze=False)
    # the grid can hold more axes than there are embeddings
    for axis, (label, (points, labels)) in zip(axes.flat, embeddings.items(), strict=False):
        names, codes = np.unique(np.asarray(labels), return_inverse=True)
        colours = codes % 20 if len(names) > 10 else codes
        axis.scatter(points[:, 0], points[:, 1], c=colours, cmap="tab20" if len(names) > 10 else "tab10",
                     vmin=0, vmax=19 if len(names) > 10 else 9, s=9)
        axis.set_title(label, fontsize=8)
        axis.set_xticks([])
        axis.set_yticks([])
        if len(names) <= max_legend:
            for code, name in enumerate(names):
                axis.scatter([], [], color=axis.collections[0].cmap(axis.collections[0].norm(code)), label=str(name))
            axis.legend(fontsize=6, markerscale=1.5)
    for axis in list(axes.flat)[count:]:
        axis.set_visible(False)
    figure.suptitle(title, fontsize=10)
    return figure


def loss_figure(losses: Mapping[str, Sequence[float]], title: str = "Decoder training loss"):
    """Training loss per step (log scale) for each labelled run."""
    figure = new_figure(5.5, 3.2)
    axis = figure.subplots()
    for label, values in losses.items():
        axis.plot(np.arange(1, len(values) + 1), values, label=label, linewidth=1)
    axis.set_yscale("log")
    axis.set_xlabel("step")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7)
    axis.set_title(title, fontsize=9)
    return figure
