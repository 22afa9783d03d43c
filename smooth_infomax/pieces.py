"""A large batch through the conv modules in cache-sized pieces; what follows them (the GRU) once for the batch.

On a CPU, the first layer of a batch of 60 s of padded audio writes 200 MB of bfloat16 activations: far more than
the caches, and fresh memory (page faults) on every call. Pieces of 16 s of padded audio in bfloat16, 8 s in float32 (``default_sizes_s``)
stay in the caches and reuse memory, while the GRU, a sequential loop whose cost per step barely grows with the
batch, still runs once over all items instead of once per piece. Every item's frames depend only on its own
samples, so the result equals a whole-batch pass (up to float rounding).
"""

from __future__ import annotations

import torch

from .geometry import output_lengths
from .outputs import ModuleFeatures


def piece_groups(lengths: list[int], piece_samples: int) -> list[list[int]]:
    """Item indices sorted by length, grouped so that ``count * longest <= piece_samples`` (longer items alone)."""
    groups: list[list[int]] = []
    for item in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if groups and (len(groups[-1]) + 1) * lengths[item] <= piece_samples:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def conv_modules_in_pieces(encoder, waveform: torch.Tensor, lengths: torch.Tensor, modules: list[int],
                           logvar: bool, piece_samples: int) -> list[ModuleFeatures]:
    """``encoder._folded_features`` of conv-only ``modules`` (``0 .. k``) for a batch ``waveform (batch, samples)``
    with ``lengths (batch,)`` on the CPU, computed group by group, each group in one pass (``_folded_pass``); a long
    item alone is computed in chunks. Groups are sized by each item's padded width (at least the model's
    ``_min_input_samples``), so a group of tiny items stays within ``piece_samples`` too.
    Returns one ``ModuleFeatures`` per module, means and log-variances ``(batch, frames, dim)`` (no samples)."""
    batch, padded = waveform.shape
    frames = [int(n) for n in output_lengths(encoder.config, padded)]
    valid = output_lengths(encoder.config, lengths)
    widths = [max(int(n), encoder._min_input_samples) for n in lengths]
    means: dict[int, torch.Tensor] = {}
    logvars: dict[int, torch.Tensor | None] = {}
    for group in piece_groups(widths, piece_samples):
        longest = int(lengths[group].max())
        if len(group) == 1 and encoder._chunkable(waveform[group, :longest], modules):
            parts = encoder._chunked_features(waveform[group[0], :longest], modules, False, None, logvar)
        else:
            parts = encoder._folded_pass(waveform[group, :longest], lengths[group], modules, False, None, logvar)
        for part in parts:
            m = part.index
            if m not in means:
                means[m] = _empty_like_rows(part.mean, batch, frames[m])
                logvars[m] = None if part.logvar is None else _empty_like_rows(part.logvar, batch, frames[m])
            _place(means[m], group, part.mean)
            if part.logvar is not None:
                _place(logvars[m], group, part.logvar)
    return [ModuleFeatures(m, means[m], logvars[m], means[m], valid[m], encoder.geometries[m]) for m in modules]


def _empty_like_rows(rows: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    return rows.new_empty((batch, frames, rows.shape[-1]))


def _place(out: torch.Tensor, group: list[int], rows: torch.Tensor) -> None:
    """Copy a group's ``rows (len(group), frames', dim)`` into ``out (batch, frames, dim)``; zero the rest."""
    index = torch.tensor(group)
    shown = min(rows.shape[1], out.shape[1])
    out[index, :shown] = rows[:, :shown]
    out[index, shown:] = 0
