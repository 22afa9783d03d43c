"""One long clip computed chunk by chunk in bounded memory, equal to a whole-clip pass.

Why it is exact. A conv frame depends only on a bounded window of input samples (``FrameGeometry``: frame ``i``
of a module reads ``[i * hop + first_sample, ... + conv_receptive_field_samples)``). Each chunk reads the samples
its frames need plus that context, starting at a multiple of the deepest conv module's hop, so local frame ``j``
of every layer is global frame ``j + start / hop_layer``. A frame is kept only if its whole receptive field lies
inside the chunk's samples; at the start and at the end of the clip the chunk reaches the clip's own edges, so
the conv padding and the masking of frames past the valid length are exactly those of a whole-clip pass. GRU
modules then run over the kept frames chunk after chunk, carrying their hidden state (the GRU is causal).

Memory: one chunk of ``chunk_samples`` plus about one receptive field of context is in flight at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..config import EncoderConfig
from ..geometry import FrameGeometry, output_lengths
from ..outputs import FrameRows, ModuleFeatures
from .folding import FoldedEncoder
from .stages import Request, module_features, run_stages


@dataclass(frozen=True)
class ChunkWindow:
    """One chunk: it reads input samples ``[sample_start, sample_stop)`` and keeps, per conv module, the global
    frames ``frames[m] = (start, stop)``."""

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


def is_chunked(config: EncoderConfig, batch: int, num_samples: int, deepest: int, chunk_samples: int) -> bool:
    """Whether ``extract`` computes a batch in chunks: one clip longer than ``chunk_samples``, through modules that
    can be chunked."""
    return batch == 1 and num_samples > chunk_samples and supports_chunking(config, deepest)


def plan_chunks(config: EncoderConfig, geometries: Sequence[FrameGeometry], num_samples: int, deepest: int,
                chunk_samples: int) -> list[ChunkWindow]:
    """Windows covering every valid frame of the modules up to ``deepest``, each keeping about ``chunk_samples``
    of output (a whole number of the deepest conv module's hops, at least one)."""
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


def _window(geometries: Sequence[FrameGeometry], frames: dict[int, tuple[int, int]], hop: int, num_samples: int,
            last: bool) -> ChunkWindow:
    spans = [(m, start, stop) for m, (start, stop) in frames.items() if stop > start]
    reach_start = min(start * geometries[m].hop_samples + geometries[m].first_sample for m, start, _ in spans)
    reach_stop = max((stop - 1) * geometries[m].hop_samples + geometries[m].first_sample
                     + geometries[m].conv_receptive_field_samples for m, _, stop in spans)
    sample_start = max(0, reach_start // hop * hop)
    sample_stop = num_samples if last or reach_stop >= num_samples else reach_stop
    return ChunkWindow(sample_start, sample_stop, frames)


@dataclass(frozen=True)
class ChunkStep:
    """A module's output within one window: ``local (1, local frames, dim)``, what the window computed (the next
    conv module's input), its valid ``lengths (1,)``, and ``rows``, the frames the window keeps, ``(1, rows, dim)``."""

    local: torch.Tensor
    lengths: torch.Tensor
    rows: FrameRows


class WindowPath:
    """One window through the folded modules; GRU states carry over from the previous window in ``states``."""

    def __init__(self, model: FoldedEncoder, window: ChunkWindow, states: dict[int, torch.Tensor], logvar: bool):
        self.model, self.window, self.states, self.logvar = model, window, states, logvar

    def encode(self, m: int, previous: ChunkStep) -> ChunkStep:
        module = self.model.modules[m]
        if not module.convs:  # a GRU-only module reads the kept rows before it
            return ChunkStep(previous.local, previous.lengths, FrameRows(previous.rows.start_frame,
                                                                         previous.rows.mean, None))
        local, logvar, lengths = module.encode(previous.local, previous.lengths, self.logvar)  # (1, frames, dim)
        return ChunkStep(local, lengths, self._kept(m, local, logvar, int(lengths[0])))

    def recur(self, m: int, step: ChunkStep) -> ChunkStep:
        module, rows = self.model.modules[m], step.rows
        if module.gru is None or rows.mean.shape[1] == 0:
            return step
        recurrent, self.states[m] = module.recur(rows.mean, torch.tensor([rows.mean.shape[1]]), self.states.get(m))
        return ChunkStep(step.local, step.lengths, FrameRows(rows.start_frame, recurrent, rows.logvar))

    def collect(self, m: int, step: ChunkStep) -> FrameRows:
        rows = step.rows
        return FrameRows(rows.start_frame, rows.mean[0], None if rows.logvar is None else rows.logvar[0])

    def _kept(self, m: int, mean: torch.Tensor, logvar: torch.Tensor | None, local_frames: int) -> FrameRows:
        """The frames of module ``m`` this window keeps, still batched ``(1, rows, dim)``."""
        start, stop = self.window.frames[m]
        offset = self.window.sample_start // self.model.geometries[m].hop_samples
        if stop - offset > local_frames:
            raise RuntimeError(f"chunk window {self.window} is too short for module {m}; this is a bug")
        cut = slice(start - offset, stop - offset)
        return FrameRows(start, mean[:, cut], None if logvar is None else logvar[:, cut])


def iter_chunks(
    model: FoldedEncoder, waveform: torch.Tensor, modules: Sequence[int], chunk_samples: int,
    autocast: torch.dtype | None = None, logvar: bool = True,
) -> Iterator[dict[int, FrameRows]]:
    """Features of one long clip, chunk by chunk.

    Args:
        model: the folded encoder (``supports_chunking`` must hold up to ``max(modules)``).
        waveform: ``(samples,)`` mono float audio at the model's rate (CPU is fine; chunks are moved to the
            model's device).
        modules: sorted, non-negative module indices to return.
        chunk_samples: output per chunk in input samples.
        autocast: a dtype to compute each chunk under ``torch.autocast`` (e.g. ``torch.bfloat16``), else ``None``.
        logvar: ``False`` skips the log-variance heads (``FrameRows.logvar`` is then ``None``).

    Yields:
        For each chunk, ``{module: FrameRows}`` with that chunk's valid frames ``(rows, dim)``; concatenated over
        the chunks they equal a whole-clip pass (up to float rounding).
    """
    states: dict[int, torch.Tensor] = {}
    for window in plan_chunks(model.config, model.geometries, int(waveform.shape[0]), max(modules), chunk_samples):
        # autocast and inference mode are entered per chunk, never held while the caller consumes a chunk's rows
        with torch.inference_mode(), _autocast(model.device, autocast):
            yield _run_window(model, waveform, window, modules, states, logvar)


def _run_window(model: FoldedEncoder, waveform: torch.Tensor, window: ChunkWindow, modules: Sequence[int],
                states: dict[int, torch.Tensor], logvar: bool) -> dict[int, FrameRows]:
    segment = waveform[window.sample_start: window.sample_stop].to(model.device, torch.float32)
    lengths = torch.tensor([segment.shape[0]])
    x = model.scaled_input(segment[None])  # (1, samples, 1); module 0 has convs, so it reads this, not the rows
    start = ChunkStep(x, lengths, FrameRows(window.sample_start, x, None))
    rows = run_stages(WindowPath(model, window, states, logvar), start, modules)
    return dict(zip(modules, rows, strict=True))


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def chunked_features(model: FoldedEncoder, waveform: torch.Tensor, request: Request,
                     chunk_samples: int) -> list[ModuleFeatures]:
    """``extract``'s features of one long clip ``(samples,)``, computed chunk by chunk (exactly equal to one pass;
    the activations of the first layers stay small instead of growing with the clip)."""
    lengths = output_lengths(model.config, torch.tensor([waveform.shape[0]]))
    outputs: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}  # module -> (mean, logvar) (1, frames, dim)
    for rows in iter_chunks(model, waveform, request.modules, chunk_samples, logvar=request.want_logvar):
        for m, frame_rows in rows.items():
            if m not in outputs:
                outputs[m] = _empty_outputs(frame_rows, int(lengths[m][0]))
            _place_rows(outputs[m], frame_rows)
    return [module_features(m, *outputs[m], lengths[m], model.geometries[m], request) for m in request.modules]


def _empty_outputs(rows: FrameRows, frames: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    # why preallocated: each chunk's rows are copied in as they come, so a chunk's memory is reused by the next and
    # no second full-size copy (a concatenation at the end) is ever made
    mean = rows.mean.new_empty((1, frames, rows.mean.shape[1]))
    logvar = None if rows.logvar is None else rows.logvar.new_empty((1, frames, rows.logvar.shape[1]))
    return mean, logvar


def _place_rows(outputs: tuple[torch.Tensor, torch.Tensor | None], rows: FrameRows) -> None:
    stop = rows.start_frame + rows.mean.shape[0]
    mean, logvar = outputs
    mean[0, rows.start_frame: stop] = rows.mean
    if logvar is not None:
        assert rows.logvar is not None  # every chunk has log-variances when the first one had
        logvar[0, rows.start_frame: stop] = rows.logvar
