"""Typed results of ``SmoothInfoMaxEncoder.extract`` and of the training forward pass."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .geometry import FrameGeometry


@dataclass(frozen=True)
class ModuleFeatures:
    """Features of one module for a batch.

    Attributes:
        index: the module's position in the encoder (0-based).
        mean: ``(batch, frames, dim)`` posterior means (for deterministic modules, their output).
        logvar: ``(batch, frames, dim)`` posterior log-variances, or ``None`` for deterministic modules.
        sample: ``(batch, frames, dim)`` a reparameterised draw when ``extract(sample=True)``, else ``mean``.
        lengths: ``(batch,)`` valid frames per item; frames past an item's length are zero.
        geometry: hop, receptive field and frame placement in the 16 kHz input.
    """

    index: int
    mean: torch.Tensor
    logvar: torch.Tensor | None
    sample: torch.Tensor
    lengths: torch.Tensor
    geometry: FrameGeometry

    @property
    def hop_samples(self) -> int:
        """Input samples (16 kHz) between consecutive frames."""
        return self.geometry.hop_samples

    @property
    def frame_rate_hz(self) -> float:
        return self.geometry.frame_rate_hz

    @property
    def receptive_field_samples(self) -> int | None:
        """Input samples one frame depends on; ``None`` after a GRU (context back to the start)."""
        return self.geometry.receptive_field_samples

    @property
    def dim(self) -> int:
        return self.mean.shape[-1]

    def frame_times_s(self) -> torch.Tensor:
        """Centre time (seconds) of every frame of the padded batch, shape ``(frames,)``."""
        return self.geometry.frame_centres_s(self.mean.shape[1])

    def unpad(self, item: int, what: str = "mean") -> torch.Tensor:
        """The valid frames ``(lengths[item], dim)`` of one item's ``mean``, ``logvar`` or ``sample``."""
        tensor = getattr(self, what)
        if tensor is None:
            raise ValueError(f"module {self.index} is deterministic and has no {what}")
        return tensor[item, : int(self.lengths[item])]


@dataclass(frozen=True)
class FrameRows:
    """Consecutive valid frames of one module of one clip: ``mean``/``logvar`` ``(rows, dim)`` starting at frame
    ``start_frame`` (``logvar`` is ``None`` for deterministic modules or when it was not computed)."""

    start_frame: int
    mean: torch.Tensor
    logvar: torch.Tensor | None


@dataclass(frozen=True)
class Extraction:
    """Result of ``extract``: the requested modules' features plus how the input was prepared.

    Attributes:
        modules: the requested modules, in encoder order.
        sample_rate: rate the encoder ran at (16 kHz).
        input_sample_rate: rate of the audio given to ``extract``.
        input_lengths: ``(batch,)`` valid samples per item after resampling.
        resampler: how the input was resampled (empty string when it was not).
    """

    modules: tuple[ModuleFeatures, ...]
    sample_rate: int
    input_sample_rate: int
    input_lengths: torch.Tensor
    resampler: str

    def __getitem__(self, module: int) -> ModuleFeatures:
        """The features of module ``module``, in the encoder's numbering (0 is the first module). Only module numbers
        index an ``Extraction``: a negative index is refused, not counted from the end (``extraction.modules[-1]``
        is the deepest module extracted)."""
        held = [f.index for f in self.modules]
        if isinstance(module, bool) or not isinstance(module, int | np.integer):
            raise KeyError(f"an Extraction is indexed by module number (an int >= 0), got {module!r}; "
                           f"it holds modules {held}")
        if module < 0:
            raise KeyError(f"module {module}: modules are numbered from 0 and a negative index does not count from "
                           f"the end; this extraction holds modules {held} (the deepest: extraction.modules[-1])")
        for features in self.modules:
            if features.index == module:
                return features
        raise KeyError(f"module {module} was not extracted; this extraction holds modules {held}")

    def __len__(self) -> int:
        return len(self.modules)

    def __repr__(self) -> str:
        """One line per module: shapes, hop and valid frames, never the tensors' values."""
        lines = [f"Extraction({len(self.modules)} modules, batch {len(self.input_lengths)}, "
                 f"{self.input_sample_rate} Hz in, {self.sample_rate} Hz run)"]
        lines += [f"  {_module_line(features)}" for features in self.modules]
        return "\n".join(lines)

    def __iter__(self):
        return iter(self.modules)


@dataclass(frozen=True)
class ModuleTrainOutput:
    """What one module hands to its InfoNCE and KL losses during training.

    Attributes:
        context: ``(batch, frames, context_dim)`` the predictor input c (a first sample, or the GRU output).
        target: ``(batch, frames, dim)`` the prediction targets and negatives z (a second sample, or the mean).
        mean: ``(batch, frames, dim)`` posterior mean (the module output for deterministic modules).
        logvar: ``(batch, frames, dim)`` posterior log-variance, or ``None``.
        lengths: ``(batch,)`` valid frames.
    """

    context: torch.Tensor
    target: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor | None
    lengths: torch.Tensor


def _module_line(features: ModuleFeatures) -> str:
    held = [name for name, present in (("logvar", features.logvar is not None),
                                       ("sample", features.sample is not features.mean)) if present]
    lengths = features.lengths.tolist()
    frames = str(lengths) if len(lengths) <= 8 else f"{min(lengths)}-{max(lengths)}"
    return (f"module {features.index}: mean {tuple(features.mean.shape)} {features.mean.dtype}, "
            f"hop {features.hop_samples} samples, valid frames {frames}" + (f"; {', '.join(held)}" if held else ""))
