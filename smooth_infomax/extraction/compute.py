"""The model side of a run: loading the encoder and fixing the run's settings, decoding work items in DataLoader
workers, and turning decoded audio into per-module frame rows (batched for short files, chunked for long ones).

Decoding and computing return values, never raise for one file: ``decode_batches`` yields ``Decoded`` or a
``Failure`` (stage ``decode``) per item, ``compute`` a ``Computed`` or a ``Failure`` (stage ``compute``). A long
file's rows are computed lazily while they are written; an error of the model then surfaces as a ``ComputeError``
so that the write stage reports it as a compute failure, not as its own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from ..audio import SAMPLE_RATE
from ..encoder import SmoothInfoMaxEncoder
from ..hub import DEFAULT_MODEL, shipped_models
from ..inference import extract_chunk_samples, supports_chunking
from ..outputs import FrameRows
from .audio_io import BadAudio, DecodedAudio, decode
from .plan import Failure, WorkItem, failure_for, file_sha256, model_sha256
from .settings import FeatureSettings, RunContext, RunOptions, SetupError

Rows = Iterable[dict[int, FrameRows]]
"""A file's rows: ``{module: FrameRows}`` per chunk (one chunk for a file computed whole)."""


# ---- the model and the run's settings -----------------------------------------------------------------------------

def prepare_context(options: RunOptions) -> RunContext:
    """Load the model and fix the settings that decide the outputs' numbers; ``SetupError`` if the run cannot
    start."""
    device = _resolve_device(options.device)
    encoder = load_encoder(options.model or _default_model(), options.revision, device)
    modules = resolve_modules(encoder, options.modules)
    compute_dtype = "bfloat16" if options.bf16 else "float32"
    settings = FeatureSettings(modules, tuple(options.what), options.dtype, compute_dtype, model_sha256(encoder))
    context = RunContext(encoder, settings, settings.sha256(), str(encoder.name_or_path), encoder.revision or "")
    if not any(context.module_keys(m) for m in modules):
        raise SetupError(f"--what {','.join(options.what)}: none of modules {modules} is Gaussian, nothing to store")
    return context


def _default_model() -> str:
    """The model of a run without ``--model``: ``hub.DEFAULT_MODEL`` when it is shipped, else a ``SetupError``."""
    if DEFAULT_MODEL in shipped_models():
        return DEFAULT_MODEL
    raise SetupError(f"no default model: {DEFAULT_MODEL!r} is not shipped with this installation; "
                     "pass --model NAME|REPO|PATH (see sim-extract --list-models)")


def load_encoder(model: str | None, revision: str | None, device: torch.device) -> SmoothInfoMaxEncoder:
    """``hub.load_for_cli``: every load failure is a ``SetupError``; the model is returned on ``device``."""
    from ..hub import load_for_cli

    return load_for_cli(model, revision, device=device, error=SetupError)


def resolve_modules(encoder: SmoothInfoMaxEncoder, modules: Sequence[int] | None) -> tuple[int, ...]:
    """Sorted non-negative module indices (``None`` means all)."""
    try:
        return tuple(encoder.resolve_modules(None if modules is None else list(modules)))
    except ValueError as err:
        raise SetupError(f"--modules: {err}") from None


def _resolve_device(name: str, environ: Mapping[str, str] = os.environ) -> torch.device:
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


def too_short_reason(context: RunContext, samples: int) -> str | None:
    """Why ``samples`` (16 kHz) are too few, or ``None``: an input must cover the conv receptive field of the
    deepest requested module, else even its first frame would be mostly padding."""
    deepest = max(context.settings.modules)
    needed = context.encoder.geometries[deepest].conv_receptive_field_samples
    if samples >= needed:
        return None
    return (f"too short: {samples} samples ({samples / SAMPLE_RATE * 1000:.1f} ms at 16 kHz), shorter than the "
            f"{needed}-sample ({needed / SAMPLE_RATE * 1000:.1f} ms) receptive field of module {deepest}")


# ---- decoding -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Decoded:
    """A decoded work item: ``audio`` (mono float32 16 kHz) and the sha256 of the file's bytes."""

    item: WorkItem
    audio: DecodedAudio
    source_sha256: str

    @property
    def samples(self) -> int:
        return int(self.audio.waveform.shape[0])


def _decode_item(item: WorkItem) -> Decoded | Failure:
    """Decode one work item; a bad file gives a ``Failure`` (stage ``decode``) instead of raising, so one bad file
    never stops a worker or the run."""
    path = item.source.path
    try:
        return Decoded(item, decode(path), file_sha256(path))
    except BadAudio as bad:
        return failure_for(item.source, bad.reason, "decode")
    except Exception as err:  # noqa: BLE001 -- a worker must survive anything a file can do to a decoder
        return failure_for(item.source, f"cannot decode ({type(err).__name__}: {err})", "decode")


class _DecodeDataset(Dataset):
    """``dataset[i]`` is ``_decode_item(items[i])``."""

    def __init__(self, items: list[WorkItem]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Decoded | Failure:
        return _decode_item(self.items[index])


def decode_batches(items: list[WorkItem], batches: list[list[int]], num_workers: int) -> DataLoader:
    """Per batch of indices into ``items``, the list of their ``Decoded``/``Failure`` in batch order, decoded in
    ``num_workers`` DataLoader workers (0: in this process)."""
    return DataLoader(_DecodeDataset(items), batch_sampler=batches, num_workers=num_workers, collate_fn=_as_list,
                      prefetch_factor=2 if num_workers else None)


def _as_list(batch: list) -> list:
    return batch


def check_length(result: Decoded | Failure, context: RunContext) -> Decoded | Failure:
    """``result``, or a ``Failure`` (stage ``decode``) if the decoded audio is too short for the modules."""
    if isinstance(result, Decoded) and (reason := too_short_reason(context, result.samples)):
        return failure_for(result.item.source, reason, "decode")
    return result


# ---- computing ----------------------------------------------------------------------------------------------------

class ComputeError(RuntimeError):
    """The model failed while a long file's rows were computed lazily (during their write); the message is the
    failure's reason."""


@dataclass(frozen=True)
class Computed:
    """A decoded file and its rows (lazy, chunk by chunk, for a long file)."""

    decoded: Decoded
    rows: Rows


def compute(context: RunContext, batch: list[Decoded | Failure], chunk_samples: int,
            bf16: bool) -> list[Computed | Failure]:
    """Rows of a batch's decoded files, in batch order; failures of earlier stages are passed through. A long file
    (longer than ``chunk_samples``, alone in its batch) gets lazy rows, computed chunk by chunk as it is written."""
    ready = [result for result in batch if isinstance(result, Decoded)]
    computed = iter(_compute_ready(context, ready, chunk_samples, bf16))
    return [next(computed) if isinstance(result, Decoded) else result for result in batch]


def _compute_ready(context: RunContext, ready: list[Decoded], chunk_samples: int,
                   bf16: bool) -> list[Computed | Failure]:
    encoder, modules = context.encoder, context.settings.modules
    logvar = bool({"logvar", "sample"} & set(context.settings.what))  # samples are drawn from mean and logvar
    if len(ready) == 1 and ready[0].samples > chunk_samples:
        chunk_rows = long_rows(encoder, ready[0].audio.waveform, modules, chunk_samples, bf16, logvar)
        return [Computed(ready[0], _compute_errors(chunk_rows))]
    if not ready:
        return []
    try:
        rows = _batch_rows(encoder, [r.audio.waveform for r in ready], modules, bf16, logvar)
    except Exception as err:  # noqa: BLE001 -- e.g. out of memory: the batch's files fail, the run goes on
        return [failure_for(r.item.source, _compute_reason(err), "compute") for r in ready]
    return [Computed(result, [item_rows]) for result, item_rows in zip(ready, rows, strict=True)]


def _compute_errors(rows: Iterator[dict[int, FrameRows]]) -> Iterator[dict[int, FrameRows]]:
    """``rows``, with any error of the model raised as a ``ComputeError``."""
    try:
        yield from rows
    except Exception as err:  # reported as the file's compute failure by the write stage
        raise ComputeError(_compute_reason(err)) from err


def _compute_reason(err: Exception) -> str:
    return f"compute failed ({type(err).__name__}: {err})"


def _autocast(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def _batch_rows(
    encoder: SmoothInfoMaxEncoder, waveforms: list[torch.Tensor], modules: Sequence[int], bf16: bool,
    logvar: bool = True,
) -> list[dict[int, FrameRows]]:
    """``extract`` on a list of mono 16 kHz waveforms; per item ``{module: FrameRows}`` of its valid frames
    (``logvar=False`` skips the log-variance heads)."""
    device = next(encoder.parameters()).device
    with _autocast(device, bf16):
        out = encoder.extract(waveforms, sample_rate=SAMPLE_RATE, modules=list(modules), logvar=logvar)
    return [
        {f.index: FrameRows(0, f.unpad(i), None if f.logvar is None else f.unpad(i, "logvar")) for f in out}
        for i in range(len(waveforms))
    ]


def long_rows(
    encoder: SmoothInfoMaxEncoder, waveform: torch.Tensor, modules: Sequence[int], chunk_samples: int, bf16: bool,
    logvar: bool = True,
) -> Iterator[dict[int, FrameRows]]:
    """Rows of one long file, chunk by chunk (a single whole-file pass if the architecture cannot be chunked).
    A chunk is computed at most ``inference.extract_chunk_samples`` at a time (the machine's fastest piece size)."""
    if supports_chunking(encoder.config, max(modules)):
        parameter = next(encoder.parameters())
        dtype = torch.bfloat16 if bf16 else parameter.dtype
        compute_samples = min(chunk_samples, extract_chunk_samples(parameter.device.type, dtype))
        yield from encoder.extract_chunks(waveform, modules=modules, chunk_samples=compute_samples,
                                          autocast_dtype=torch.bfloat16 if bf16 else None, logvar=logvar)
    else:
        yield from _batch_rows(encoder, [waveform], modules, bf16, logvar)
