"""A model's own decoders: where they live in its folder or Hub repo, finding them, loading them pinned to the
encoder's weights, and decoding latents to pictures (log-mel) and audio with either kind.

Layout inside a model folder or repo: ``decoders/module-<m>/<kind>/`` (``config.json``, ``model.safetensors``,
``README.md``), ``kind`` one of :data:`DECODER_KINDS`; the older ``decoders/module-<m>/`` is read as a waveform
decoder. Each decoder's config carries ``encoder_sha256``, the :func:`smooth_infomax.hub.weights_sha256` of the
encoder it was trained for; loading it for an encoder with other weights raises :class:`PinMismatchError`.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import hub
from .decoder import ModuleDecoder, decoder_subfolder
from .logmel import LOGMEL_KIND, LogMelDecoder, LogMelSettings, log_mel, logmel_to_audio

DECODER_KINDS = ("logmel", "waveform")
AnyDecoder = ModuleDecoder | LogMelDecoder
DISPLAY_SETTINGS = LogMelSettings()
"""Log-mel front end of pictures of waveform-decoder output (and of input audio next to them)."""
_NEW = re.compile(r"^decoders/module-(\d+)/(logmel|waveform)$")
_OLD = re.compile(r"^decoders/module-(\d+)$")


class PinMismatchError(hub.LoadError):
    """A decoder trained for other encoder weights than the ones it is asked to decode."""


@dataclass(frozen=True)
class FoundDecoder:
    """A decoder in a model folder or repo: its module, kind (``"logmel"``/``"waveform"``) and sub-folder."""

    module: int
    kind: str
    subfolder: str


def encoder_pin(encoder: torch.nn.Module) -> str:
    """The encoder's pin: :func:`smooth_infomax.hub.weights_sha256` of its weights (equal to that of the
    ``model.safetensors`` it was loaded from, float16 or float32)."""
    return hub.weights_sha256(encoder.state_dict())


def kind_of(decoder: AnyDecoder) -> str:
    return "logmel" if isinstance(decoder, LogMelDecoder) else "waveform"


def check_pin(decoder: AnyDecoder, encoder_sha256: str | None, where: str = "decoder") -> None:
    """Raise :class:`PinMismatchError` naming both hashes when ``decoder`` was trained for other encoder weights;
    warn when it records no pin. ``encoder_sha256=None`` checks nothing."""
    pin = decoder.config.encoder_sha256
    if encoder_sha256 is None:
        return
    if not pin:
        warnings.warn(f"{where} records no encoder pin; it may belong to another encoder", stacklevel=2)
    elif pin != encoder_sha256:
        raise PinMismatchError(
            f"{where} was trained for encoder weights with sha256 {pin}, but this encoder's weights have sha256 "
            f"{encoder_sha256}: retrain it for this encoder (python -m training.train_decoders) or load the encoder "
            "it was trained for")


def load_decoder(name_or_path: str | Path, subfolder: str | None = None, revision: str | None = None,
                 encoder_sha256: str | None = None, cache_dir: str | Path | None = None,
                 local_files_only: bool = False, token: str | bool | None = None) -> AnyDecoder:
    """Load a decoder of either kind (chosen by its config's ``kind``) from a folder or Hub repo (``subfolder``),
    checking its pin against ``encoder_sha256`` when given (see :func:`check_pin`)."""
    files = hub.locate(name_or_path, subfolder, revision, cache_dir, local_files_only, token, kind="decoder")
    try:
        kind = json.loads(files.config_path.read_text(encoding="utf-8")).get("kind")
    except (ValueError, AttributeError) as err:
        raise hub.LoadError(f"{files.config_path}: {err}") from None
    cls = LogMelDecoder if kind == LOGMEL_KIND else ModuleDecoder
    decoder = cls.from_pretrained(name_or_path, subfolder, files.commit or revision, cache_dir, local_files_only, token)
    where = f"decoder {name_or_path}" + (f"/{subfolder}" if subfolder else "")
    check_pin(decoder, encoder_sha256, where)
    return decoder


def find_decoders(model: str | Path, revision: str | None = None, cache_dir: str | Path | None = None,
                  local_files_only: bool = False, token: str | bool | None = None,
                  ) -> tuple[list[FoundDecoder], str | None]:
    """The decoders inside a model (local folder, shipped model name or Hub repo at one commit) and that commit."""
    found, commit = hub.find_subfolders(model, "decoders/*", revision, cache_dir, local_files_only, token)
    nested, _ = hub.find_subfolders(model, "decoders/*/*", commit or revision, cache_dir, local_files_only, token)
    decoders = []
    for sub in sorted(set(found) | set(nested)):
        if (new := _NEW.match(sub)) is not None:
            decoders.append(FoundDecoder(int(new.group(1)), new.group(2), sub))
        elif (old := _OLD.match(sub)) is not None:
            decoders.append(FoundDecoder(int(old.group(1)), "waveform", sub))
    return decoders, commit


def pick(found: list[FoundDecoder], kind: str, module: int | None, model: str) -> FoundDecoder:
    """The decoder of ``kind`` for ``module`` (default: the deepest module that has one); an error lists what the
    model has. A new-layout folder wins over the old one for the same module."""
    matching = sorted((f for f in found if f.kind == kind and (module is None or f.module == module)),
                      key=lambda f: (f.module, f.subfolder.count("/")))
    if not matching:
        have = ", ".join(f"{f.subfolder} ({f.kind})" for f in found) or "no decoders"
        wanted = f"{kind} decoder" + (f" for module {module}" if module is not None else "")
        raise hub.LoadError(f"{model} has no {wanted} (expected {decoder_subfolder(module or 0, kind)}/ or "
                            f"similar; it has {have}); train them with python -m training.train_decoders")
    return matching[-1]


def load_model_decoder(model: str | Path, encoder: torch.nn.Module, kind: str = "logmel", module: int | None = None,
                       revision: str | None = None, encoder_sha256: str | None = None) -> AnyDecoder:
    """The decoder of ``kind`` shipped inside ``model`` (for ``module``, default the deepest), at the commit the
    encoder came from, checked against the encoder's pin."""
    revision = revision or getattr(encoder, "revision", None)
    found, commit = find_decoders(model, revision)
    choice = pick(found, kind, module, str(model))
    return load_decoder(model, choice.subfolder, commit or revision, encoder_sha256 or encoder_pin(encoder))


def decode_views(decoder: AnyDecoder, latents: torch.Tensor, num_samples: int, batch_size: int = 16,
                 griffin_lim_iters: int = 32) -> tuple[torch.Tensor, torch.Tensor, LogMelSettings]:
    """Decode ``(n, frames, dim)`` latents to log-mel ``(n, mel_frames, n_mels)`` and audio ``(n, num_samples)``,
    without gradients, plus the log-mel settings of the pictures: a log-mel decoder's own frames (audio by
    Griffin-Lim), or a waveform decoder's audio (log-mel by :data:`DISPLAY_SETTINGS`)."""
    from .latents import decode

    if isinstance(decoder, LogMelDecoder):
        settings = decoder.config.settings
        with torch.no_grad():
            logmel = torch.cat([decoder(latents[i:i + batch_size]).float()
                                for i in range(0, len(latents), batch_size)])
        return logmel, logmel_to_audio(logmel, settings, num_samples, griffin_lim_iters), settings
    audio = decode(decoder, latents, num_samples, batch_size)
    return log_mel(audio, DISPLAY_SETTINGS), audio, DISPLAY_SETTINGS
