"""Feature sources for the linear probes: a frozen encoder's modules, or MFCCs.

Every source gives two kinds of features:

* ``frames``: per-utterance features at the 10 ms phone-label rate, ``(n_bins, dim)`` with
  ``n_bins = samples // 160`` (bin ``i`` covers input samples ``[160 i, 160 i + 160)``, where the label of
  frame ``i`` sits). Modules with a finer hop (module 0: 20 samples, module 1: 80) are averaged into the
  bins by the centres of their frames; hop-160 modules and the GRU map one frame to one bin.
* ``pooled``: one vector per clip ``(batch, dim)``, the mean over the clip's valid frames (the reference's
  ``adaptive_avg_pool1d`` over a crop).

Encoders run in ``eval()`` mode under ``inference_mode``; by default the deterministic posterior means are used
(``extract(sample=False)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from ..audio import HOP_SAMPLES, SAMPLE_RATE
from ..deprecation import renamed_keyword
from ..geometry import FrameGeometry

LABEL_HOP_SAMPLES = HOP_SAMPLES
"""Samples per phone label (10 ms at 16 kHz)."""


class FeatureSource(Protocol):
    """What the probe pipeline needs from a feature extractor."""

    feature_names: list[str]
    """Names of the feature sets this source yields, e.g. ``["module 0", ..., "GRU"]`` or ``["MFCC"]``."""
    standardize: bool
    """Whether probes on these features standardise them with train-split statistics."""

    def frames(self, waveforms: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """For each ``(samples,)`` waveform, ``{name: (samples // 160, dim)}``."""
        ...

    def pooled(self, clips: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """``clips (batch, samples)`` with valid ``lengths (batch,)`` -> ``{name: (batch, dim)}``."""
        ...


def module_feature_names(encoder) -> list[str]:
    """``"module i"`` for each module, ``"GRU"`` for a last module that ends in a GRU (SIM module 3, CPC's one)."""
    names = []
    last = encoder.num_modules - 1
    for index, module in enumerate(encoder.config.modules):
        names.append("GRU" if index == last and module.gru_hidden_size else f"module {index}")
    return names


def pool_to_label_rate(frames: torch.Tensor, geometry: FrameGeometry, n_bins: int) -> torch.Tensor:
    """Average module frames into 10 ms label bins.

    Args:
        frames: ``(frames, dim)`` valid frames of one utterance.
        geometry: the module's frame geometry (hop must divide 160 or be 160).
        n_bins: ``samples // 160`` of the utterance.

    Returns:
        ``(n_bins, dim)``: bin ``i`` is the mean of the frames whose receptive-field centre lies in
        ``[160 i, 160 i + 160)`` (frames before the start / past the end go to the first / last bin). For a
        hop of 160 this is the identity when there are ``n_bins`` frames.
    """
    hop = geometry.hop_samples
    if hop > LABEL_HOP_SAMPLES or LABEL_HOP_SAMPLES % hop:
        raise ValueError(f"module hop {hop} samples does not divide the {LABEL_HOP_SAMPLES}-sample label hop")
    if n_bins <= 0 or frames.shape[0] == 0:
        return frames.new_zeros(max(n_bins, 0), frames.shape[-1])
    if hop == LABEL_HOP_SAMPLES and frames.shape[0] == n_bins:
        return frames
    index = torch.arange(frames.shape[0], dtype=torch.float64)
    centres = index * hop + geometry.first_sample + (geometry.conv_receptive_field_samples - 1) / 2
    bins = torch.div(centres, LABEL_HOP_SAMPLES, rounding_mode="floor").long().clamp_(0, n_bins - 1).to(frames.device)
    sums = frames.new_zeros(n_bins, frames.shape[-1], dtype=torch.float32).index_add_(0, bins, frames.float())
    counts = torch.bincount(bins, minlength=n_bins).clamp_min(1).to(sums.dtype)
    return (sums / counts[:, None]).to(frames.dtype)


def masked_time_mean(features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean over the valid frames: ``(batch, frames, dim)``, ``(batch,)`` -> ``(batch, dim)``."""
    lengths = lengths.to(features.device)
    mask = (torch.arange(features.shape[1], device=features.device)[None, :] < lengths[:, None]).to(features.dtype)
    return (features * mask[..., None]).sum(1) / lengths.clamp_min(1)[:, None].to(features.dtype)


class EncoderFeatures:
    """Features of a frozen ``SmoothInfoMaxEncoder``'s modules.

    Args:
        encoder: put into ``eval()`` mode (BatchNorm uses running statistics).
        modules: module indices (default: all); ``layers`` is its deprecated old name.
        sample: use a reparameterised sample instead of the mean (the reference's ``deterministic=False``,
            used only for its interpretability probes); ``generator`` seeds it.
        standardize: probes standardise these features (the reference does not).
    """

    def __init__(self, encoder, modules: Sequence[int] | None = None, sample: bool = False,
                 generator: torch.Generator | None = None, standardize: bool = False, *,
                 layers: Sequence[int] | None = None):
        modules = renamed_keyword(modules, layers, "modules", "layers")
        self.encoder = encoder.eval()
        self.modules = encoder.resolve_modules(list(modules) if modules is not None else None)
        self.sample, self.generator, self.standardize = sample, generator, standardize
        names = module_feature_names(encoder)
        self.feature_names = [names[i] for i in self.modules]
        self._what = "sample" if sample else "mean"

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def _extract(self, wav, lengths=None):
        return self.encoder.extract(wav, sample_rate=self.encoder.sample_rate, lengths=lengths, modules=self.modules,
                                    sample=self.sample, generator=self.generator)

    def frames(self, waveforms: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """For each ``(samples,)`` waveform, ``{name: (samples // 160, dim)}`` on the CPU (float32)."""
        out = self._extract([w.reshape(-1) for w in waveforms])
        results = []
        for item, waveform in enumerate(waveforms):
            n_bins = waveform.numel() // LABEL_HOP_SAMPLES
            results.append({
                name: pool_to_label_rate(features.unpad(item, self._what), features.geometry, n_bins).float().cpu()
                for name, features in zip(self.feature_names, out, strict=True)
            })
        return results

    def pooled(self, clips: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """``clips (batch, samples)`` -> ``{name: (batch, dim)}``, the mean over each clip's valid frames."""
        out = self._extract(clips, lengths)
        return {name: masked_time_mean(getattr(f, self._what), f.lengths).float().cpu()
                for name, f in zip(self.feature_names, out, strict=True)}


class MfccFeatures:
    """MFCC baseline: ``n_mfcc`` cepstra (torchaudio, 40 mel bands, 25 ms Hamming window, 10 ms hop) plus
    ``deltas`` orders of deltas (window 5), so 13 + delta + delta-delta = 39 dims by default.

    Frame ``i`` is the 400-sample window centred on sample ``160 i + 80``, the centre of label ``i`` (the
    waveform is zero-padded by 120 samples at both ends), so an utterance of ``n`` samples gives ``n // 160``
    frames. ``context`` > 0 adds a second frame feature set ``"MFCC ±k"`` stacking frames ``i-k .. i+k``
    (edge frames repeated); pooled features are the plain MFCC mean over a clip. Probes standardise MFCCs
    with train-split statistics (the guide's StandardScaler), unless ``standardize=False``.
    """

    def __init__(self, n_mfcc: int = 13, deltas: int = 2, context: int = 0, n_mels: int = 40, standardize: bool = True):
        import torchaudio

        self.n_mfcc, self.deltas, self.context, self.standardize = n_mfcc, deltas, context, standardize
        self.transform = torchaudio.transforms.MFCC(
            sample_rate=SAMPLE_RATE, n_mfcc=n_mfcc, log_mels=True,
            melkwargs={"n_fft": 400, "win_length": 400, "hop_length": LABEL_HOP_SAMPLES, "n_mels": n_mels,
                       "center": False, "window_fn": torch.hamming_window})
        self.feature_names = ["MFCC"] + ([f"MFCC ±{context}"] if context else [])

    @property
    def dim(self) -> int:
        return self.n_mfcc * (1 + self.deltas)

    def settings(self) -> dict:
        return {"n_mfcc": self.n_mfcc, "deltas": self.deltas, "context_frames": self.context, "n_mels": 40,
                "window": "hamming 400 samples (25 ms)", "hop_samples": LABEL_HOP_SAMPLES, "log_mels": True,
                "frame_i_centre_sample": "160 i + 80", "standardize": self.standardize}

    def mfcc(self, waveform: torch.Tensor) -> torch.Tensor:
        """``(samples,)`` -> ``(samples // 160, dim)`` MFCCs with deltas."""
        import torchaudio.functional

        waveform = waveform.reshape(-1).float().cpu()
        n_bins = waveform.numel() // LABEL_HOP_SAMPLES
        pad = (400 - LABEL_HOP_SAMPLES) // 2
        padded = torch.nn.functional.pad(waveform, (pad, pad + max(0, 400 - waveform.numel() - 2 * pad)))
        cepstra = self.transform(padded)[:, :n_bins]  # (n_mfcc, n_bins)
        parts = [cepstra]
        for _ in range(self.deltas):
            parts.append(torchaudio.functional.compute_deltas(parts[-1], win_length=5))
        return torch.cat(parts, 0).T.contiguous()

    def frames(self, waveforms: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        """For each ``(samples,)`` waveform, ``{"MFCC": (samples // 160, dim)}`` (and ``"MFCC ±k"``)."""
        results = []
        for waveform in waveforms:
            frames = self.mfcc(waveform)
            item = {"MFCC": frames}
            if self.context:
                item[self.feature_names[1]] = stack_context(frames, self.context)
            results.append(item)
        return results

    def pooled(self, clips: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """``clips (batch, samples)`` -> ``{"MFCC": (batch, dim)}``, the mean over each clip's frames."""
        means = [self.mfcc(clip[: int(n)]).mean(0) for clip, n in zip(clips, lengths, strict=True)]
        return {"MFCC": torch.stack(means)}


class LateFeatures:
    """Another source's frame features, also read some label frames late: a timing diagnostic.

    For each ``d`` in ``frames_late`` and each of ``source``'s feature sets ``name``, a frame feature set
    ``"name +d"`` pairs label ``i`` with frame ``i + d`` of ``name`` (``d`` < 0 reads early; frames past either end
    repeat the edge frame). A causal feature (the GRU) whose evidence for label ``i`` arrives late gains from it; a
    feature centred on its label does not. Pooled features are ``source``'s, unchanged.
    """

    def __init__(self, source: FeatureSource, frames_late: Sequence[int]):
        if not frames_late or 0 in frames_late:
            raise ValueError(f"frames_late={list(frames_late)}: give one or more non-zero frame shifts")
        self.source, self.frames_late, self.standardize = source, tuple(frames_late), source.standardize
        self.feature_names = list(source.feature_names) + [
            f"{name} {d:+d}" for name in source.feature_names for d in self.frames_late]

    def settings(self) -> dict:
        """The wrapped source's settings (for MFCC), with the shifts."""
        inner = self.source.settings() if hasattr(self.source, "settings") else {}
        return {**inner, "frames_late": list(self.frames_late)}

    def frames(self, waveforms: Sequence[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        results = self.source.frames(waveforms)
        for item in results:
            late = {f"{name} {d:+d}": shift_frames(item[name], d) for name in list(item) for d in self.frames_late}
            item.update(late)
        return results

    def pooled(self, clips: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.source.pooled(clips, lengths)


def shift_frames(frames: torch.Tensor, steps: int) -> torch.Tensor:
    """``(frames, dim)`` -> ``(frames, dim)`` whose row ``i`` is row ``i + steps``, the edge rows repeated."""
    n = frames.shape[0]
    return frames[(torch.arange(n) + steps).clamp_(0, max(n - 1, 0))]


def stack_context(frames: torch.Tensor, context: int) -> torch.Tensor:
    """``(frames, dim)`` -> ``(frames, (2 context + 1) dim)``: frames ``i-context .. i+context`` side by side,
    the first and last frame repeated at the edges."""
    n = frames.shape[0]
    index = (torch.arange(n)[:, None] + torch.arange(-context, context + 1)[None, :]).clamp_(0, max(n - 1, 0))
    return frames[index].reshape(n, -1)
