"""The model side of a run: loading the encoder, choosing modules and device, and turning decoded audio into
per-module frame rows (batched for short files, chunked for long ones)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence

import torch

from ..audio import SAMPLE_RATE
from ..encoder import SmoothInfoMaxEncoder, extract_chunk_samples
from .chunking import FrameRows, iter_chunks, supports_chunking


class SetupError(ValueError):
    """The run cannot start (bad model, module selection, device, ...); the CLI exits with code 2."""


def load_encoder(model: str, revision: str | None, device: torch.device) -> SmoothInfoMaxEncoder:
    """``from_pretrained`` with errors turned into ``SetupError``; the model is returned on ``device``."""
    try:
        return SmoothInfoMaxEncoder.from_pretrained(model, revision=revision, device=device)
    except Exception as err:  # noqa: BLE001 -- LoadError, Hub errors, OSError: all mean "this --model cannot be used"
        raise SetupError(f"cannot load model {model!r}{f' at {revision}' if revision else ''}: {err}") from None


def resolve_modules(encoder: SmoothInfoMaxEncoder, modules: Sequence[int] | None) -> tuple[int, ...]:
    """Sorted non-negative module indices (``None`` means all)."""
    try:
        return tuple(encoder.resolve_layers(None if modules is None else list(modules)))
    except ValueError as err:
        raise SetupError(f"--modules: {err}") from None


def resolve_device(name: str, environ: Mapping[str, str] = os.environ) -> torch.device:
    """``auto`` is CUDA if available, else CPU; under torchrun each rank takes GPU ``LOCAL_RANK``."""
    local_rank = int(environ.get("LOCAL_RANK", "0"))
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise SetupError(f"--device {name!r}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SetupError(f"--device {name}: CUDA is not available on this machine")
    return device


def too_short_reason(encoder: SmoothInfoMaxEncoder, modules: Sequence[int], samples: int) -> str | None:
    """Why ``samples`` (16 kHz) are too few, or ``None``: an input must cover the conv receptive field of the
    deepest requested module, else even its first frame would be mostly padding."""
    deepest = max(modules)
    needed = encoder.geometries[deepest].conv_receptive_field_samples
    if samples >= needed:
        return None
    return (f"too short: {samples} samples ({samples / SAMPLE_RATE * 1000:.1f} ms at 16 kHz), shorter than the "
            f"{needed}-sample ({needed / SAMPLE_RATE * 1000:.1f} ms) receptive field of module {deepest}")


def autocast_context(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def batch_rows(
    encoder: SmoothInfoMaxEncoder, waveforms: list[torch.Tensor], modules: Sequence[int], bf16: bool,
    logvar: bool = True,
) -> list[dict[int, FrameRows]]:
    """``extract`` on a list of mono 16 kHz waveforms; per item ``{module: FrameRows}`` of its valid frames
    (``logvar=False`` skips the log-variance heads)."""
    device = next(encoder.parameters()).device
    with autocast_context(device, bf16):
        out = encoder.extract(waveforms, sample_rate=SAMPLE_RATE, layers=list(modules), logvar=logvar)
    return [
        {f.index: FrameRows(0, f.unpad(i), None if f.logvar is None else f.unpad(i, "logvar")) for f in out}
        for i in range(len(waveforms))
    ]


def long_rows(
    encoder: SmoothInfoMaxEncoder, waveform: torch.Tensor, modules: Sequence[int], chunk_samples: int, bf16: bool,
    logvar: bool = True,
) -> Iterator[dict[int, FrameRows]]:
    """Rows of one long file, chunk by chunk (a single whole-file pass if the architecture cannot be chunked).
    A chunk is computed at most ``extract_chunk_samples`` at a time (4 s on a CPU in float32, 8 s in bfloat16, where
    larger pieces run slower)."""
    if supports_chunking(encoder.config, max(modules)):
        parameter = next(encoder.parameters())
        dtype = torch.bfloat16 if bf16 else parameter.dtype
        compute_samples = min(chunk_samples, extract_chunk_samples(parameter.device.type, dtype))
        yield from iter_chunks(encoder, waveform, modules, compute_samples, torch.bfloat16 if bf16 else None, logvar)
    else:
        yield from batch_rows(encoder, [waveform], modules, bf16, logvar)
