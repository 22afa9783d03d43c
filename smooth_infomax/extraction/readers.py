"""Reading outputs back: features and metadata of any of the three formats."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .writers import NPY_METADATA_NAME, NPZ_METADATA_KEY


def read_metadata(path: Path) -> dict[str, str] | None:
    """The metadata of an output (``str -> str``), or ``None`` if it is missing or unreadable."""
    path = Path(path)
    try:
        if path.is_dir():
            return json.loads((path / NPY_METADATA_NAME).read_text(encoding="utf-8"))
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as zipped, zipped.open(f"{NPZ_METADATA_KEY}.npy") as member:
                return _decode_blob(np.lib.format.read_array(member, allow_pickle=False))
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            return dict(handle.metadata() or {})
    except Exception:  # noqa: BLE001 -- any unreadable, foreign or corrupt file counts as "no valid output"
        return None


def load_features(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All arrays of an output, ``key -> (frames, dim)``, and its metadata.

    Example:
        >>> arrays, meta = load_features("out/a/b.wav.safetensors")
        >>> arrays["module2.mean"].shape, meta["model"]
    """
    path = Path(path)
    if path.is_dir():
        arrays = {p.name[: -len(".npy")]: np.load(p, allow_pickle=False) for p in sorted(path.glob("*.npy"))}
        return arrays, json.loads((path / NPY_METADATA_NAME).read_text(encoding="utf-8"))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        return arrays, _decode_blob(arrays.pop(NPZ_METADATA_KEY))
    from safetensors.numpy import load_file

    arrays = load_file(str(path))
    return arrays, read_metadata(path) or {}


def _decode_blob(blob: np.ndarray) -> dict[str, str]:
    return json.loads(blob.tobytes().decode("utf-8"))
