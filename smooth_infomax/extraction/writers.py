"""Output writers: every output is written under a hidden temporary name next to its final place and renamed
when complete, so an interrupted run never leaves a partial file under an output name.

Formats (see ``docs/cli.md``):

- ``safetensors``: one file, tensors ``module{m}.{mean|logvar|sample}`` ``(frames, dim)``, metadata in
  ``__metadata__``; written row by row (``SafetensorsStream``).
- ``npz``: one zip of ``.npy`` members (as ``np.savez``, no pickle) plus ``__metadata__``, a uint8 array holding
  the metadata as UTF-8 JSON.
- ``npy``: a folder ``NAME.features/`` of ``module{m}.{what}.npy`` files plus ``metadata.json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np

from .paths import old_path, temp_path
from .safetensors_stream import SafetensorsStream

Specs = dict[str, tuple[tuple[int, int], np.dtype]]
NPZ_METADATA_KEY = "__metadata__"
NPY_METADATA_NAME = "metadata.json"


class FeatureWriter:
    """Base class: ``write_rows`` any number of times, then ``commit`` (atomic rename) or ``abort``."""

    def __init__(self, final: Path, specs: Specs, metadata: dict[str, str]):
        self.final, self.specs, self.metadata = final, specs, metadata
        self.temp = temp_path(final)

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


class NpyWriter(_MemmapWriter):
    def commit(self) -> None:
        self._flush()
        (self.temp / NPY_METADATA_NAME).write_text(json.dumps(self.metadata, indent=1), encoding="utf-8")
        if not os.path.lexists(self.final):
            os.replace(self.temp, self.final)
            return
        aside = old_path(self.final)  # a replaced output: moved aside first (a folder cannot be renamed over)
        os.replace(self.final, aside)
        try:
            os.replace(self.temp, self.final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.replace(aside, self.final)  # put the previous output back
            raise
        remove_path(aside)


class NpzWriter(_MemmapWriter):
    def commit(self) -> None:
        self._flush()
        archive = temp_path(self.final)
        try:
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zipped:
                for key in self.specs:
                    zipped.write(self.temp / f"{key}.npy", arcname=f"{key}.npy")
                blob = np.frombuffer(json.dumps(self.metadata).encode("utf-8"), dtype=np.uint8)
                with zipped.open(f"{NPZ_METADATA_KEY}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, blob, allow_pickle=False)
            _fsync(archive)
            os.replace(archive, self.final)
        except BaseException:
            remove_path(archive)
            raise
        finally:
            remove_path(self.temp)


WRITERS = {"safetensors": SafetensorsWriter, "npz": NpzWriter, "npy": NpyWriter}


def open_writer(fmt: str, final: Path, specs: Specs, metadata: dict[str, str]) -> FeatureWriter:
    """A writer for ``fmt`` that will produce ``final`` on ``commit``."""
    return WRITERS[fmt](final, specs, metadata)


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


