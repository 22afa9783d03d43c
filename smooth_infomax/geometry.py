"""Frame geometry of the conv stack: output lengths, hops, receptive fields and frame times."""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import torch

from .config import ConvLayerConfig, EncoderConfig


@overload
def conv_output_length(num_samples: torch.Tensor, layer: ConvLayerConfig) -> torch.Tensor: ...
@overload
def conv_output_length(num_samples: int, layer: ConvLayerConfig) -> int: ...
def conv_output_length(num_samples: torch.Tensor | int, layer: ConvLayerConfig) -> torch.Tensor | int:
    """Frames a Conv1d layer makes from ``num_samples`` inputs: floor((n + 2p - k) / s) + 1, and 0 when the
    formula goes below 0 or there is no input at all (padding alone makes no valid frame)."""
    if isinstance(num_samples, torch.Tensor):
        out = torch.div(num_samples + 2 * layer.padding - layer.kernel_size, layer.stride, rounding_mode="floor") + 1
        return torch.where(num_samples > 0, out.clamp_min(0), 0)
    if num_samples <= 0:
        return 0
    return max(0, (num_samples + 2 * layer.padding - layer.kernel_size) // layer.stride + 1)


@dataclass(frozen=True)
class FrameGeometry:
    """Where a module's frames sit in the 16 kHz input.

    Frame ``i`` of the module depends on input samples ``[i * hop_samples + first_sample, ... +
    receptive_field_samples)`` (``first_sample`` is negative: the conv padding reaches before the start).
    ``receptive_field_samples`` is ``None`` for modules with a GRU, whose context reaches back to the start.
    """

    hop_samples: int
    conv_receptive_field_samples: int
    first_sample: int
    sample_rate: int
    recurrent: bool

    @property
    def receptive_field_samples(self) -> int | None:
        return None if self.recurrent else self.conv_receptive_field_samples

    @property
    def frame_rate_hz(self) -> float:
        return self.sample_rate / self.hop_samples

    def frame_centres_s(self, num_frames: int) -> torch.Tensor:
        """Centre (seconds) of each frame's conv receptive field, shape ``(num_frames,)``."""
        index = torch.arange(num_frames, dtype=torch.float64)
        centre = index * self.hop_samples + self.first_sample + (self.conv_receptive_field_samples - 1) / 2
        return centre / self.sample_rate

    def frame_to_seconds(self, frame: int) -> float:
        """Centre (seconds) of frame ``frame``."""
        return float(self.frame_centres_s(frame + 1)[-1])


def module_geometries(config: EncoderConfig) -> list[FrameGeometry]:
    """Geometry after each module of ``config``, in order."""
    hop, field, first, recurrent = 1, 1, 0, False
    geometries = []
    for module in config.modules:
        for layer in module.conv_layers:
            field += (layer.kernel_size - 1) * hop
            first -= layer.padding * hop
            hop *= layer.stride
        recurrent = recurrent or module.gru_hidden_size > 0
        geometries.append(FrameGeometry(hop, field, first, config.sample_rate, recurrent))
    return geometries


@overload
def output_lengths(config: EncoderConfig, num_samples: torch.Tensor) -> list[torch.Tensor]: ...
@overload
def output_lengths(config: EncoderConfig, num_samples: int) -> list[int]: ...
def output_lengths(config: EncoderConfig, num_samples: torch.Tensor | int) -> list[torch.Tensor] | list[int]:
    """Valid frames after each module for inputs of ``num_samples`` samples (int or tensor of shape ``(batch,)``)."""
    lengths: list = []  # all tensors or all ints, as the overloads say
    current = num_samples
    for module in config.modules:
        for layer in module.conv_layers:
            current = conv_output_length(current, layer)
        lengths.append(current)
    return lengths


def min_input_samples(config: EncoderConfig) -> int:
    """Fewest input samples for which every conv layer of ``config`` yields at least one (possibly masked) frame."""
    needed = 1
    for module in reversed(config.modules):
        for layer in reversed(module.conv_layers):
            needed = max(1, (needed - 1) * layer.stride + layer.kernel_size - 2 * layer.padding)
    return needed
