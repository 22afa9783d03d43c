"""The log-mel decoder: one Gaussian module's latents ``(batch, frames, dim)`` -> 80-band log-mel frames
``(batch, frames, 80)`` at the module's hop, and the log-mel front end it is trained against.

A log-mel decoder is cheap to train (an L1 loss on log-mel frames, a small conv net) and is what a person reads in
a picture. Audio comes from a vocoder that torchaudio already provides: ``InverseMelScale`` (least squares back to a
linear power spectrogram) and ``GriffinLim`` (phase by iteration). It sounds buzzy, but it is enough to hear what a
traversal changes. The waveform decoder (:mod:`.decoder`, the paper's) decodes audio directly.

A log-mel decoder folder holds ``config.json`` (a :class:`LogMelDecoderConfig`, ``kind``
``"smooth-infomax-logmel-decoder"``), ``model.safetensors`` and ``README.md``, saved and loaded by
:mod:`smooth_infomax.hub` as the encoder is.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import hub
from ..card import hub_metadata
from ..config import EncoderConfig, check_format, strict_fields

LOGMEL_KIND = "smooth-infomax-logmel-decoder"
LOGMEL_FORMAT_VERSION = 1


@dataclass(frozen=True)
class LogMelSettings:
    """The log-mel front end: power mel spectrogram (Hann window, centred frames, Slaney bands and norm), then
    ``log(max(floor, S))``. Frame ``t`` is centred on sample ``t * hop_samples``."""

    sample_rate: int = 16_000
    n_mels: int = 80
    n_fft: int = 512
    win_samples: int = 400  # 25 ms
    hop_samples: int = 160
    floor: float = 1e-5

    def __post_init__(self) -> None:
        if min(self.n_mels, self.n_fft, self.win_samples, self.hop_samples) < 1 or self.win_samples > self.n_fft:
            raise ValueError(f"bad log-mel settings: {self}")

    def _mel(self):
        import torchaudio

        return torchaudio.transforms.MelSpectrogram(
            sample_rate=self.sample_rate, n_fft=self.n_fft, win_length=self.win_samples, hop_length=self.hop_samples,
            center=True, power=2.0, n_mels=self.n_mels, norm="slaney", mel_scale="slaney")


def log_mel(audio: torch.Tensor, settings: LogMelSettings, frames: int | None = None) -> torch.Tensor:
    """Log-mel frames ``(batch, frames, n_mels)`` of ``(batch, samples)`` audio; ``frames`` crops (or pads with the
    floor) to that many, e.g. to a module's frame count."""
    mel = settings._mel().to(audio.device)(audio.float()).transpose(1, 2)
    out = torch.log(mel.clamp_min(settings.floor))
    if frames is not None:
        out = out[:, :frames]
        if out.shape[1] < frames:
            out = nn.functional.pad(out, (0, 0, 0, frames - out.shape[1]), value=float(torch.log(
                torch.tensor(settings.floor))))
    return out


def logmel_to_audio(logmel: torch.Tensor, settings: LogMelSettings, num_samples: int | None = None,
                    n_iter: int = 32) -> torch.Tensor:
    """Audio ``(batch, samples)`` from log-mel frames ``(batch, frames, n_mels)``: torchaudio's ``InverseMelScale``
    then ``GriffinLim`` (``n_iter`` iterations); ``num_samples`` crops or zero-pads the end."""
    import torchaudio

    power_mel = torch.exp(logmel.float()).transpose(1, 2)  # (batch, n_mels, frames)
    linear = torchaudio.transforms.InverseMelScale(
        n_stft=settings.n_fft // 2 + 1, n_mels=settings.n_mels, sample_rate=settings.sample_rate, norm="slaney",
        mel_scale="slaney")(power_mel).clamp_min(0)
    griffin_lim = torchaudio.transforms.GriffinLim(n_fft=settings.n_fft, n_iter=n_iter, win_length=settings.win_samples,
                                                   hop_length=settings.hop_samples, power=2.0)
    wave = griffin_lim(linear)
    if num_samples is not None:
        wave = wave[:, :num_samples] if wave.shape[-1] >= num_samples else \
            nn.functional.pad(wave, (0, num_samples - wave.shape[-1]))
    return wave


@dataclass(frozen=True)
class LogMelDecoderConfig:
    """Architecture of one module's log-mel decoder, its front end, its encoder pin and a record of its training.

    Attributes:
        module: index of the encoder module whose latents it decodes.
        in_dim: latent size (the module's ``dim``).
        hop_samples: input samples per latent frame of the module (also the log-mel hop).
        hidden_channels: width of the conv net.
        kernel_size: time kernel of each residual block (odd).
        blocks: number of residual blocks.
        n_mels, n_fft, win_samples, floor, sample_rate: the log-mel front end (see :class:`LogMelSettings`).
        encoder_sha256: pin of the encoder (``hub.weights_sha256``); ``""`` when not recorded.
        training: how it was trained (steps, seconds, data, ...); not used to build the model.
    """

    module: int
    in_dim: int
    hop_samples: int
    hidden_channels: int = 256
    kernel_size: int = 5
    blocks: int = 3
    n_mels: int = 80
    n_fft: int = 512
    win_samples: int = 400
    floor: float = 1e-5
    sample_rate: int = 16_000
    encoder_sha256: str = ""
    training: dict[str, Any] = field(default_factory=dict)
    kind: str = LOGMEL_KIND
    format_version: int = LOGMEL_FORMAT_VERSION

    def __post_init__(self) -> None:
        check_format(self.kind, LOGMEL_KIND, self.format_version, LOGMEL_FORMAT_VERSION, "log-mel decoder")
        if min(self.in_dim, self.hop_samples, self.hidden_channels, self.kernel_size, self.n_mels) < 1 \
                or self.kernel_size % 2 == 0 or self.blocks < 0:
            raise ValueError(f"bad log-mel decoder config: {self}")
        self.settings  # noqa: B018 -- validates the front end

    @property
    def settings(self) -> LogMelSettings:
        return LogMelSettings(self.sample_rate, self.n_mels, self.n_fft, self.win_samples, self.hop_samples,
                              self.floor)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> LogMelDecoderConfig:
        return cls(**strict_fields(cls, json.loads(text), "log-mel decoder config"))


def logmel_config_for(encoder_config: EncoderConfig, module: int, hidden_channels: int = 256,
                      n_fft: int | None = None) -> LogMelDecoderConfig:
    """The log-mel decoder for ``module`` of an encoder: log-mel frames at the module's hop. ``n_fft`` defaults to
    512 samples (a 25 ms window) or, for hops over 256 samples, the next power of two of twice the hop."""
    modules = encoder_config.modules
    if not -len(modules) <= module < len(modules):
        raise ValueError(f"module {module} out of range for {len(modules)} modules")
    module %= len(modules)
    if modules[module].gru_hidden_size or not modules[module].conv_layers:
        raise ValueError(f"module {module} is not a CNN module; decoders exist for CNN modules only")
    hop = 1
    for m in modules[: module + 1]:
        for c in m.conv_layers:
            hop *= c.stride
    n_fft = n_fft or max(512, 1 << (2 * hop - 1).bit_length())
    return LogMelDecoderConfig(module, encoder_config.output_dims()[module], hop, hidden_channels, n_fft=n_fft,
                               win_samples=min(400, n_fft) if n_fft == 512 else n_fft,
                               sample_rate=encoder_config.sample_rate)


class _Block(nn.Module):
    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(nn.functional.gelu(self.conv(x)))


class LogMelDecoder(nn.Module):
    """Log-mel decoder of one module: ``(batch, frames, dim)`` latents -> ``(batch, frames, n_mels)`` log-mel.

    A 1x1 input projection, ``blocks`` residual blocks (conv over time, GELU, 1x1) and a 1x1 output layer: each output
    frame sees ``blocks * (kernel_size - 1) + 1`` latent frames.

    Example:
        >>> decoder = LogMelDecoder(logmel_config_for(encoder.config, module=2))
        >>> logmel = decoder(encoder.extract(wav, sample_rate=16000)[2].mean)  # (1, frames, 80)
        >>> audio = logmel_to_audio(logmel, decoder.config.settings)
    """

    def __init__(self, config: LogMelDecoderConfig):
        super().__init__()
        self.config = config
        width = config.hidden_channels
        self.inp = nn.Conv1d(config.in_dim, width, 1)
        self.blocks = nn.ModuleList(_Block(width, config.kernel_size) for _ in range(config.blocks))
        self.out = nn.Conv1d(width, config.n_mels, 1)
        assert self.out.bias is not None  # Conv1d's default bias=True
        with torch.no_grad():
            self.out.bias.fill_(-6.0)  # about the mean log-mel of speech at 16 kHz: the first steps skip the offset
        self.name_or_path: str | None = None
        self.revision: str | None = None

    @property
    def module(self) -> int:
        return self.config.module

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """``(batch, frames, dim)`` -> ``(batch, frames, n_mels)``."""
        x = self.inp(latents.transpose(1, 2).to(self.inp.weight.dtype))
        for block in self.blocks:
            x = block(x)
        return self.out(x).transpose(1, 2)

    def save_pretrained(self, directory: str | Path, weights_dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``README.md`` to ``directory``."""
        return hub.write_model_folder(directory, self, self.config.to_json(), _card(self.config),
                                      {"format": "pt", "kind": LOGMEL_KIND}, weights_dtype)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, subfolder: str | None = None, revision: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool = False,
                        token: str | bool | None = None) -> LogMelDecoder:
        """Load from a local folder or a Hub repo's ``subfolder`` (strict, safetensors only, one commit); ``eval()``."""
        files = hub.locate(name_or_path, subfolder, revision, cache_dir, local_files_only, token, kind="decoder")
        config = hub.read_config(files.config_path, LogMelDecoderConfig.from_json)
        decoder = hub.build_and_load(lambda: cls(config), files.weights_path)
        decoder.name_or_path, decoder.revision = files.source, files.commit
        return decoder.float().eval()


def _card(config: LogMelDecoderConfig) -> str:
    training = "\n".join(f"- {k}: {v}" for k, v in sorted(config.training.items())) or "- not recorded"
    header = hub_metadata(("audio", "speech", "smooth-infomax", "decoder", "log-mel", f"module-{config.module}"))
    return (f"{header}# Smooth InfoMax log-mel decoder for module {config.module}\n\n"
            f"Maps module {config.module} latents `(batch, frames, {config.in_dim})` (hop {config.hop_samples} "
            f"samples) to {config.n_mels}-band log-mel frames at the same hop (n_fft {config.n_fft}, "
            f"window {config.win_samples}, Slaney mel). Audio: torchaudio's InverseMelScale + GriffinLim "
            "(`smooth_infomax.analysis.logmel.logmel_to_audio`).\n\n"
            f"Encoder pin (sha256 of the encoder's weights): `{config.encoder_sha256 or 'not recorded'}`.\n\n"
            f"## Training\n\n{training}\n")
