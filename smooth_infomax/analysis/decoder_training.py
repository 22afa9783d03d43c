"""Training a module decoder on a frozen encoder (spec section 5.1, with bug 21 fixed).

The encoder is put in ``eval()`` mode (BatchNorm keeps its running statistics), its parameters stop requiring
gradients, and only the decoder's parameters are handed to Adam. Latents come from ``encoder.extract``, run once over
all clips (the posterior means and log-variances are kept in memory: ``n * frames * dim * 8`` bytes); each step then
decodes fresh posterior samples (as the reference's decoders were trained, ``deterministic=False``) or the means.

Losses: ``"mse"`` on the waveform (every README run), ``"mel"`` (mel spectrogram in dB, then MSE) or ``"mse+mel"``
(the reference's config default, weight 1).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Literal

import torch
from torch.nn import functional as F

from .decoder import ModuleDecoder, decoder_config_for

LossName = Literal["mse", "mel", "mse+mel"]


@dataclass(frozen=True)
class MelSettings:
    """The reference's mel loss: 16 kHz, n_fft 4096, hop 2048, centred with reflect padding, power 2, Slaney
    norm, HTK scale, 128 bands; dB = 10 log10(max(1e-10, S)). Clips must be longer than ``n_fft // 2`` samples."""

    n_fft: int = 4096
    hop_samples: int = 2048
    n_mels: int = 128


@dataclass(frozen=True)
class DecoderTrainConfig:
    """Settings of :func:`train_decoder` (reference: Adam lr 2e-4, batch 64, 50-200 epochs, MSE, samples)."""

    steps: int = 1000
    batch_size: int = 8
    learning_rate: float = 2e-4
    loss: LossName = "mse"
    mel_weight: float = 1.0
    sample: bool = True
    seed: int = 0
    mel: MelSettings = field(default_factory=MelSettings)

    def __post_init__(self) -> None:
        if self.loss not in ("mse", "mel", "mse+mel"):
            raise ValueError(f"loss must be 'mse', 'mel' or 'mse+mel', not {self.loss!r}")
        if self.steps < 0 or self.batch_size < 1 or self.learning_rate <= 0:
            raise ValueError(f"bad decoder training settings: {self}")


class MelLoss(torch.nn.Module):
    """MSE between the dB mel spectrograms of ``(batch, samples)`` prediction and target."""

    def __init__(self, settings: MelSettings, sample_rate: int = 16_000):
        super().__init__()
        import torchaudio

        self.settings = settings
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=settings.n_fft, hop_length=settings.hop_samples, center=True,
            pad_mode="reflect", power=2.0, norm="slaney", mel_scale="htk", n_mels=settings.n_mels)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.shape[-1] <= self.settings.n_fft // 2:
            raise ValueError(f"clips of {target.shape[-1]} samples are too short for the mel loss with n_fft "
                             f"{self.settings.n_fft}; use longer clips or a smaller MelSettings.n_fft")
        to_db = lambda x: 10 * torch.log10(self.mel(x).clamp_min(1e-10))
        return F.mse_loss(to_db(prediction), to_db(target))


def decoder_loss(name: LossName, mel: MelLoss | None, mel_weight: float = 1.0
                 ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss ``(prediction, target) -> scalar`` on ``(batch, samples)`` waveforms."""
    if name == "mse":
        return F.mse_loss
    if mel is None:
        raise ValueError(f"loss {name!r} needs a MelLoss")
    if name == "mel":
        return mel
    return lambda p, t: F.mse_loss(p, t) + mel_weight * mel(p, t)


def freeze(encoder: torch.nn.Module) -> torch.nn.Module:
    """Put ``encoder`` in ``eval()`` mode and stop its parameters requiring gradients (in place); returns it."""
    encoder.eval()
    encoder.requires_grad_(False)
    return encoder


def encode_for_decoder(encoder, audio: torch.Tensor, module: int, batch_size: int = 16
                       ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Posterior ``mean`` and ``logvar`` ``(n, frames, dim)`` of ``module`` for ``audio (n, samples)`` at the
    encoder's rate (``logvar`` is ``None`` for deterministic modules), as ordinary CPU tensors (cloned out of
    inference mode, so a decoder can be trained on them); computed ``batch_size`` clips at a time."""
    means: list[torch.Tensor] = []
    logvars: list[torch.Tensor] = []  # stays empty for a deterministic module
    device = next(encoder.parameters()).device
    for start in range(0, len(audio), batch_size):
        features = encoder.extract(audio[start:start + batch_size].to(device), sample_rate=encoder.sample_rate,
                                   modules=[module])[module]
        means.append(features.mean.float().cpu().clone())
        if features.logvar is not None:
            logvars.append(features.logvar.float().cpu().clone())
    return torch.cat(means), torch.cat(logvars) if logvars else None


def draw_latents(mean: torch.Tensor, logvar: torch.Tensor | None, sample: bool,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """``mean`` itself, or a reparameterised draw ``mean + exp(logvar / 2) * eps`` when ``sample`` (and there is a
    ``logvar``); shapes ``(batch, frames, dim)``."""
    if not sample or logvar is None:
        return mean
    eps = torch.randn(mean.shape, generator=generator, dtype=mean.dtype).to(mean.device)
    return mean + torch.exp(0.5 * logvar) * eps


def train_decoder(encoder, clips: torch.Tensor, module: int, config: DecoderTrainConfig = DecoderTrainConfig(),
                  decoder: ModuleDecoder | None = None, hidden_channels: int = 512,
                  device: torch.device | str | None = None, progress: Callable[[int, float], None] | None = None,
                  ) -> tuple[ModuleDecoder, list[float]]:
    """Train a decoder for ``module`` of a frozen ``encoder`` on random mini-batches of ``clips``.

    Args:
        encoder: a ``SmoothInfoMaxEncoder``; frozen in place (``eval()``, no gradients, not in the optimiser).
        clips: ``(n, samples)`` float audio at the encoder's rate (equal-length crops).
        module: the CNN module to decode.
        config: steps, batch, learning rate, loss, samples vs means, seed.
        decoder: continue training this decoder (default: a new one of ``decoder_config_for(...)``).
        hidden_channels: width of a new decoder (512 in the reference).
        device: where to train (default: the encoder's device).
        progress: called with ``(step, loss)`` after every step.

    Returns:
        The decoder (on the CPU, ``eval()`` mode, its ``config.training`` filled in) and the loss of each step.
    """
    freeze(encoder)
    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    encoder.to(device)
    if decoder is None:
        decoder = ModuleDecoder(decoder_config_for(encoder.config, module, hidden_channels))
    decoder = decoder.to(device).train()
    optimiser = torch.optim.Adam(decoder.parameters(), lr=config.learning_rate)
    mel = MelLoss(config.mel, decoder.config.sample_rate).to(device) if "mel" in config.loss else None
    loss_fn = decoder_loss(config.loss, mel, config.mel_weight)
    generator = torch.Generator().manual_seed(config.seed)
    mean, logvar = encode_for_decoder(encoder, clips, module)
    losses, start = [], time.perf_counter()
    with torch.enable_grad():
        for step in range(config.steps):
            rows = torch.randint(len(clips), (min(config.batch_size, len(clips)),), generator=generator)
            audio = clips[rows].to(device, torch.float32)
            latents = draw_latents(mean[rows], None if logvar is None else logvar[rows], config.sample, generator)
            latents = latents.to(device)
            loss = loss_fn(decoder(latents, num_samples=audio.shape[-1]), audio)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if progress:
                progress(step, losses[-1])
    record = {**decoder.config.training, **asdict(config), "final_loss": losses[-1] if losses else None,
              "steps_done": decoder.config.training.get("steps_done", 0) + config.steps,
              "train_seconds": round(time.perf_counter() - start, 2), "clips": len(clips),
              "clip_samples": int(clips.shape[-1]), "encoder": getattr(encoder, "name_or_path", None) or "unnamed"}
    decoder.config = replace(decoder.config, training=record)
    return decoder.cpu().eval(), losses
