"""Writing a safetensors file piece by piece, so a long file's features never have to sit in memory at once.

The layout is the standard one (read by ``safetensors.safe_open`` / ``load_file``): an 8-byte little-endian header
length, a JSON header (tensor dtypes, shapes and byte offsets, plus ``__metadata__``) padded with spaces to a
multiple of 8 bytes, then the raw little-endian tensor data. Shapes are known up front, so the header is written
first and rows are written at their offsets as they are computed.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
from pathlib import Path

import numpy as np

_DTYPE_NAMES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16"}


class SafetensorsStream:
    """An open safetensors file with a fixed set of 2-D tensors ``key -> (rows, dim)``, filled by ``write_rows``."""

    def __init__(self, path: Path, specs: dict[str, tuple[tuple[int, int], np.dtype]], metadata: dict[str, str]):
        header: dict[str, object] = {"__metadata__": metadata}
        self._offsets: dict[str, tuple[int, int, np.dtype]] = {}
        offset = 0
        for key, (shape, dtype) in specs.items():
            nbytes = int(np.prod(shape)) * dtype.itemsize
            header[key] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            self._offsets[key] = (offset, shape[1] * dtype.itemsize, dtype)
            offset += nbytes
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)
        self._data_start = 8 + len(raw)
        self._previous: tuple[int, int] | None = None  # (offset, length) of the last rows written
        self._file = open(path, "wb")  # noqa: SIM115 -- closed in close()
        self._file.write(struct.pack("<Q", len(raw)) + raw)
        self._file.truncate(self._data_start + offset)

    def write_rows(self, key: str, start_row: int, rows: np.ndarray) -> None:
        """Write ``rows (n, dim)`` into tensor ``key`` starting at row ``start_row``."""
        offset, row_bytes, dtype = self._offsets[key]
        position = self._data_start + offset + start_row * row_bytes
        data = memoryview(np.ascontiguousarray(rows, dtype=dtype)).cast("B")  # written without a bytes copy
        self._file.seek(position)
        self._file.write(data)
        self._file.flush()
        _evict(self._file.fileno(), position, len(data))  # starts writing these pages back
        if self._previous is not None:
            _evict(self._file.fileno(), *self._previous)  # drops the previous rows, on disk by now
        self._previous = (position, len(data))

    def close(self, sync: bool = True) -> None:
        """Flush (and with ``sync``, fsync) and close the file; nothing happens if it is closed already."""
        if self._file.closed:
            return
        try:
            self._file.flush()
            if sync:
                os.fsync(self._file.fileno())
                _evict(self._file.fileno(), 0, 0)
        finally:
            self._file.close()


def _evict(fd: int, offset: int, length: int) -> None:
    """Ask the OS to write back and evict bytes ``[offset, offset + length)`` of ``fd`` from its page cache
    (length 0: to the end; pages still being written back stay). Features are written once and not read back,
    so their pages are recycled for the next writes instead of growing the cache; on VMs that hand freed memory
    back to the host, never-used pages are expensive (docs/performance.md). Best effort: a no-op where
    ``posix_fadvise`` does not exist or the file system refuses it."""
    if hasattr(os, "posix_fadvise"):
        with contextlib.suppress(OSError):
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
