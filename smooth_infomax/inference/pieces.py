"""A large batch through the conv modules in cache-sized pieces; what follows them (the GRU) once for the batch.

Why: on a CPU, the first layer of a batch of 60 s of padded audio writes 200 MB of bfloat16 activations, far more
than the caches, into fresh memory (page faults) on every call. Pieces of ``Sizes.piece_samples`` of padded audio
stay in the caches and reuse memory, while the GRU, a sequential loop whose cost per step barely grows with the
batch, still runs once over all items instead of once per piece. Every item's frames depend only on its own
samples, so the result equals a whole-batch pass (up to float rounding).
"""

from __future__ import annotations

import torch

from ..geometry import output_lengths
from ..outputs import ModuleFeatures
from .chunks import chunked_features, is_chunked
from .folded import folded_pass
from .folding import FoldedEncoder
from .machine import Sizes
from .stages import Request


def piece_groups(lengths: list[int], piece_samples: int) -> list[list[int]]:
    """Item indices sorted by length, grouped so that ``count * longest <= piece_samples`` (longer items alone)."""
    groups: list[list[int]] = []
    for item in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if groups and (len(groups[-1]) + 1) * lengths[item] <= piece_samples:
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def leading_conv_modules(model: FoldedEncoder, deepest: int) -> list[int]:
    """Modules ``0 .. k`` (``k <= deepest``) that have convs and no GRU: those a batch can compute in pieces."""
    leading = []
    for index, module in enumerate(model.modules[: deepest + 1]):
        if not module.convs or module.gru is not None:
            break
        leading.append(index)
    return leading


def conv_modules_in_pieces(model: FoldedEncoder, waveform: torch.Tensor, lengths: torch.Tensor, modules: list[int],
                           logvar: bool, sizes: Sizes) -> list[ModuleFeatures]:
    """Features of the conv-only ``modules`` (``0 .. k``) of a batch ``waveform (batch, samples)`` with ``lengths
    (batch,)`` on the CPU, computed group by group, each group in one pass; a long item alone is computed in chunks.
    Groups are sized by each item's padded width (at least ``model.min_input_samples``), so a group of tiny items
    stays within ``sizes.piece_samples`` too.

    Returns one ``ModuleFeatures`` per module, means and log-variances ``(batch, frames, dim)`` (no samples)."""
    batch, padded = waveform.shape
    frames = [int(n) for n in output_lengths(model.config, padded)]
    valid = output_lengths(model.config, lengths)
    widths = [max(int(n), model.min_input_samples) for n in lengths]
    request = Request(tuple(modules), logvar=logvar)
    means: dict[int, torch.Tensor] = {}
    logvars: dict[int, torch.Tensor] = {}  # only modules with a log-variance head
    for group in piece_groups(widths, sizes.piece_samples):
        for part in _group_features(model, waveform, lengths, group, request, sizes):
            m = part.index
            if m not in means:
                means[m] = _empty_like_rows(part.mean, batch, frames[m])
                if part.logvar is not None:
                    logvars[m] = _empty_like_rows(part.logvar, batch, frames[m])
            _place(means[m], group, part.mean)
            if part.logvar is not None:
                _place(logvars[m], group, part.logvar)
    return [ModuleFeatures(m, means[m], logvars.get(m), means[m], valid[m], model.geometries[m]) for m in modules]


def _group_features(model: FoldedEncoder, waveform: torch.Tensor, lengths: torch.Tensor, group: list[int],
                    request: Request, sizes: Sizes) -> list[ModuleFeatures]:
    """One group's features: in chunks for a single long item, else in one pass."""
    longest = int(lengths[group].max())
    if is_chunked(model.config, len(group), longest, max(request.modules), sizes.chunk_samples):
        return chunked_features(model, waveform[group[0], :longest], request, sizes.chunk_samples)
    return folded_pass(model, waveform[group, :longest], lengths[group], request)


def _empty_like_rows(rows: torch.Tensor, batch: int, frames: int) -> torch.Tensor:
    return rows.new_empty((batch, frames, rows.shape[-1]))


def _place(out: torch.Tensor, group: list[int], rows: torch.Tensor) -> None:
    """Copy a group's ``rows (len(group), frames', dim)`` into ``out (batch, frames, dim)``; zero the rest."""
    index = torch.tensor(group)
    shown = min(rows.shape[1], out.shape[1])
    out[index, :shown] = rows[:, :shown]
    out[index, shown:] = 0
