"""The authors' way of computing SIM features: a plain stack of ``nn.Conv1d``, ``nn.BatchNorm1d`` and ``nn.ReLU``
modules per gradient-isolated module, 1x1 ``nn.Conv1d`` mean and log-variance heads and an ``nn.GRU``, called on one
clip at a time, channel-first ``(1, channels, frames)``, under ``torch.no_grad``.

It is the baseline of ``extraction`` and ``tricks``: built from the encoder's config and loaded (strictly) with the
encoder's own weights, it computes the same features with PyTorch's stock modules, none of the inference path's
tricks (``tests/test_benchmarks.py`` checks it against the encoder's modules).
"""

from __future__ import annotations

import torch
from torch import nn

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.config import EncoderConfig, ModuleConfig


class PlainModule(nn.Module):
    """One module: ``encoder`` (Conv1d [+ BatchNorm1d] [+ ReLU] per layer), heads ``mu`` / ``log_var`` (``None``
    when absent) and ``gru`` (``None`` when absent)."""

    def __init__(self, in_channels: int, config: ModuleConfig):
        super().__init__()
        layers: list[nn.Module] = []
        self.key_map: dict[str, str] = {}  # the encoder's names (within its module) -> ours
        channels = in_channels
        for j, layer in enumerate(config.conv_layers):
            self.key_map[f"convs.{j}.conv"] = f"encoder.{len(layers)}"
            layers.append(nn.Conv1d(channels, layer.channels, layer.kernel_size, layer.stride, layer.padding))
            if config.batch_norm:
                self.key_map[f"convs.{j}.norm"] = f"encoder.{len(layers)}"
                layers.append(nn.BatchNorm1d(layer.channels))
            if layer.relu:
                layers.append(nn.ReLU())
            channels = layer.channels
        self.encoder = nn.Sequential(*layers) if layers else None
        self.mu = nn.Conv1d(channels, channels, 1) if config.head != "none" else None
        self.log_var = nn.Conv1d(channels, channels, 1) if config.is_gaussian else None
        self.key_map.update({"head.mean": "mu", "head.logvar": "log_var", "gru": "gru"})
        self.gru = nn.GRU(channels, config.gru_hidden_size, batch_first=True) if config.gru_hidden_size else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(1, channels, frames)`` -> mean and log-variance (``None`` without one), channel-first."""
        if self.encoder is not None:
            x = self.encoder(x)
        logvar = None
        if self.mu is not None:
            logvar = self.log_var(x) if self.log_var is not None else None
            x = self.mu(x)
        if self.gru is not None:
            x = self.gru(x.transpose(1, 2))[0].transpose(1, 2)
        return x, logvar


class PlainStack(nn.Module):
    """The whole encoder as stock modules; ``features`` computes every module's outputs of one clip."""

    def __init__(self, config: EncoderConfig):
        super().__init__()
        self.config = config
        stages, channels = [], config.in_channels
        for module_config, dim in zip(config.modules, config.output_dims(), strict=True):
            stages.append(PlainModule(channels, module_config))
            channels = dim
        self.stages = nn.ModuleList(stages)

    @classmethod
    def from_encoder(cls, encoder: SmoothInfoMaxEncoder) -> PlainStack:
        """A stack with ``encoder``'s config and weights (float32, eval mode, on the CPU); every tensor of the
        encoder's state is loaded and every one of ours is filled (``strict``)."""
        stack = cls(encoder.config)
        state = {}
        for key, value in encoder.state_dict().items():
            _, index, rest = key.split(".", 2)  # stages.{m}.{rest}
            stage = stack.stages[int(index)]
            owner, name = rest.rsplit(".", 1)
            state[f"stages.{index}.{stage.key_map[owner]}.{name}"] = value.detach().float().cpu()
        stack.load_state_dict(state, strict=True)
        return stack.eval()

    def features(self, wav: torch.Tensor, logvar: bool = False) -> list[torch.Tensor] | list[tuple]:
        """Every module's mean ``(frames, dim)`` of one clip ``(samples,)``; with ``logvar``, ``(mean, logvar)``
        pairs (``logvar`` ``None`` for a module without one). The log-variance heads always run, as in the authors'
        code."""
        outputs: list = []
        with torch.no_grad():
            x = wav[None, None] * self.config.input_gain + self.config.input_offset
            for stage in self.stages:
                x, log_var = stage(x)
                mean = x[0].T
                outputs.append((mean, None if log_var is None else log_var[0].T) if logvar else mean)
        return outputs
