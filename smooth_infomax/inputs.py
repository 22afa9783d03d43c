"""Turning what users pass to ``extract`` into one padded float batch at the model's sample rate.

The contract (docs/extract.md, "Inputs"): ``(samples,)`` is one mono clip; 2-D is always ``(batch, samples)``;
3-D is always ``(batch, channels, samples)``; a list holds ``(samples,)`` or ``(channels, samples)`` items.
Channels are averaged as the CLI averages them. An axis that looks like soundfile's ``(samples, channels)``
layout is refused with a hint, never guessed. numpy or torch; int16 (/ 2^15), int32 (/ 2^31), int8 (/ 2^7) or
float; any rate in [4 kHz, 384 kHz] (resampled with torchaudio).
"""

from __future__ import annotations

import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import SupportsIndex

import numpy as np
import torch

from .audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, resample, resampler_name

__all__ = ["MAX_SAMPLE_RATE", "MIN_SAMPLE_RATE", "PreparedAudio", "SampleRateWarning", "check_sample_rate",
           "prepare_audio", "resampler_name", "warn_assumed_rate"]

_MAX_CHANNELS = 64  # more than this on a channel axis (or an axis this short on a samples axis) is a layout error
_INT_SCALES = {torch.int16: 2.0**15, torch.int32: 2.0**31, torch.int8: 2.0**7}
_LIST_HINT = "a list of (samples,) items"
_FROM_SOUNDFILE = ("soundfile gives (samples, channels): pass `[audio.T]` (a list item (channels, samples)) or "
                   "`audio.T[None]` (1, channels, samples)")


class SampleRateWarning(UserWarning):
    """``extract`` was not told the input's sample rate and took it to be the model's (16 kHz)."""


@dataclass(frozen=True)
class PreparedAudio:
    """A zero-padded mono batch ``waveform (batch, samples)`` with ``lengths (batch,)`` in samples."""

    waveform: torch.Tensor
    lengths: torch.Tensor
    resampler: str


def check_sample_rate(sample_rate: object) -> int:
    """``sample_rate`` as an int; ``TypeError`` unless it is an integer, ``ValueError`` outside [4 kHz, 384 kHz].
    Checked before any audio is touched: a rate of 1 Hz would otherwise allocate 16,000 samples per input sample."""
    message = f"sample_rate must be an integer number of Hz, e.g. 16000, not {sample_rate!r}"
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, SupportsIndex):
        raise TypeError(message)
    try:
        rate = operator.index(sample_rate)  # a float tensor has __index__ but raises TypeError
    except TypeError:
        raise TypeError(message) from None
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise ValueError(f"sample_rate must be between {MIN_SAMPLE_RATE} and {MAX_SAMPLE_RATE} Hz, got {rate}")
    return rate


def warn_assumed_rate(model_rate: int, stacklevel: int) -> None:
    """Say that ``extract`` took audio given without ``sample_rate`` to be at ``model_rate``."""
    warnings.warn(
        f"extract was called without sample_rate, so the audio is taken to be at {model_rate} Hz and not "
        f"resampled; pass sample_rate={model_rate} to say so, or the audio's own rate to resample it",
        SampleRateWarning, stacklevel=stacklevel + 1,
    )


def prepare_audio(
    wav: object, sample_rate: int, lengths: object | None, target_rate: int, dtype: torch.dtype, device: torch.device
) -> PreparedAudio:
    """Validate, downmix, scale and resample ``wav`` into a padded batch at ``target_rate``."""
    sample_rate = check_sample_rate(sample_rate)
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
    items = _list_items(wav, lengths) if isinstance(wav, (list, tuple)) else _array_items(wav, lengths)
    for i, item in enumerate(items):
        if item.shape[0] == 0:
            raise ValueError(f"item {i} is empty (0 samples)")
        if not torch.isfinite(item).all():
            raise ValueError(f"item {i} contains NaN or infinite samples")
    return items


def _list_items(wav: Sequence[object], lengths: object | None) -> list[torch.Tensor]:
    """Items of a list, each ``(samples,)`` or ``(channels, samples)``, as ``(samples,)`` float32."""
    if lengths is not None:
        raise ValueError("lengths is only for a padded (batch, samples) or (batch, channels, samples) array; "
                         "a list's items give their own lengths")
    if not wav:
        raise ValueError("wav is an empty list; pass at least one clip")
    return [_list_item(x, f"wav[{i}]") for i, x in enumerate(wav)]


def _list_item(x: object, name: str) -> torch.Tensor:
    tensor = _as_tensor(x, name)
    shape = tuple(tensor.shape)
    if tensor.ndim not in (1, 2):
        raise ValueError(f"{name} must be (samples,) or (channels, samples), like every list item; got shape {shape}")
    if tensor.ndim == 2:
        _check_channels(shape, name, "(channels, samples)", _FROM_SOUNDFILE)
    tensor = _to_float32(tensor)
    return tensor if tensor.ndim == 1 else _downmix(tensor)


def _array_items(wav: object, lengths: object | None) -> list[torch.Tensor]:
    """Items of one array: ``(samples,)``, ``(batch, samples)`` or ``(batch, channels, samples)``."""
    tensor = _as_tensor(wav, "wav")
    _check_array_layout(tuple(tensor.shape))
    tensor = _to_float32(tensor)
    if tensor.ndim == 1:
        tensor = tensor[None]
    elif tensor.ndim == 3:
        tensor = _downmix_batch(tensor)
    return _split_by_lengths(tensor, lengths)


def _check_array_layout(shape: tuple[int, ...]) -> None:
    """Refuse an array whose shape is not one of the documented layouts, or only looks like one."""
    if len(shape) not in (1, 2, 3):
        raise ValueError(f"wav must be (samples,), (batch, samples) or (batch, channels, samples), or a list of "
                         f"(samples,) / (channels, samples) items; got shape {shape}")
    layout = "(batch, samples)" if len(shape) == 2 else "(batch, channels, samples)"
    if len(shape) > 1 and shape[0] == 0:
        raise ValueError(f"wav is an empty batch: shape {shape}, read as {layout}; pass at least one clip")
    if len(shape) > 1 and shape[-1] == 0:
        raise ValueError(f"wav holds empty clips: shape {shape}, read as {layout} with 0 samples")
    if len(shape) == 2 and shape[1] <= _MAX_CHANNELS and shape[1] < shape[0]:
        raise ValueError(
            f"wav has shape {shape}, which looks like soundfile's (samples, channels) layout, but a 2-D wav is "
            f"always (batch, samples): here {shape[0]} clips of {shape[1]} samples. {_FROM_SOUNDFILE}. "
            f"A batch of clips this short must be {_LIST_HINT}"
        )
    if len(shape) == 3:
        _check_channels(shape[1:], "wav", layout, "put the channel axis before the samples: "
                        "`np.swapaxes(x, 1, 2)` or `x.transpose(1, 2)`")


def _check_channels(shape: tuple[int, ...], name: str, layout: str, hint: str) -> None:
    """Refuse ``(..., channels, samples)`` with no channel, or whose axes look swapped (``channels`` > 64, or
    more channels than samples)."""
    channels, samples = shape[-2:]
    if channels == 0:
        raise ValueError(f"{name} has 0 channels: shape {tuple(shape)}, read as {layout}")
    if samples and (channels > _MAX_CHANNELS or (channels > 1 and channels >= samples)):
        raise ValueError(
            f"{name} has {channels} channels of {samples} samples when read as {layout}, which looks like "
            f"soundfile's (samples, channels) layout; expected {layout} (at most {_MAX_CHANNELS} channels): {hint}"
        )


def _as_tensor(x: object, name: str) -> torch.Tensor:
    """``x`` as a CPU tensor of its own dtype (numpy arrays shared, not copied, where they can be)."""
    if isinstance(x, np.generic):
        x = np.asarray(x)
    if isinstance(x, np.ndarray):
        if x.dtype == object:
            raise ValueError(f"{name} is a numpy object array; pass numeric audio")
        if not x.dtype.isnative:
            x = x.astype(x.dtype.newbyteorder("="))
        x = torch.from_numpy(np.array(x, order="C", copy=not (x.flags.c_contiguous and x.flags.writeable)))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array, a torch tensor or a list of them, not {type(x).__name__}")
    if x.dtype not in _INT_SCALES and not x.is_floating_point():
        raise ValueError(f"{name} has dtype {x.dtype}; use float, int16 or int32 audio")
    return x.detach().cpu()


def _to_float32(x: torch.Tensor) -> torch.Tensor:
    """int16 / 2^15, int32 / 2^31, int8 / 2^7; floats cast to float32."""
    if x.dtype in _INT_SCALES:
        return x.to(torch.float32) / _INT_SCALES[x.dtype]
    return x.to(torch.float32)


def _downmix(x: torch.Tensor) -> torch.Tensor:
    """``(channels, samples)`` -> ``(samples,)``: the channel mean, computed as the CLI computes it (numpy's mean
    over a ``(samples, channels)`` float32 array), so that both agree bit for bit."""
    if x.shape[0] == 1:
        return x[0]
    return torch.from_numpy(np.ascontiguousarray(x.numpy().T).mean(axis=1))


def _downmix_batch(x: torch.Tensor) -> torch.Tensor:
    """``(batch, channels, samples)`` -> ``(batch, samples)``, item by item as ``_downmix``."""
    if x.shape[1] == 1:
        return x[:, 0]
    return torch.stack([_downmix(item) for item in x])


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
    return [row[: int(n)] for row, n in zip(batch, lengths, strict=True)]


def _resample(items: Sequence[torch.Tensor], orig_rate: int, new_rate: int) -> list[torch.Tensor]:
    """Resample each item alone, so that a batch never influences an item's samples."""
    return [resample(item, orig_rate, new_rate) for item in items]
