"""The greedy objective: the encoder plus one InfoNCE predictor per module, returning the summed module losses.

Module ``m``'s loss is ``InfoNCE_m + kl_weight * KL_m`` (KL only for Gaussian modules); the total is their sum
(reference spec 2.3). Gradients never cross module boundaries (the encoder's training forward detaches them), so
one backward pass trains every module on its own loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from smooth_infomax import EncoderConfig, SmoothInfoMaxEncoder
from training.losses import Predictors, draw_infonce, gaussian_kl, info_nce


@dataclass(frozen=True)
class Generators:
    """Randomness of one training process: ``noise`` for the Gaussian samples (on the model's device) and
    ``draws`` for the InfoNCE window starts and negatives (CPU)."""

    noise: torch.Generator
    draws: torch.Generator

    @classmethod
    def seeded(cls, seed: int, device: torch.device) -> Generators:
        return cls(torch.Generator(device).manual_seed(seed), torch.Generator().manual_seed(seed + 1))


class GreedyObjective(nn.Module):
    """``forward(waveform)`` -> total loss and per-module ``(nce, kl, accuracy)`` of shape ``(modules, 3)``."""

    def __init__(self, config: EncoderConfig, nce=info_nce):
        """``nce``: the InfoNCE function (``info_nce``; benchmarks swap in the loop formulation)."""
        super().__init__()
        self.config = config
        self.nce = nce
        self.encoder = SmoothInfoMaxEncoder(config)
        self.predictors = Predictors(config)

    def forward(self, waveform: torch.Tensor, generators: Generators) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: waveform ``(batch, 1, samples)`` or ``(batch, samples)``, all items full length."""
        loss_config = self.config.loss
        outputs = self.encoder(waveform, generator=generators.noise)
        total, rows = 0.0, []
        for output, predictor in zip(outputs, self.predictors.layers, strict=True):
            batch, frames, _ = output.target.shape
            draws = draw_infonce(batch, frames, loss_config.positive_window_frames, loss_config.negatives,
                                 generators.draws, output.target.device)
            nce = self.nce(output.context.float(), output.target.float(), predictor, loss_config.prediction_steps,
                           loss_config.positive_window_frames, draws)
            kl = torch.zeros((), device=waveform.device)
            if output.logvar is not None:
                kl = gaussian_kl(output.mean.float(), output.logvar.float(), loss_config.kl_normalisation)
            total = total + nce.loss + loss_config.kl_weight * kl
            rows.append(torch.stack([nce.loss.detach(), kl.detach(), nce.accuracy.detach()]))
        return total, torch.stack(rows)
