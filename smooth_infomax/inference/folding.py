"""An encoder's modules prepared for inference: BatchNorm folded into the convs, weights cast to the compute dtype,
each conv in its form for the device (``convs.py``). Folded anew at every call, so they always follow the
parameters (e.g. while fine-tuning)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ConvLayerConfig, EncoderConfig
from ..geometry import FrameGeometry, conv_output_length, min_input_samples
from ..layers import ConvBlock, EncoderModule
from .convs import FoldedConv, block_conv_applies, block_taps, mask_tail_
from .gru import run_gru


@dataclass(frozen=True)
class FoldedModule:
    """One ``EncoderModule`` ready for inference: folded convs, the 1x1 heads as ``(weight (dim, dim), bias)`` of a
    linear map (``None`` when absent) and the module's GRU (``None`` when it has none)."""

    convs: tuple[tuple[FoldedConv, ConvLayerConfig], ...]
    mean_head: tuple[torch.Tensor, torch.Tensor] | None  # (weight, bias)
    logvar_head: tuple[torch.Tensor, torch.Tensor] | None
    gru: nn.GRU | None = None

    def encode(
        self, x: torch.Tensor, lengths: torch.Tensor, want_logvar: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """As ``EncoderModule.encode``, channels-last: ``(batch, samples, in)`` -> mean ``(batch, frames, dim)``,
        logvar (same, or ``None``) and lengths (CPU)."""
        for conv, layer in self.convs:
            lengths = conv_output_length(lengths, layer)
            x = mask_tail_(conv(x), lengths)
        if self.mean_head is None:
            return x, None, lengths
        mean = mask_tail_(F.linear(x, *self.mean_head), lengths)  # a 1x1 conv on channels-last frames
        logvar = None
        # why optional: the log-variance head is a tenth of the FLOPs, wasted when only means are wanted
        if want_logvar and self.logvar_head is not None:
            logvar = mask_tail_(F.linear(x, *self.logvar_head), lengths)
        return mean, logvar, lengths

    def recur(self, x: torch.Tensor, lengths: torch.Tensor,
              state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The module's GRU (``gru.run_gru``): ``(batch, frames, dim)`` -> ``(batch, frames, hidden)`` and the last
        state ``(1, batch, hidden)``."""
        if self.gru is None:
            raise ValueError("this module has no GRU")
        return run_gru(self.gru, x, lengths, state)


def fold_conv(block: ConvBlock, dtype: torch.dtype, device: torch.device) -> FoldedConv:
    """``block`` (eval mode) as one conv: its BatchNorm folded into the weight and bias."""
    # why fold: BatchNorm in eval mode is an affine map per channel, so conv + BatchNorm is one conv with rescaled
    # weights and a shifted bias. Kept for accuracy, not speed (the pass it saves is under 1 % of the time): in 16
    # bits an unfolded BatchNorm reads each conv output rounded to 16 bits and rounds again, about ten times the
    # error of the folded conv (docs/performance.md, "The trick ablation")
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
    taps = None
    if block_conv_applies(weight, layer.stride, device):
        taps = block_taps(weight, layer.stride).to(device, dtype)
    return FoldedConv(weight.to(device, dtype), bias.to(device, dtype), layer.stride, layer.padding, layer.relu, taps)


def fold_module(stage: EncoderModule, dtype: torch.dtype, device: torch.device) -> FoldedModule:
    """``stage`` (eval mode) folded for inference in ``dtype`` on ``device``."""
    blocks = cast("Sequence[ConvBlock]", stage.convs)  # nn.ModuleList types its items as plain modules
    convs = tuple((fold_conv(block, dtype, device), block.layer) for block in blocks)
    if stage.head is None:
        return FoldedModule(convs, None, None, stage.gru)
    return FoldedModule(convs, _head(stage.head.mean, dtype, device), _head(stage.head.logvar, dtype, device),
                        stage.gru)


def _head(conv: nn.Conv1d | None, dtype: torch.dtype,
          device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    if conv is None:
        return None
    assert conv.bias is not None  # LatentHead's convs have a bias
    return conv.weight.detach()[:, :, 0].to(device, dtype), conv.bias.detach().to(device, dtype)


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
