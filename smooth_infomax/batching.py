"""Batches for training downstream models: clips at any rates -> one padded 16 kHz batch, and per-dimension
feature standardisation fitted over valid frames and saved as safetensors.

``collate_audio`` resamples and scales exactly as ``extract`` does (``inputs.prepare_audio``), so
``encoder.forward_features(*collate_audio(clips, rate))`` computes what ``encoder.extract(clips, sample_rate=rate)``
returns, with gradients. ``FeatureStandardizer`` is a small ``nn.Module``: put it in front of a head and its
statistics are saved with the head's ``state_dict``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .audio import SAMPLE_RATE
from .inputs import check_sample_rate, prepare_audio

__all__ = ["AudioBatch", "FeatureStandardizer", "collate_audio"]

_ONE_CLIP = "(samples,)"
_MONO_HINT = ("collate_audio takes a list of 1-D (samples,) mono clips; average the channels first: "
              "`audio.mean(axis=1)` for soundfile's (samples, channels), `wav.mean(0)` for (channels, samples)")
_FORMAT = "smooth_infomax.FeatureStandardizer"
_FORMAT_VERSION = "1"


class AudioBatch(NamedTuple):
    """A zero-padded batch at 16 kHz: ``waveform (batch, samples)`` float32 and ``lengths (batch,)`` int64 valid
    samples. Unpacks as ``waveform, lengths = collate_audio(...)``."""

    waveform: torch.Tensor
    lengths: torch.Tensor


def collate_audio(items: Sequence[object], sample_rate_hz: int | Sequence[int]) -> AudioBatch:
    """Pad 1-D clips of any lengths and rates into one 16 kHz float32 batch (a ``DataLoader`` ``collate_fn``).

    Args:
        items: a list of ``(samples,)`` numpy arrays or tensors, mono; float in [-1, 1] or int16/int32/int8
            (scaled as ``extract`` scales them). 2-D items and a bare array are refused: their layout is ambiguous.
        sample_rate_hz: the rate of every item, or one rate per item (Hz, 4000 to 384000). Other rates than
            16 kHz are resampled item by item with ``torchaudio.functional.resample``, as ``extract`` does.

    Returns:
        ``AudioBatch(waveform (batch, samples), lengths (batch,))`` on the CPU; padding is zero.

    Example:
        >>> waveform, lengths = collate_audio([np.zeros(22050), np.zeros(11025)], 22050)
        >>> waveform.shape, lengths.tolist()
        (torch.Size([2, 16000]), [16000, 8000])
    """
    clips = _checked_items(items)
    rates = _rates_per_item(sample_rate_hz, len(clips))
    resampled: list[torch.Tensor] = [torch.empty(0)] * len(clips)
    for rate in sorted(set(rates)):
        indices = [i for i, r in enumerate(rates) if r == rate]
        prepared = prepare_audio([clips[i] for i in indices], rate, None, SAMPLE_RATE, torch.float32,
                                 torch.device("cpu"))
        for row, i in enumerate(indices):
            resampled[i] = prepared.waveform[row, : int(prepared.lengths[row])]
    return _pad(resampled)


def _checked_items(items: Sequence[object]) -> list[object]:
    """``items`` as a list of 1-D arrays or tensors; a ``ValueError`` naming the expected layout otherwise."""
    if isinstance(items, (np.ndarray, torch.Tensor)):
        shape = tuple(items.shape)
        if len(shape) == 1:
            raise ValueError(f"items is one {_ONE_CLIP} array of shape {shape}, not a list of clips: pass [clip]")
        raise ValueError(f"items is an array of shape {shape}, which is ambiguous ((batch, samples) or "
                         f"(samples, channels)?); pass a list of {_ONE_CLIP} clips: `list(batch)` for a "
                         f"(batch, samples) array with no padding")
    clips = list(items)
    if not clips:
        raise ValueError("items is empty; pass at least one (samples,) clip")
    for i, clip in enumerate(clips):
        if not isinstance(clip, (np.ndarray, torch.Tensor)):
            raise TypeError(f"items[{i}] must be a numpy array or a torch tensor, not {type(clip).__name__}")
        if clip.ndim != 1:
            raise ValueError(f"items[{i}] has shape {tuple(clip.shape)}; {_MONO_HINT}")
    return clips


def _rates_per_item(sample_rate_hz: int | Sequence[int], count: int) -> list[int]:
    """One checked rate per item, from one rate for all or a sequence of ``count`` rates."""
    if isinstance(sample_rate_hz, (Sequence, np.ndarray, torch.Tensor)) and not isinstance(sample_rate_hz, str):
        rates = [int(check_sample_rate(r)) for r in list(sample_rate_hz)]
        if len(rates) != count:
            raise ValueError(f"sample_rate_hz has {len(rates)} rates for {count} items; give one per item or one "
                             f"rate for all")
        return rates
    return [check_sample_rate(sample_rate_hz)] * count


def _pad(clips: Sequence[torch.Tensor]) -> AudioBatch:
    lengths = torch.tensor([clip.shape[0] for clip in clips], dtype=torch.long)
    waveform = torch.zeros(len(clips), int(lengths.max()), dtype=torch.float32)
    for row, clip in enumerate(clips):
        waveform[row, : clip.shape[0]] = clip
    return AudioBatch(waveform, lengths)


class FeatureStandardizer(nn.Module):
    """Per-dimension standardisation ``(x - mean) / std`` with statistics fitted over valid frames only.

    Buffers (saved in ``state_dict``, so a head that contains it carries them): ``mean (dim,)``, ``var (dim,)``
    (population variance) and ``frames`` (how many frames were fitted). Dimensions with zero variance are only
    centred. ``save``/``load`` write one safetensors file, never a pickle.

    Example:
        >>> standardizer = FeatureStandardizer(512).fit(features, lengths)   # (batch, frames, 512), (batch,)
        >>> head = torch.nn.Sequential(standardizer, torch.nn.Linear(512, 10))
    """

    mean: torch.Tensor
    var: torch.Tensor
    frames: torch.Tensor

    def __init__(self, dim: int):
        super().__init__()
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim must be a positive int, got {dim!r}")
        self.dim = dim
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))
        self.register_buffer("frames", torch.zeros((), dtype=torch.long))

    def fit(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> FeatureStandardizer:
        """Statistics of the valid frames of ``features`` alone (earlier fits are forgotten).

        Args:
            features: ``(batch, frames, dim)`` or ``(frames, dim)`` (every frame valid); numpy or torch.
            lengths: ``(batch,)`` valid frames per item of a 3-D batch (default: every frame).
        """
        self.frames.zero_()
        return self.partial_fit(features, lengths)

    def partial_fit(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> FeatureStandardizer:
        """Add the valid frames of ``features`` to the statistics (for data that arrive batch by batch); the
        result equals one ``fit`` over all of them. Accumulated in float64."""
        valid = self._valid_frames(features, lengths)
        if valid.shape[0] == 0:
            raise ValueError("features hold no valid frame")
        count_a, count_b = int(self.frames), valid.shape[0]
        mean_b, m2_b = valid.mean(0), valid.var(0, correction=0) * count_b
        mean_a, m2_a = self.mean.double().cpu(), self.var.double().cpu() * count_a
        total = count_a + count_b
        delta = mean_b - mean_a
        mean = mean_a + delta * (count_b / total)
        m2 = m2_a + m2_b + delta.square() * (count_a * count_b / total)
        with torch.no_grad():
            self.mean.copy_(mean)
            self.var.copy_(m2 / total)
            self.frames.fill_(total)
        return self

    def forward(self, features: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """``(..., dim)`` standardised features in ``features``' dtype; with ``lengths (batch,)`` and a
        ``(batch, frames, dim)`` input, frames past each length stay exactly zero. Differentiable."""
        if int(self.frames) == 0:
            raise RuntimeError("FeatureStandardizer is not fitted: call fit(features, lengths) first")
        if features.shape[-1] != self.dim:
            raise ValueError(f"features have dim {features.shape[-1]}, the standardizer was made for {self.dim}")
        scale = torch.where(self.var > 1e-12, self.var.clamp_min(1e-12).rsqrt(), torch.ones_like(self.var))
        out = (features - self.mean.to(features.dtype)) * scale.to(features.dtype)
        if lengths is None:
            return out
        return out * _valid_mask(features, lengths).unsqueeze(-1).to(out.dtype)

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics to one safetensors file (with ``format``/``format_version`` metadata)."""
        from .safetensors_file import save_tensors

        tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
        save_tensors(tensors, path, {"format": _FORMAT, "format_version": _FORMAT_VERSION})

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureStandardizer:
        """A standardizer written by ``save``; ``ValueError`` for any other file."""
        from safetensors import safe_open

        with safe_open(os.fspath(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            # safe_open is not iterable: keys() is the only way to list its tensors
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
        if metadata.get("format") != _FORMAT or metadata.get("format_version") != _FORMAT_VERSION:
            raise ValueError(f"{path} is not a FeatureStandardizer file (format {metadata.get('format')!r}, "
                             f"version {metadata.get('format_version')!r}; expected {_FORMAT!r} {_FORMAT_VERSION})")
        if "mean" not in tensors or tensors["mean"].ndim != 1:
            raise ValueError(f"{path} has no (dim,) 'mean' tensor")
        standardizer = cls(int(tensors["mean"].shape[0]))
        standardizer.load_state_dict(tensors, strict=True)
        return standardizer

    def extra_repr(self) -> str:
        return f"dim={self.dim}, frames={int(self.frames)}"

    def _valid_frames(self, features: object, lengths: object | None) -> torch.Tensor:
        """The valid frames of ``features`` as a ``(frames, dim)`` float64 CPU tensor."""
        x = torch.as_tensor(features).detach()
        if x.ndim not in (2, 3) or x.shape[-1] != self.dim:
            raise ValueError(f"features must be (batch, frames, {self.dim}) or (frames, {self.dim}), "
                             f"got shape {tuple(x.shape)}")
        x = x.to(device="cpu", dtype=torch.float64)
        if x.ndim == 2:
            if lengths is not None:
                raise ValueError("lengths is only for a (batch, frames, dim) batch; (frames, dim) is all valid")
            return x
        if lengths is None:
            return x.reshape(-1, self.dim)
        return x[_valid_mask(x, lengths)]


def _valid_mask(features: torch.Tensor, lengths: object) -> torch.Tensor:
    """``(batch, frames)`` True on valid frames; ``ValueError`` unless ``lengths`` is ``(batch,)`` integer."""
    lengths = torch.as_tensor(lengths)
    if features.ndim != 3:
        raise ValueError(f"lengths needs (batch, frames, dim) features, got shape {tuple(features.shape)}")
    if lengths.shape != (features.shape[0],) or lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(f"lengths must be ({features.shape[0]},) integer frame counts, got {lengths.dtype} "
                         f"of shape {tuple(lengths.shape)}")
    frames = torch.arange(features.shape[1], device=features.device)
    return frames[None, :] < lengths.to(features.device)[:, None]
