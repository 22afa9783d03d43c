"""Fingerprints that decide ``--skip-existing``, and the per-file seed of the stored samples.

An output's fingerprint is ``sha256(settings_sha256 + ":" + source_sha256)``: a change of the input's content or
of any setting that changes the numbers (model config and weights, modules, what, dtype, compute dtype) gives a
new fingerprint, and the file is recomputed. The input's size and modification time are stored too: when they
are unchanged the content hash is trusted without reading the input again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .audio_io import FileStat

_HASH_BLOCK_BYTES = 1 << 20


def model_sha256(encoder: torch.nn.Module) -> str:
    """Identity of a model: sha256 over its config JSON and every weight (name, dtype, shape, float32 bytes)."""
    digest = hashlib.sha256(encoder.config.to_json().encode())
    for name, tensor in sorted(encoder.state_dict().items()):
        values = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK_BYTES):
            digest.update(block)
    return digest.hexdigest()


def output_fingerprint(settings_sha256: str, source_sha256: str) -> str:
    return hashlib.sha256(f"{settings_sha256}:{source_sha256}".encode()).hexdigest()


def seed_from_fingerprint(fingerprint: str) -> int:
    """The 64-bit seed of a file's samples: the first 16 hex digits of its fingerprint."""
    return int(fingerprint[:16], 16)


def is_up_to_date(metadata: dict[str, str] | None, settings_sha256: str, path: Path, status: FileStat) -> bool:
    """Whether an existing output (its ``metadata``) was made from the current input with the current settings.

    Unchanged size and mtime: trusted. Same size, new mtime (a copy or a touch): the input is hashed and compared.
    """
    if not metadata or metadata.get("settings_sha256") != settings_sha256:
        return False
    if metadata.get("source_size_bytes") != str(status.size_bytes):
        return False
    if metadata.get("source_mtime_ns") == str(status.mtime_ns):
        return True
    try:
        return file_sha256(path) == metadata.get("source_sha256")
    except OSError:
        return False
