"""Turning what users pass to ``extract`` into one padded float batch at the model's sample rate.

Accepted: a 1-D array or tensor ``(samples,)``; a ``(batch, samples)`` tensor or array with optional ``lengths``;
a ``(batch, channels, samples)`` one (channels are averaged); or a list of items, each ``(samples,)`` or
``(channels, samples)``. numpy or torch; int16, int32 or float; any sample rate (resampled with torchaudio).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

_MAX_CHANNELS = 64
_INT_SCALES = {torch.int16: 2.0**15, torch.int32: 2.0**31, torch.int8: 2.0**7}


@dataclass(frozen=True)
class PreparedAudio:
    """A zero-padded mono batch ``waveform (batch, samples)`` with ``lengths (batch,)`` in samples."""

    waveform: torch.Tensor
    lengths: torch.Tensor
    resampler: str


def resampler_name(orig_rate: int, new_rate: int) -> str:
    import torchaudio

    return f"torchaudio {torchaudio.__version__} functional.resample {orig_rate}->{new_rate} (sinc_interp_hann, width 6)"


def prepare_audio(
    wav: object, sample_rate: int, lengths: object | None, target_rate: int, dtype: torch.dtype, device: torch.device
) -> PreparedAudio:
    """Validate, downmix, scale and resample ``wav`` into a padded batch at ``target_rate``."""
    if not isinstance(sample_rate, int) or isinstance(sample_rate, bool) or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer (Hz), not {sample_rate!r}")
    items = _as_items(wav, lengths)
    resampler = ""
    if sample_rate != target_rate:
        items = _resample(items, sample_rate, target_rate)
        resampler = resampler_name(sample_rate, target_rate)
    batch_lengths = torch.tensor([item.shape[0] for item in items], dtype=torch.long)
    batch = torch.zeros(len(items), int(batch_lengths.max()), dtype=torch.float32)
    for row, item in enumerate(items):
        batch[row, : item.shape[0]] = item
    return PreparedAudio(batch.to(device=device, dtype=dtype), batch_lengths.to(device), resampler)


def _as_items(wav: object, lengths: object | None) -> list[torch.Tensor]:
    """A list of mono float32 CPU tensors, one per item, each ``(samples,)`` and non-empty."""
    if isinstance(wav, (list, tuple)):
        if lengths is not None:
            raise ValueError("lengths is only for a padded (batch, samples) tensor; a list gives its own lengths")
        if not wav:
            raise ValueError("wav is an empty list")
        items = [_downmix(_to_float_tensor(x, f"wav[{i}]"), f"wav[{i}]") for i, x in enumerate(wav)]
    else:
        tensor = _to_float_tensor(wav, "wav")
        if tensor.ndim == 1:
            tensor = tensor[None]
        elif tensor.ndim == 3:
            tensor = tensor.mean(dim=1)
        elif tensor.ndim != 2:
            raise ValueError(f"wav must be (samples,), (batch, samples) or (batch, channels, samples); got {tuple(tensor.shape)}")
        items = _split_by_lengths(tensor, lengths)
    for i, item in enumerate(items):
        if item.shape[0] == 0:
            raise ValueError(f"item {i} is empty (0 samples)")
        if not torch.isfinite(item).all():
            raise ValueError(f"item {i} contains NaN or infinite samples")
    return items


def _to_float_tensor(x: object, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise ValueError(f"{name} is a numpy object array; pass numeric audio")
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array, a torch tensor or a list of them, not {type(x).__name__}")
    x = x.detach().cpu()
    if x.dtype in _INT_SCALES:
        return x.to(torch.float32) / _INT_SCALES[x.dtype]
    if not x.is_floating_point():
        raise ValueError(f"{name} has dtype {x.dtype}; use float, int16 or int32 audio")
    return x.to(torch.float32)


def _downmix(x: torch.Tensor, name: str) -> torch.Tensor:
    """``(samples,)`` or ``(channels, samples)`` -> ``(samples,)``, averaging channels."""
    if x.ndim == 1:
        return x
    if x.ndim != 2:
        raise ValueError(f"{name} must be (samples,) or (channels, samples); got {tuple(x.shape)}")
    channels, samples = x.shape
    if channels > _MAX_CHANNELS or channels >= samples:
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}, read as (channels, samples) = ({channels}, {samples}); "
            "pass (channels, samples), e.g. `audio.T` for soundfile's (samples, channels) arrays"
        )
    return x.mean(dim=0)


def _split_by_lengths(batch: torch.Tensor, lengths: object | None) -> list[torch.Tensor]:
    if lengths is None:
        return list(batch)
    lengths = torch.as_tensor(lengths).detach().cpu()
    if lengths.ndim != 1 or lengths.shape[0] != batch.shape[0]:
        raise ValueError(f"lengths must have shape ({batch.shape[0]},), got {tuple(lengths.shape)}")
    if lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError("lengths must be integer sample counts (absolute, not relative)")
    if (lengths < 1).any() or (lengths > batch.shape[1]).any():
        raise ValueError(f"lengths must be in [1, {batch.shape[1]}], got {lengths.tolist()}")
    return [row[: int(n)] for row, n in zip(batch, lengths)]


def _resample(items: Sequence[torch.Tensor], orig_rate: int, new_rate: int) -> list[torch.Tensor]:
    """Resample each item alone, so that a batch never influences an item's samples."""
    import torchaudio.functional

    return [torchaudio.functional.resample(item, orig_rate, new_rate) for item in items]
