"""Decoders from a CNN module's latents back to the waveform (spec section 5.1), saved like the encoder.

A decoder is a stack of ``ConvTranspose1d`` layers with a ReLU after every layer but the last, mapping
``(batch, frames, dim)`` latents to ``(batch, samples)`` audio. For the SIM grouping of the CPC conv stack the
layers are the reference's (:data:`REFERENCE_LAYERS`); for any other module they mirror the encoder's conv layers
up to that module. The transposed stack produces exactly the input length only for some frame counts (20480 and
10240 samples for the reference), so the output is cropped or zero-padded at the end to the requested sample count:
by default ``frames * hop_samples``, and the original input length when it is known.

A decoder folder holds ``config.json`` (a :class:`DecoderConfig`, ``kind`` ``"smooth-infomax-decoder"``),
``model.safetensors`` and ``README.md``; on the Hub it lives in a sub-folder of the encoder's repo, e.g.
``decoders/module-2``, beside the encoder's own three files. It is saved, pushed and loaded by
:mod:`smooth_infomax.hub`, as the encoder is: strictly, safetensors only, config and weights from one Hub commit.
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
from ..config import CPC_CONV_LAYERS, EncoderConfig, check_format, strict_fields

DECODER_KIND = "smooth-infomax-decoder"
DECODER_FORMAT_VERSION = 1

REFERENCE_LAYERS: dict[int, tuple[tuple[int, int, int, int], ...]] = {
    2: ((8, 4, 2, 3), (3, 1, 1, 0), (3, 1, 1, 0), (10, 5, 2, 4), (3, 1, 1, 0), (3, 1, 1, 0)),
    4: ((4, 2, 2, 0), (4, 2, 2, 1), (8, 4, 2, 3), (10, 5, 2, 4)),
    5: ((4, 2, 1, 1), (4, 2, 2, 0), (4, 2, 2, 1), (8, 4, 2, 3), (10, 5, 2, 4)),
}
"""The reference decoders' ``(kernel, stride, padding, output_padding)`` layers, keyed by how many CPC conv layers
the encoder has run up to the decoded module (2: SIM module 0, 4: module 1, 5: module 2)."""


@dataclass(frozen=True)
class DecoderConfig:
    """Architecture of one module's decoder, plus a free-form record of how it was trained.

    Attributes:
        module: index of the encoder module whose latents it decodes.
        in_dim: latent size (the module's ``dim``).
        hidden_channels: width of every layer but the last (512 in the reference).
        layers: ``(kernel, stride, padding, output_padding)`` per ``ConvTranspose1d``.
        hop_samples: input samples per latent frame of the module.
        sample_rate: rate of the decoded audio (Hz).
        training: how it was trained (loss, steps, encoder, ...); not used to build the model.
        encoder_sha256: the pin of the encoder whose latents it decodes (``hub.weights_sha256`` of its weights);
            ``""`` when not recorded. Loaders refuse a decoder whose pin differs from the encoder's.
    """

    module: int
    in_dim: int
    hidden_channels: int
    layers: tuple[tuple[int, int, int, int], ...]
    hop_samples: int
    sample_rate: int = 16_000
    training: dict[str, Any] = field(default_factory=dict)
    encoder_sha256: str = ""
    kind: str = DECODER_KIND
    format_version: int = DECODER_FORMAT_VERSION

    def __post_init__(self) -> None:
        check_format(self.kind, DECODER_KIND, self.format_version, DECODER_FORMAT_VERSION, "decoder")
        if not self.layers or self.in_dim < 1 or self.hidden_channels < 1 or self.hop_samples < 1:
            raise ValueError(f"bad decoder config: {self}")
        for k, s, p, op in self.layers:
            if k < 1 or s < 1 or p < 0 or not 0 <= op < s:
                raise ValueError(f"bad decoder layer (kernel, stride, padding, output_padding) = {(k, s, p, op)}")

    def output_samples(self, frames: int) -> int:
        """Natural length of the transposed stack for ``frames`` input frames: (L - 1) s - 2 p + k + op per layer."""
        length = frames
        for k, s, p, op in self.layers:
            length = (length - 1) * s - 2 * p + k + op
        return length

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DecoderConfig:
        data = strict_fields(cls, json.loads(text), "decoder config")
        data["layers"] = tuple(tuple(int(v) for v in layer) for layer in data.get("layers", ()))
        return cls(**data)


def decoder_config_for(encoder_config: EncoderConfig, module: int, hidden_channels: int = 512) -> DecoderConfig:
    """The decoder layout for ``module`` of an encoder: the reference layers when the encoder's conv layers up to
    that module are the first 2, 4 or 5 CPC layers, otherwise the encoder's conv layers mirrored (last first,
    output padding ``stride - 1``). Modules with a GRU have no decoder."""
    modules = encoder_config.modules
    if not -len(modules) <= module < len(modules):
        raise ValueError(f"module {module} out of range for {len(modules)} modules")
    module %= len(modules)
    if modules[module].gru_hidden_size or not modules[module].conv_layers:
        raise ValueError(f"module {module} is not a CNN module; decoders exist for CNN modules only")
    conv = [layer for m in modules[: module + 1] for layer in m.conv_layers]
    cpc = [(c.kernel_size, c.stride, c.padding) for c in CPC_CONV_LAYERS]
    if len(conv) in REFERENCE_LAYERS and [(c.kernel_size, c.stride, c.padding) for c in conv] == cpc[: len(conv)]:
        layers = REFERENCE_LAYERS[len(conv)]
    else:
        layers = tuple((c.kernel_size, c.stride, c.padding, c.stride - 1) for c in reversed(conv))
    hop = 1
    for c in conv:
        hop *= c.stride
    dim = encoder_config.output_dims()[module]
    return DecoderConfig(module, dim, hidden_channels, layers, hop, encoder_config.sample_rate)


class ModuleDecoder(nn.Module):
    """Decoder of one CNN module: ``(batch, frames, dim)`` latents -> ``(batch, samples)`` waveform.

    Example:
        >>> decoder = ModuleDecoder(decoder_config_for(encoder.config, module=2))
        >>> features = encoder.extract(wav, sample_rate=16000)[2]
        >>> audio = decoder(features.mean, num_samples=wav.shape[-1])
    """

    def __init__(self, config: DecoderConfig):
        super().__init__()
        self.config = config
        channels, layers = config.in_dim, []
        for i, (k, s, p, op) in enumerate(config.layers):
            out = 1 if i == len(config.layers) - 1 else config.hidden_channels
            layers.append(nn.ConvTranspose1d(channels, out, k, s, p, output_padding=op))
            channels = out
        self.layers = nn.ModuleList(layers)
        self.name_or_path: str | None = None  # where from_pretrained found the decoder
        self.revision: str | None = None  # the Hub commit its config and weights came from

    @property
    def module(self) -> int:
        return self.config.module

    def forward(self, latents: torch.Tensor, num_samples: int | None = None,
                sample_lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Decode latents.

        Args:
            latents: ``(batch, frames, dim)``.
            num_samples: length of the output (default ``frames * hop_samples``); the natural output of the
                transposed stack is cropped or zero-padded at the end to it.
            sample_lengths: ``(batch,)`` valid samples per item; samples past them are zeroed.

        Returns:
            ``(batch, num_samples)`` waveform.
        """
        x = latents.transpose(1, 2)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        wave = x[:, 0]
        target = latents.shape[1] * self.config.hop_samples if num_samples is None else int(num_samples)
        wave = wave[:, :target] if wave.shape[-1] >= target else nn.functional.pad(wave, (0, target - wave.shape[-1]))
        if sample_lengths is not None:
            valid = torch.arange(target, device=wave.device)[None, :] < sample_lengths.to(wave.device)[:, None]
            wave = wave * valid.to(wave.dtype)
        return wave

    # --- persistence -------------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | Path, weights_dtype: torch.dtype | None = None) -> Path:
        """Write ``config.json``, ``model.safetensors`` (float weights as ``weights_dtype`` when given) and
        ``README.md`` to ``directory``."""
        return hub.write_model_folder(directory, self, self.config.to_json(), _card(self.config),
                                      {"format": "pt", "kind": DECODER_KIND}, weights_dtype)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, subfolder: str | None = None, revision: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool = False,
                        token: str | bool | None = None) -> ModuleDecoder:
        """Load a decoder from a local folder (``subfolder`` inside it, if given) or a Hub repo's ``subfolder``, its
        weights from the commit its config came from; strict loading, safetensors only; returned in ``eval()``
        mode, with ``revision`` set to that commit (``None`` for a local folder)."""
        files = hub.locate(name_or_path, subfolder, revision, cache_dir, local_files_only, token, kind="decoder")
        config = hub.read_config(files.config_path, DecoderConfig.from_json)
        decoder = hub.build_and_load(lambda: cls(config), files.weights_path)
        decoder.name_or_path, decoder.revision = files.source, files.commit
        return decoder.eval()

    def push_to_hub(self, repo_id: str, subfolder: str | None = None, revision: str | None = None,
                    token: str | None = None, commit_message: str = "Upload smooth-infomax decoder") -> str:
        """Upload the decoder's files into ``subfolder`` (default ``decoders/module-<m>``) of ``repo_id`` (created
        if needed), beside an encoder pushed there, onto branch ``revision`` (created if needed); returns the
        commit URL."""
        return hub.push_saved(self.save_pretrained, repo_id, path_in_repo=subfolder or default_subfolder(self.module),
                              revision=revision, token=token, commit_message=commit_message)


def default_subfolder(module: int) -> str:
    """Where a module's decoder sat in a model repo or folder before decoders had kinds: ``decoders/module-<m>``
    (still read as a waveform decoder; see :func:`decoder_subfolder`)."""
    return f"decoders/module-{module}"


def decoder_subfolder(module: int, kind: str) -> str:
    """Where a module's decoder of ``kind`` (``"logmel"`` or ``"waveform"``) sits in a model repo or folder:
    ``decoders/module-<m>/<kind>``."""
    return f"decoders/module-{module}/{kind}"


def _card(config: DecoderConfig) -> str:
    training = "\n".join(f"- {k}: {v}" for k, v in sorted(config.training.items())) or "- not recorded"
    n_params = sum(k * (config.in_dim if i == 0 else config.hidden_channels)
                   * (1 if i == len(config.layers) - 1 else config.hidden_channels)
                   for i, (k, *_rest) in enumerate(config.layers))
    header = hub_metadata(("audio", "speech", "smooth-infomax", "decoder", f"module-{config.module}"))
    return (f"{header}# Smooth InfoMax decoder for module {config.module}\n\n"
            f"Maps module {config.module} latents `(batch, frames, {config.in_dim})` "
            f"(hop {config.hop_samples} samples) "
            f"to {config.sample_rate} Hz audio with {len(config.layers)} transposed convolutions "
            f"({config.hidden_channels} hidden channels, about {n_params:,} weights).\n"
            "Load with `smooth_infomax.analysis.decoder.ModuleDecoder.from_pretrained(path_or_repo, "
            "subfolder=...)`.\n\n"
            f"Encoder pin (sha256 of the encoder's weights): `{config.encoder_sha256 or 'not recorded'}`.\n\n"
            f"## Training\n\n{training}\n")
