"""Chunked extraction of long files in bounded memory, equal to a whole-file pass.

Why it is exact. A conv frame depends only on a bounded window of input samples (``FrameGeometry``: frame ``i``
of a module reads ``[i * hop + first_sample, ... + conv_receptive_field_samples)``). Each chunk reads the samples
its frames need plus that context, starting at a multiple of the deepest conv module's hop, so local frame ``j``
of every layer is global frame ``j + start / hop_layer``. A frame is kept only if its whole receptive field lies
inside the chunk's samples; at the start and at the end of the file the chunk reaches the file's own edges, so
the conv padding and the masking of frames past the valid length are exactly those of a whole-file pass. GRU
modules then run over the kept frames chunk after chunk, carrying their hidden state (the GRU is causal).

Memory: one chunk of ``chunk_samples`` plus about one receptive field of context is in flight at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..config import EncoderConfig
from ..geometry import output_lengths
from ..inference import compute_dtype, run_gru


@dataclass(frozen=True)
class FrameRows:
    """Consecutive valid frames of one module: ``mean``/``logvar`` ``(rows, dim)`` starting at ``start_frame``."""

    start_frame: int
    mean: torch.Tensor
    logvar: torch.Tensor | None


@dataclass(frozen=True)
class ChunkWindow:
    """One chunk: it reads input samples ``[sample_start, sample_stop)`` (16 kHz) and keeps, per conv module,
    the global frames ``frames[m] = (start, stop)``."""

    sample_start: int
    sample_stop: int
    frames: dict[int, tuple[int, int]]


def supports_chunking(config: EncoderConfig, deepest: int) -> bool:
    """Chunking needs every conv module up to ``deepest`` before the first GRU (true for all presets)."""
    modules = config.modules[: deepest + 1]
    if not modules[0].conv_layers:
        return False
    seen_gru = False
    for module in modules:
        if module.conv_layers and seen_gru:
            return False
        seen_gru = seen_gru or module.gru_hidden_size > 0
    return True


def plan_chunks(encoder, num_samples: int, deepest: int, chunk_samples: int) -> list[ChunkWindow]:
    """Windows covering every valid frame of the modules up to ``deepest``, each keeping about ``chunk_samples``
    of output (a whole number of the deepest conv module's hops, at least one)."""
    config, geometries = encoder.config, encoder.geometries
    conv = [m for m in range(deepest + 1) if config.modules[m].conv_layers]
    lengths = [int(n) for n in output_lengths(config, num_samples)]
    hop = geometries[conv[-1]].hop_samples
    total, step = lengths[conv[-1]], max(1, chunk_samples // hop)
    windows = []
    for first in range(0, total, step):
        last = min(first + step, total) == total
        frames = {}
        for m in conv:
            ratio = hop // geometries[m].hop_samples
            stop = lengths[m] if last else min((first + step) * ratio, lengths[m])
            frames[m] = (min(first * ratio, stop), stop)
        windows.append(_window(geometries, frames, hop, num_samples, last))
    return windows


def _window(geometries, frames: dict[int, tuple[int, int]], hop: int, num_samples: int, last: bool) -> ChunkWindow:
    spans = [(m, start, stop) for m, (start, stop) in frames.items() if stop > start]
    reach_start = min(start * geometries[m].hop_samples + geometries[m].first_sample for m, start, _ in spans)
    reach_stop = max((stop - 1) * geometries[m].hop_samples + geometries[m].first_sample
                     + geometries[m].conv_receptive_field_samples for m, _, stop in spans)
    sample_start = max(0, reach_start // hop * hop)
    sample_stop = num_samples if last or reach_stop >= num_samples else reach_stop
    return ChunkWindow(sample_start, sample_stop, frames)


def iter_chunks(
    encoder, waveform: torch.Tensor, modules: Sequence[int], chunk_samples: int, autocast: torch.dtype | None = None,
    logvar: bool = True,
) -> Iterator[dict[int, FrameRows]]:
    """Features of one long file, chunk by chunk.

    Args:
        encoder: a ``SmoothInfoMaxEncoder`` in eval mode (``supports_chunking`` must hold).
        waveform: ``(samples,)`` mono float audio at 16 kHz (CPU is fine; chunks are moved to the model's device).
        modules: module indices to return (non-negative).
        chunk_samples: output per chunk in input samples, e.g. ``30 * 16000``.
        autocast: ``torch.bfloat16`` to compute under autocast, else ``None``.
        logvar: ``False`` skips the log-variance heads (``FrameRows.logvar`` is then ``None``).

    Yields:
        For each chunk, ``{module: FrameRows}`` with that chunk's valid frames ``(rows, dim)``; concatenated over
        the chunks they equal ``encoder.extract(waveform)`` (up to float rounding).
    """
    deepest = max(modules)
    states: dict[int, torch.Tensor] = {}
    for window in plan_chunks(encoder, int(waveform.shape[0]), deepest, chunk_samples):
        with torch.inference_mode(), _autocast(encoder, autocast):
            yield _run_window(encoder, waveform, window, set(modules), deepest, states, logvar)


def _run_window(encoder, waveform, window: ChunkWindow, modules: set[int], deepest: int, states,
                want_logvar: bool) -> dict[int, FrameRows]:
    parameter = next(encoder.parameters())
    folded = encoder.inference_modules()
    segment = waveform[window.sample_start: window.sample_stop].to(parameter.device, torch.float32)
    x = segment[None, :, None] * encoder.config.input_gain + encoder.config.input_offset  # (1, samples, 1)
    x = x.to(compute_dtype(parameter))
    lengths = torch.tensor([segment.shape[0]])
    rows, out = None, {}
    for m, stage in enumerate(encoder.stages[: deepest + 1]):
        if stage.convs:
            x, logvar, lengths = folded[m].encode(x, lengths, want_logvar)  # (1, local frames, dim)
            rows = _kept(encoder, window, m, x, logvar, int(lengths[0]))
        if stage.gru is not None and rows.mean.shape[1] > 0:
            count = torch.tensor([rows.mean.shape[1]])
            recurrent, states[m] = run_gru(stage, rows.mean, count, states.get(m), folded[m])
            rows = FrameRows(rows.start_frame, recurrent, rows.logvar if stage.convs else None)
        elif not stage.convs:
            rows = FrameRows(rows.start_frame, rows.mean, None)
        if m in modules:
            out[m] = FrameRows(rows.start_frame, rows.mean[0], None if rows.logvar is None else rows.logvar[0])
    return out


def _kept(encoder, window: ChunkWindow, m: int, mean, logvar, local_frames: int) -> FrameRows:
    """The frames of module ``m`` this window keeps, still batched ``(1, rows, dim)``."""
    start, stop = window.frames[m]
    offset = window.sample_start // encoder.geometries[m].hop_samples
    if stop - offset > local_frames:
        raise RuntimeError(f"chunk window {window} is too short for module {m}; this is a bug")
    cut = slice(start - offset, stop - offset)
    return FrameRows(start, mean[:, cut], None if logvar is None else logvar[:, cut])


def _autocast(encoder, dtype: torch.dtype | None):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(next(encoder.parameters()).device.type, dtype=dtype)
