"""Output formats: writing (atomically, row by row) and reading back the three layouts (see ``docs/cli.md``).

- ``safetensors``: one file, tensors ``module{m}.{mean|logvar|sample}`` ``(frames, dim)``, metadata in
  ``__metadata__``; written row by row (``SafetensorsStream``), so a long file's features never sit in memory.
- ``npz``: one zip of ``.npy`` members (as ``np.savez``, no pickle) plus ``__metadata__``, a uint8 array holding
  the metadata as UTF-8 JSON.
- ``npy``: a folder ``NAME.features/`` of ``module{m}.{what}.npy`` files plus ``metadata.json``.

Every output is written under a hidden temporary name next to its final place (``.NAME.tmp-HOST-PID-RANDOM``) and
renamed when complete, so an interrupted run never leaves a partial file under an output name; the owner's host
and process id in the name tell a later run whether the file is abandoned (``TempName.abandoned``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .settings import Specs

_NPZ_METADATA_KEY = "__metadata__"
_NPY_METADATA_NAME = "metadata.json"
_TEMP_MARK = ".tmp-"
_OLD_MARK = ".old-"
_DTYPE_NAMES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16"}


# ---- temporary names ----------------------------------------------------------------------------------------------

def _temp_path(final: Path, mark: str = _TEMP_MARK) -> Path:
    """A hidden sibling of ``final`` to write into before the atomic rename: ``.NAME.tmp-HOST-PID-RANDOM``. The
    owner's host and process id tell a later run whether the file is abandoned (see ``TempName.abandoned``)."""
    return final.with_name(f".{final.name}{mark}{_host_tag()}-{os.getpid()}-{secrets.token_hex(4)}")


def _old_path(final: Path) -> Path:
    """A hidden sibling to move a replaced output folder to (``npy`` format) before deleting it."""
    return _temp_path(final, _OLD_MARK)


def _host_tag() -> str:
    """This machine's name as it appears in temporary names (characters other than ``A-Za-z0-9._-`` as ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname()) or "localhost"


@dataclass(frozen=True)
class TempName:
    """A parsed temporary name: the output ``target`` it belongs to, and its owner (``host`` is ``None`` for the
    ``.NAME.tmp-PID-RANDOM`` names of earlier versions, which were always local)."""

    target: str
    host: str | None
    pid: int

    def is_mine(self) -> bool:
        return self.host in (None, _host_tag()) and self.pid == os.getpid()

    def abandoned(self) -> bool:
        """Whether the owner is gone: it ran on this host and its process no longer exists. A file of another
        host, or of a live process, is never abandoned (it may be written right now)."""
        if self.host not in (None, _host_tag()):
            return False
        return not _process_exists(self.pid)


def parse_temp_name(name: str) -> TempName | None:
    """The ``TempName`` of a temporary file or folder name, or ``None`` if ``name`` is not one."""
    if not name.startswith("."):
        return None
    for mark in (_TEMP_MARK, _OLD_MARK):
        head, found, owner = name[1:].rpartition(mark)
        if not (found and head):
            continue
        parts = owner.rsplit("-", 2)
        host = parts[0] if len(parts) == 3 else None
        if len(parts) >= 2 and parts[-2].isdigit() and host != "":
            return TempName(head, host, int(parts[-2]))
    return None


def _process_exists(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (also when it belongs to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, OSError):
        return False
    return True


# ---- safetensors, written row by row ------------------------------------------------------------------------------
# The layout is the standard one (read by ``safetensors.safe_open`` / ``load_file``): an 8-byte little-endian header
# length, a JSON header (tensor dtypes, shapes and byte offsets, plus ``__metadata__``) padded with spaces to a
# multiple of 8 bytes, then the raw little-endian tensor data. Shapes are known up front, so the header is written
# first and rows are written at their offsets as they are computed.

class SafetensorsStream:
    """An open safetensors file with a fixed set of 2-D tensors ``key -> (rows, dim)``, filled by ``write_rows``."""

    def __init__(self, path: Path, specs: Specs, metadata: dict[str, str]):
        header: dict[str, object] = {"__metadata__": metadata}
        self._offsets: dict[str, tuple[int, int, np.dtype]] = {}
        offset = 0
        for key, (shape, dtype) in specs.items():
            nbytes = int(np.prod(shape)) * dtype.itemsize
            header[key] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape),
                           "data_offsets": [offset, offset + nbytes]}
            self._offsets[key] = (offset, shape[1] * dtype.itemsize, dtype)
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        self._data_start = 8 + len(raw)
        self._file = open(path, "wb")  # noqa: SIM115 -- closed in close()
        self._file.write(struct.pack("<Q", len(raw)) + raw)
        self._file.truncate(self._data_start + offset)

    def write_rows(self, key: str, start_row: int, rows: np.ndarray) -> None:
        """Write ``rows (n, dim)`` into tensor ``key`` starting at row ``start_row``."""
        offset, row_bytes, dtype = self._offsets[key]
        position = self._data_start + offset + start_row * row_bytes
        data = np.ascontiguousarray(rows, dtype=dtype).data.cast("B")  # written without a bytes copy
        self._file.seek(position)
        self._file.write(data)

    def close(self, sync: bool = True) -> None:
        """Flush (and with ``sync``, fsync) and close the file; nothing happens if it is closed already."""
        if self._file.closed:
            return
        try:
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
        finally:
            self._file.close()


# ---- writers ------------------------------------------------------------------------------------------------------

class FeatureWriter:
    """Base class: ``write_rows`` any number of times, then ``commit`` (atomic rename) or ``abort``."""

    def __init__(self, final: Path, specs: Specs, metadata: dict[str, str]):
        self.final, self.specs, self.metadata = final, specs, metadata
        self.temp = _temp_path(final)

    def write_rows(self, key: str, start_row: int, rows: np.ndarray) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        """Delete what was written. Safe to call at any point and more than once (also after a failed
        ``commit``), and never raises, so the error that led here is the one reported."""
        remove_path(self.temp)


class SafetensorsWriter(FeatureWriter):
    def __init__(self, final: Path, specs: Specs, metadata: dict[str, str]):
        super().__init__(final, specs, metadata)
        try:
            self._stream = SafetensorsStream(self.temp, specs, metadata)
        except BaseException:  # e.g. a full disk while writing the header
            remove_path(self.temp)
            raise

    def write_rows(self, key: str, start_row: int, rows: np.ndarray) -> None:
        self._stream.write_rows(key, start_row, rows)

    def commit(self) -> None:
        self._stream.close(sync=True)
        os.replace(self.temp, self.final)

    def abort(self) -> None:
        with contextlib.suppress(OSError, ValueError):  # e.g. a flush failing on a full disk: closed anyway
            self._stream.close(sync=False)
        super().abort()


class _MemmapWriter(FeatureWriter):
    """Rows go into ``.npy`` memory maps inside a temporary folder (so memory stays bounded)."""

    def __init__(self, final: Path, specs: Specs, metadata: dict[str, str]):
        super().__init__(final, specs, metadata)
        self._arrays = {}
        self.temp.mkdir()
        try:
            for key, (shape, dtype) in specs.items():
                self._arrays[key] = np.lib.format.open_memmap(self.temp / f"{key}.npy", "w+", dtype, shape)
        except BaseException:
            self.abort()
            raise

    def write_rows(self, key: str, start_row: int, rows: np.ndarray) -> None:
        self._arrays[key][start_row: start_row + rows.shape[0]] = rows

    def _flush(self) -> None:
        for array in self._arrays.values():
            array.flush()
        self._arrays = {}

    def abort(self) -> None:
        self._arrays = {}  # unmaps the files
        super().abort()


class _NpyWriter(_MemmapWriter):
    def commit(self) -> None:
        self._flush()
        (self.temp / _NPY_METADATA_NAME).write_text(json.dumps(self.metadata, indent=1), encoding="utf-8")
        if not os.path.lexists(self.final):
            os.replace(self.temp, self.final)
            return
        aside = _old_path(self.final)  # a replaced output: moved aside first (a folder cannot be renamed over)
        os.replace(self.final, aside)
        try:
            os.replace(self.temp, self.final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.replace(aside, self.final)  # put the previous output back
            raise
        remove_path(aside)


class _NpzWriter(_MemmapWriter):
    def commit(self) -> None:
        self._flush()
        archive = _temp_path(self.final)
        try:
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zipped:
                for key in self.specs:
                    zipped.write(self.temp / f"{key}.npy", arcname=f"{key}.npy")
                blob = np.frombuffer(json.dumps(self.metadata).encode("utf-8"), dtype=np.uint8)
                with zipped.open(f"{_NPZ_METADATA_KEY}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, blob, allow_pickle=False)
            _fsync(archive)
            os.replace(archive, self.final)
        except BaseException:
            remove_path(archive)
            raise
        finally:
            remove_path(self.temp)


_WRITERS = {"safetensors": SafetensorsWriter, "npz": _NpzWriter, "npy": _NpyWriter}


def open_writer(fmt: str, final: Path, specs: Specs, metadata: dict[str, str]) -> FeatureWriter:
    """A writer for ``fmt`` that will produce ``final`` on ``commit``."""
    return _WRITERS[fmt](final, specs, metadata)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def remove_path(path: Path) -> None:
    """Delete a file or folder if it exists (no error if it does not, or if it cannot be deleted)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


# ---- readers ------------------------------------------------------------------------------------------------------

def read_metadata(path: Path) -> dict[str, str] | None:
    """The metadata of an output (``str -> str``), or ``None`` if it is missing or unreadable."""
    path = Path(path)
    try:
        if path.is_dir():
            return json.loads((path / _NPY_METADATA_NAME).read_text(encoding="utf-8"))
        if path.suffix == ".npz":
            with zipfile.ZipFile(path) as zipped, zipped.open(f"{_NPZ_METADATA_KEY}.npy") as member:
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
        return arrays, json.loads((path / _NPY_METADATA_NAME).read_text(encoding="utf-8"))
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        return arrays, _decode_blob(arrays.pop(_NPZ_METADATA_KEY))
    from safetensors.numpy import load_file

    arrays = load_file(str(path))
    return arrays, read_metadata(path) or {}


def _decode_blob(blob: np.ndarray) -> dict[str, str]:
    return json.loads(blob.tobytes().decode("utf-8"))
