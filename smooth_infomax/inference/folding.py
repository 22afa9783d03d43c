"""An encoder's modules prepared for inference: BatchNorm folded into the convs, weights cast once per dtype and
device, each conv in its fastest form (``convs.py``) and the GRU to run (``gru.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from ..config import ConvLayerConfig, EncoderConfig
from ..geometry import FrameGeometry, conv_output_length, min_input_samples
from ..layers import ConvBlock, EncoderModule
from .convs import FoldedConv, block_conv_applies, block_taps, conv_channels_last, mask_tail_, writes_margins
from .gru import HalfWeightGRU, half_weight_gru_applies, run_gru


@dataclass(frozen=True)
class FoldedModule:
    """One ``EncoderModule`` ready for inference: folded convs and the 1x1 heads, each weight ``(dim, dim, 1, 1)``
    channels-last (``None`` when absent), the GRU to run in place of the module's own (``None``: its own) and the
    module's own GRU (``None`` when it has none)."""

    convs: tuple[tuple[FoldedConv, ConvLayerConfig], ...]
    mean_head: tuple[torch.Tensor, torch.Tensor] | None  # (weight, bias)
    logvar_head: tuple[torch.Tensor, torch.Tensor] | None
    gru: HalfWeightGRU | None = None
    module_gru: nn.GRU | None = None

    def encode(
        self, x: torch.Tensor, lengths: torch.Tensor, want_logvar: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """As ``EncoderModule.encode``, channels-last: ``(batch, samples, in)`` -> mean ``(batch, frames, dim)``,
        logvar (same, or ``None``) and lengths (CPU)."""
        padded = False
        for index, (conv, layer) in enumerate(self.convs):
            following = self.convs[index + 1][0] if index + 1 < len(self.convs) else None
            lengths = conv_output_length(lengths, layer)
            if following is not None and following.taps is not None and writes_margins(conv, padded):
                # write the next conv's padded input directly: no copy of this layer's output into a padded one
                margins = following.block_margins(conv.output_frames(x.shape[1]))
                x = conv(x, margins)
                x[:, : margins[0]] = 0
                mask_tail_(x, lengths + margins[0])
                padded = True
            else:
                x = mask_tail_(conv(x, padded=padded), lengths)
                padded = False
        if self.mean_head is None:
            return x, None, lengths
        mean = mask_tail_(conv_channels_last(x, *self.mean_head), lengths)
        logvar = None
        # why optional: the log-variance head is a tenth of the FLOPs, wasted when only means are wanted
        if want_logvar and self.logvar_head is not None:
            logvar = mask_tail_(conv_channels_last(x, *self.logvar_head), lengths)
        return mean, logvar, lengths

    def recur(self, x: torch.Tensor, lengths: torch.Tensor,
              state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The module's GRU (``gru.run_gru``): ``(batch, frames, dim)`` -> ``(batch, frames, hidden)`` and the last
        state ``(1, batch, hidden)``."""
        if self.module_gru is None:
            raise ValueError("this module has no GRU")
        return run_gru(self.module_gru, x, lengths, state, self.gru)


def fold_conv(block: ConvBlock, dtype: torch.dtype, device: torch.device) -> FoldedConv:
    """``block`` (eval mode) as one conv: its BatchNorm folded into the weight and bias."""
    # why fold: BatchNorm in eval mode is an affine map per channel, so conv + BatchNorm is one conv with rescaled
    # weights and a shifted bias: one pass over the activations instead of two
    # ConvBlock builds its Conv1d with a bias and its BatchNorm1d affine, with running statistics
    assert block.conv.bias is not None
    weight, bias = block.conv.weight.detach().float(), block.conv.bias.detach().float()
    if block.norm is not None:
        norm = block.norm
        assert norm.weight is not None and norm.bias is not None
        assert norm.running_mean is not None and norm.running_var is not None
        scale = norm.weight.detach().float() / torch.sqrt(norm.running_var.float() + norm.eps)
        weight = weight * scale[:, None, None]
        bias = (bias - norm.running_mean.float()) * scale + norm.bias.detach().float()
    layer = block.layer
    as_blocks = block_conv_applies(weight, layer.stride, dtype, device)
    taps = block_taps(weight, layer.stride).to(device, dtype) if as_blocks else None
    return FoldedConv(conv2d_weight(weight, dtype, device), bias.to(device, dtype), layer.stride, layer.padding,
                      layer.relu, taps)


def conv2d_weight(weight: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A conv1d weight ``(out, in, kernel)`` as a channels-last conv2d weight ``(out, in, 1, kernel)``."""
    return weight.unsqueeze(2).to(device, dtype).contiguous(memory_format=torch.channels_last)


def fold_module(stage: EncoderModule, dtype: torch.dtype, device: torch.device) -> FoldedModule:
    """``stage`` (eval mode) folded for inference in ``dtype`` on ``device``."""
    blocks = cast("Sequence[ConvBlock]", stage.convs)  # nn.ModuleList types its items as plain modules
    convs = tuple((fold_conv(block, dtype, device), block.layer) for block in blocks)
    gru = None
    if stage.gru is not None and half_weight_gru_applies(dtype, device):
        gru = HalfWeightGRU.of(stage.gru)
    if stage.head is None:
        return FoldedModule(convs, None, None, gru, stage.gru)
    return FoldedModule(convs, _head(stage.head.mean, dtype, device), _head(stage.head.logvar, dtype, device), gru,
                        stage.gru)


def _head(conv: nn.Conv1d | None, dtype: torch.dtype,
          device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    if conv is None:
        return None
    assert conv.bias is not None  # LatentHead's convs have a bias
    return conv2d_weight(conv.weight.detach(), dtype, device), conv.bias.detach().to(device, dtype)


class FoldedCache:
    """Folded modules per ``(dtype, device)``, rebuilt when any parameter or buffer of the encoder changes."""

    # why a cache: casting and folding the weights at every call (as autocast would) costs more than a short clip

    def __init__(self) -> None:
        self._entries: dict[tuple[torch.dtype, str], tuple[tuple, list[FoldedModule]]] = {}

    def get(self, owner: nn.Module, stages: Sequence[EncoderModule], dtype: torch.dtype,
            device: torch.device) -> list[FoldedModule]:
        """One ``FoldedModule`` per module of ``stages``; ``owner`` holds every parameter and buffer they read."""
        tensors = list(owner.parameters()) + list(owner.buffers())
        version = tuple((t.data_ptr(), t._version) for t in tensors)
        key = (dtype, str(device))
        cached = self._entries.get(key)
        if cached is None or cached[0] != version:
            folded = [fold_module(stage, dtype, device) for stage in stages]
            self._entries = {k: v for k, v in self._entries.items() if v[0] == version}
            self._entries[key] = (version, folded)
        return self._entries[key][1]


@dataclass(frozen=True)
class FoldedEncoder:
    """What the folded paths read of an encoder in eval mode: its config and frame geometries, its modules folded
    for one compute ``dtype`` on ``device``."""

    config: EncoderConfig
    geometries: tuple[FrameGeometry, ...]
    modules: tuple[FoldedModule, ...]
    dtype: torch.dtype
    device: torch.device

    @property
    def min_input_samples(self) -> int:
        return min_input_samples(self.config)

    def scaled_input(self, waveform: torch.Tensor) -> torch.Tensor:
        """``waveform (batch, samples)`` scaled by the config's input gain and offset, in the compute dtype, as the
        channels-last input of module 0: ``(batch, samples, 1)``."""
        x = (waveform * self.config.input_gain + self.config.input_offset).to(self.dtype)
        return x.unsqueeze(-1)
