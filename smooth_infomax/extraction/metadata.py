"""Metadata stored in every output (``str -> str``, as safetensors requires) and the tensor layout of a file."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from .. import __version__
from ..audio import SAMPLE_RATE
from ..geometry import output_lengths
from .audio_io import DecodedAudio
from .paths import display
from .plan import WorkItem
from .settings import STORE_DTYPES, FeatureSettings

FORMAT_NAME = "smooth-infomax-features"


@dataclass(frozen=True)
class RunContext:
    """What is the same for every file of a run: the model, the settings and their hash."""

    encoder: object
    settings: FeatureSettings
    settings_sha256: str
    model_name: str
    model_revision: str

    def module_keys(self, module: int) -> list[str]:
        """Tensor keys stored for ``module``: ``module{m}.mean``, and ``.logvar``/``.sample`` for Gaussian ones."""
        gaussian = self.encoder.config.modules[module].is_gaussian
        return [f"module{module}.{what}" for what in self.settings.what if what == "mean" or gaussian]

    def specs(self, samples: int) -> dict[str, tuple[tuple[int, int], np.dtype]]:
        """Shape ``(frames, dim)`` and dtype of every stored tensor for an input of ``samples`` (16 kHz)."""
        lengths, dims = output_lengths(self.encoder.config, samples), self.encoder.output_dims
        dtype = STORE_DTYPES[self.settings.dtype]
        return {key: ((int(lengths[m]), dims[m]), dtype) for m in self.settings.modules for key in self.module_keys(m)}

    def modules_json(self, samples: int) -> list[dict]:
        lengths = output_lengths(self.encoder.config, samples)
        out = []
        for m in self.settings.modules:
            geometry = self.encoder.geometries[m]
            out.append({"index": m, "frames": int(lengths[m]), "dim": self.encoder.output_dims[m],
                        "hop_samples": geometry.hop_samples, "frame_rate_hz": geometry.frame_rate_hz,
                        "receptive_field_samples": geometry.receptive_field_samples,
                        "conv_receptive_field_samples": geometry.conv_receptive_field_samples,
                        "first_sample": geometry.first_sample, "recurrent": geometry.recurrent,
                        "keys": self.module_keys(m)})
        return out


def file_metadata(
    context: RunContext, item: WorkItem, audio: DecodedAudio, source_sha256: str, fingerprint: str, seed: int
) -> dict[str, str]:
    """The metadata of one output. Flat string fields for quick access, and ``json`` with all of them plus the
    per-module geometry (hop, receptive field, frames, dim, keys) as real JSON types."""
    samples = int(audio.waveform.shape[0])
    settings = context.settings
    fields = {
        "format": FORMAT_NAME,
        "format_version": settings.format_version,
        "smooth_infomax_version": __version__,
        "model": context.model_name,
        "model_revision": context.model_revision,
        "model_sha256": settings.model_sha256,
        "modules": ",".join(str(m) for m in settings.modules),
        "what": ",".join(settings.what),
        "dtype": settings.dtype,
        "compute_dtype": settings.compute_dtype,
        "sample_rate": SAMPLE_RATE,
        "hop_samples": ",".join(str(context.encoder.geometries[m].hop_samples) for m in settings.modules),
        "samples": samples,
        "source": display(item.source.key),
        "source_key_hex": os.fsencode(str(item.source.key)).hex(),
        "source_duration_s": round(audio.info.duration_s, 6),
        "source_sample_rate": audio.info.sample_rate,
        "source_channels": audio.info.channels,
        "source_frames": audio.info.frames,
        "source_format": f"{audio.file_format}/{audio.subtype}",
        "source_sha256": source_sha256,
        "source_size_bytes": item.status.size_bytes,
        "source_mtime_ns": item.status.mtime_ns,
        "downmix": "mean of channels" if audio.info.channels > 1 else "",
        "resampler": audio.resampler,
        "settings_sha256": context.settings_sha256,
        "fingerprint": fingerprint,
        "seed": seed,
    }
    flat = {key: str(value) for key, value in fields.items()}
    flat["json"] = json.dumps({**fields, "module_info": context.modules_json(samples)}, sort_keys=True)
    return flat
