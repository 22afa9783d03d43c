"""How input paths map to output paths, and the guarantees that outputs stay inside OUT_DIR.

An input's *key* is its path relative to IN_DIR with ``.`` and ``..`` resolved lexically (``a/./b/../c.wav`` is
``a/c.wav``); a file outside IN_DIR (an absolute path or ``..`` in a manifest) gets the key
``__external__/<its absolute path without the leading />``. Keys never contain ``..``, so
``OUT_DIR / key + suffix`` is inside OUT_DIR. The output keeps the input's full file name and adds a suffix
(``a/c.wav`` -> ``a/c.wav.safetensors``), so ``c.wav`` and ``c.flac`` in one folder never collide. At write time
every output folder is resolved (symlinks followed) and refused if it lies outside the resolved OUT_DIR.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

EXTERNAL_DIR = "__external__"
"""Folder under OUT_DIR that mirrors inputs lying outside IN_DIR (absolute paths, ``..`` in a manifest)."""

OUTPUT_SUFFIXES = {"safetensors": ".safetensors", "npz": ".npz", "npy": ".features"}
"""Suffix added to the input's file name; ``npy`` output is a folder of ``.npy`` files."""

_TEMP_MARK = ".tmp-"
_OLD_MARK = ".old-"


class OutsideOutputDir(ValueError):
    """An output path would resolve outside OUT_DIR (for example through a symlink inside OUT_DIR)."""


def source_key(in_dir: Path, path: str | os.PathLike) -> PurePosixPath:
    """The mirrored relative path of ``path`` (relative paths are taken relative to ``in_dir``).

    Example:
        >>> source_key(Path("/data/in"), "a/../b/c.wav")
        PurePosixPath('b/c.wav')
        >>> source_key(Path("/data/in"), "/corpus/x.wav")
        PurePosixPath('__external__/corpus/x.wav')
    """
    root = Path(os.path.normpath(os.path.abspath(in_dir)))
    full = Path(os.path.normpath(root / os.fspath(path)))
    for base in (root, Path(os.path.realpath(root))):
        try:
            relative = full.relative_to(base)
        except ValueError:
            continue
        if relative.parts:
            return PurePosixPath(*relative.parts)
        raise ValueError(f"{path}: is IN_DIR itself, not a file")
    anchorless = [part for part in full.parts[1:] if part]
    drive = full.drive.rstrip(":\\/").replace(":", "") if full.drive else ""
    return PurePosixPath(EXTERNAL_DIR, *([drive] if drive else []), *anchorless)


def output_path(out_dir: Path, key: PurePosixPath, fmt: str) -> Path:
    """``out_dir / key`` with the format's suffix added to the file name."""
    if key.is_absolute() or any(part in ("", ".", "..") for part in key.parts):
        raise OutsideOutputDir(f"{key}: not a clean relative path")
    return out_dir.joinpath(*key.parts[:-1], key.name + OUTPUT_SUFFIXES[fmt])


class OutputTree:
    """Creates output folders under OUT_DIR one level at a time, refusing any level that resolves (through a
    symlink) outside the resolved OUT_DIR, so nothing is ever created outside it. Checked folders are cached."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.real = os.path.realpath(self.out_dir)
        self._checked: set[Path] = {self.out_dir}

    def contains(self, real: str) -> bool:
        return real == self.real or real.startswith(self.real.rstrip(os.sep) + os.sep)

    def ensure_folder(self, folder: Path) -> None:
        """Create ``folder`` (which must be under OUT_DIR) level by level; ``OutsideOutputDir`` if a level is
        a symlink leading outside OUT_DIR."""
        current = self.out_dir
        for part in Path(folder).relative_to(self.out_dir).parts:
            current = current / part
            if current in self._checked:
                continue
            if not current.is_dir():
                current.mkdir(exist_ok=True)
            real = os.path.realpath(current)
            if not self.contains(real):
                raise OutsideOutputDir(f"output folder {display(current)} resolves to {display(real)}, "
                                       f"outside OUT_DIR {display(self.real)}")
            self._checked.add(current)


def temp_path(final: Path, mark: str = _TEMP_MARK) -> Path:
    """A hidden sibling of ``final`` to write into before the atomic rename: ``.NAME.tmp-HOST-PID-RANDOM``. The
    owner's host and process id tell a later run whether the file is abandoned (see ``TempName.abandoned``)."""
    return final.with_name(f".{final.name}{mark}{host_tag()}-{os.getpid()}-{secrets.token_hex(4)}")


def old_path(final: Path) -> Path:
    """A hidden sibling to move a replaced output folder to (``npy`` format) before deleting it."""
    return temp_path(final, _OLD_MARK)


def host_tag() -> str:
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
        return self.host in (None, host_tag()) and self.pid == os.getpid()

    def abandoned(self) -> bool:
        """Whether the owner is gone: it ran on this host and its process no longer exists. A file of another
        host, or of a live process, is never abandoned (it may be written right now)."""
        if self.host not in (None, host_tag()):
            return False
        return not process_exists(self.pid)


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


def process_exists(pid: int) -> bool:
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


def display(path: str | os.PathLike) -> str:
    """A printable, valid-Unicode form of a path (undecodable bytes shown as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
