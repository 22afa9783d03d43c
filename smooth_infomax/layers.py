"""Small building blocks of the encoder. Tensors inside the encoder are channel-first: ``(batch, dim, frames)``."""

from __future__ import annotations

import torch
from torch import nn

from .config import ConvLayerConfig, ModuleConfig
from .geometry import conv_output_length


def mask_frames(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero every frame at or past each item's valid length.

    Args:
        x: ``(batch, dim, frames)``.
        lengths: ``(batch,)`` valid frames per item.
    """
    frames = torch.arange(x.shape[-1], device=x.device)
    return x * (frames < lengths[:, None]).unsqueeze(1).to(x.dtype)


def gaussian_sample(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Reparameterised draw ``mean + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)``; ``exp`` runs in float32."""
    device = generator.device if generator is not None else mean.device
    eps = torch.randn(mean.shape, generator=generator, device=device, dtype=torch.float32).to(mean.device)
    return (mean.float() + torch.exp(0.5 * logvar.float()) * eps).to(mean.dtype)


class ConvBlock(nn.Module):
    """Conv1d, then BatchNorm1d (optional), then ReLU (optional); frames past each item's length are zeroed.

    Zeroing the padded frames after every layer makes the next layer see the same zeros as it would for the item
    alone, which is what makes batched and unbatched results equal.
    """

    def __init__(self, in_channels: int, layer: ConvLayerConfig, batch_norm: bool):
        super().__init__()
        self.layer = layer
        self.conv = nn.Conv1d(in_channels, layer.channels, layer.kernel_size, layer.stride, layer.padding)
        self.norm = nn.BatchNorm1d(layer.channels) if batch_norm else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(batch, in_channels, samples)`` -> ``(batch, channels, frames)`` and the new valid lengths."""
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.layer.relu:
            x = torch.relu(x)
        lengths = conv_output_length(lengths, self.layer)
        return mask_frames(x, lengths), lengths


class LatentHead(nn.Module):
    """1x1 linear heads read from the last conv block: a mean, and for Gaussian modules a log-variance."""

    def __init__(self, channels: int, gaussian: bool):
        super().__init__()
        self.mean = nn.Conv1d(channels, channels, kernel_size=1)
        self.logvar = nn.Conv1d(channels, channels, kernel_size=1) if gaussian else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(batch, dim, frames)`` -> mean and log-variance (``None`` for a mean-only head), same shape."""
        return self.mean(x), None if self.logvar is None else self.logvar(x)


class EncoderModule(nn.Module):
    """One gradient-isolated module: conv blocks, an optional latent head and an optional GRU."""

    def __init__(self, in_channels: int, config: ModuleConfig):
        super().__init__()
        self.config = config
        blocks, channels = [], in_channels
        for layer in config.conv_layers:
            blocks.append(ConvBlock(channels, layer, config.batch_norm))
            channels = layer.channels
        self.convs = nn.ModuleList(blocks)
        self.head = LatentHead(channels, config.is_gaussian) if config.head != "none" else None
        self.gru = nn.GRU(channels, config.gru_hidden_size, batch_first=True) if config.gru_hidden_size else None

    def encode(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """Conv blocks and head.

        Args:
            x: ``(batch, in_channels, samples_or_frames)``.
            lengths: ``(batch,)`` valid entries per item.

        Returns:
            ``mean (batch, dim, frames)``, ``logvar`` (same shape, or ``None``) and the valid frame lengths. Without
            a head the mean is the last block's output.
        """
        for block in self.convs:
            x, lengths = block(x, lengths)
        if self.head is None:
            return x, None, lengths
        mean, logvar = self.head(x)
        mean = mask_frames(mean, lengths)
        logvar = None if logvar is None else mask_frames(logvar, lengths)
        return mean, logvar, lengths

    def recur(
        self, x: torch.Tensor, lengths: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the GRU: ``(batch, dim, frames)`` -> ``(batch, hidden, frames)`` and the last state ``(1, batch,
        hidden)``. The GRU is causal, so padded frames at the end never reach valid ones."""
        if self.gru is None:
            raise RuntimeError("this module has no GRU")
        out, state = self.gru(x.transpose(1, 2), state)
        return mask_frames(out.transpose(1, 2), lengths), state
