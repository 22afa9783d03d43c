"""Decoders from a CNN module's latents back to the waveform (spec section 5.1), saved like the encoder.

A decoder is a stack of ``ConvTranspose1d`` layers with a ReLU after every layer but the last, mapping
``(batch, frames, dim)`` latents to ``(batch, samples)`` audio. For the SIM grouping of the CPC conv stack the
layers are the reference's (:data:`REFERENCE_LAYERS`); for any other module they mirror the encoder's conv layers
up to that module. The transposed stack produces exactly the input length only for some frame counts (20480 and
10240 samples for the reference), so the output is cropped or zero-padded at the end to the requested sample count:
by default ``frames * hop_samples``, and the original input length when it is known.

A decoder folder holds ``config.json`` (a :class:`DecoderConfig`, ``kind`` ``"smooth-infomax-decoder"``),
``model.safetensors`` and ``README.md``; on the Hub it lives in a sub-folder of the encoder's repo, e.g.
``decoders/module-2``, beside the encoder's own three files.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import CPC_CONV_LAYERS, EncoderConfig
from ..hub import (
    CARD_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    LoadError,
    load_state_dict_strict,
)

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
    """

    module: int
    in_dim: int
    hidden_channels: int
    layers: tuple[tuple[int, int, int, int], ...]
    hop_samples: int
    sample_rate: int = 16_000
    training: dict[str, Any] = field(default_factory=dict)
    kind: str = DECODER_KIND
    format_version: int = DECODER_FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.kind != DECODER_KIND:
            raise ValueError(f"not a decoder config (kind {self.kind!r}, expected {DECODER_KIND!r})")
        if self.format_version > DECODER_FORMAT_VERSION:
            raise ValueError(f"decoder format_version {self.format_version} is newer than this package understands")
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
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("decoder config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"decoder config has unknown key(s) {unknown}")
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

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``README.md`` to ``directory``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {name: t.detach().cpu().contiguous() for name, t in self.state_dict().items()}
        save_file(tensors, str(directory / WEIGHTS_NAME), metadata={"format": "pt", "kind": DECODER_KIND})
        (directory / CONFIG_NAME).write_text(self.config.to_json(), encoding="utf-8")
        (directory / CARD_NAME).write_text(_card(self.config), encoding="utf-8")
        return directory

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, subfolder: str | None = None, revision: str | None = None,
                        cache_dir: str | Path | None = None, local_files_only: bool = False,
                        token: str | bool | None = None) -> ModuleDecoder:
        """Load a decoder from a local folder (``subfolder`` inside it, if given) or a Hub repo's ``subfolder``;
        strict loading, safetensors only; returned in ``eval()`` mode."""
        folder = Path(name_or_path) / (subfolder or "")
        looks_local = str(name_or_path).startswith((".", "/", "~")) or Path(name_or_path).exists()
        if not folder.is_dir() and looks_local:
            raise LoadError(f"{folder}: no such decoder folder")
        if not folder.is_dir():
            folder = _download(str(name_or_path), subfolder, revision, cache_dir, local_files_only, token)
        missing = [n for n in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / n).is_file()]
        if missing:
            raise LoadError(f"{folder}: not a decoder folder, missing {', '.join(missing)}")
        try:
            config = DecoderConfig.from_json((folder / CONFIG_NAME).read_text(encoding="utf-8"))
        except (ValueError, TypeError) as err:
            raise LoadError(f"{folder / CONFIG_NAME}: {err}") from None
        from safetensors.torch import load_file

        decoder = cls(config)
        load_state_dict_strict(decoder, load_file(str(folder / WEIGHTS_NAME)), str(folder / WEIGHTS_NAME))
        return decoder.eval()

    def push_to_hub(self, repo_id: str, subfolder: str | None = None, revision: str | None = None,
                    token: str | None = None, commit_message: str = "Upload smooth-infomax decoder") -> str:
        """Upload the decoder's files into ``subfolder`` (default ``decoders/module-<m>``) of ``repo_id`` (created
        if needed), beside an encoder pushed there; returns the commit URL."""
        from huggingface_hub import HfApi

        api = HfApi(token=token)
        api.create_repo(repo_id, exist_ok=True)
        with tempfile.TemporaryDirectory() as folder:
            self.save_pretrained(folder)
            info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                     path_in_repo=subfolder or default_subfolder(self.module),
                                     commit_message=commit_message)
        return str(getattr(info, "commit_url", info))


def default_subfolder(module: int) -> str:
    """Where a module's decoder sits in a model repo or folder: ``decoders/module-<m>``."""
    return f"decoders/module-{module}"


def _download(repo_id, subfolder, revision, cache_dir, local_files_only, token) -> Path:
    from huggingface_hub import hf_hub_download

    kwargs = {"repo_id": repo_id, "subfolder": subfolder, "cache_dir": cache_dir,
              "local_files_only": local_files_only, "token": token}
    config_path = Path(hf_hub_download(filename=CONFIG_NAME, revision=revision, **kwargs))
    hf_hub_download(filename=WEIGHTS_NAME, revision=revision, **kwargs)
    return config_path.parent


def _card(config: DecoderConfig) -> str:
    training = "\n".join(f"- {k}: {v}" for k, v in sorted(config.training.items())) or "- not recorded"
    n_params = sum(k * (config.in_dim if i == 0 else config.hidden_channels)
                   * (1 if i == len(config.layers) - 1 else config.hidden_channels)
                   for i, (k, *_rest) in enumerate(config.layers))
    return (f"# Smooth InfoMax decoder for module {config.module}\n\n"
            f"Maps module {config.module} latents `(batch, frames, {config.in_dim})` "
            f"(hop {config.hop_samples} samples) "
            f"to {config.sample_rate} Hz audio with {len(config.layers)} transposed convolutions "
            f"({config.hidden_channels} hidden channels, about {n_params:,} weights).\n"
            "Load with `smooth_infomax.analysis.decoder.ModuleDecoder.from_pretrained(path_or_repo, "
            "subfolder=...)`.\n\n"
            f"## Training\n\n{training}\n")
