"""Finding the inputs and naming their outputs: a recursive walk of IN_DIR (symlink loops are detected and
skipped) or a manifest file listing paths, and each input's *key*, its mirrored path under OUT_DIR.

An input's key is its path relative to IN_DIR with ``.`` and ``..`` resolved lexically (``a/./b/../c.wav`` is
``a/c.wav``); a file outside IN_DIR (an absolute path or ``..`` in a manifest) gets the key
``__external__/<its absolute path without the leading />``. Keys never contain ``..``, so
``OUT_DIR / key + suffix`` is inside OUT_DIR. The output keeps the input's full file name and adds a suffix
(``a/c.wav`` -> ``a/c.wav.safetensors``), so ``c.wav`` and ``c.flac`` in one folder never collide. At write time
every output folder is resolved (symlinks followed) and refused if it lies outside the resolved OUT_DIR
(``store.OutputTree``).
"""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from .settings import RunOptions

EXTERNAL_DIR = "__external__"
"""Folder under OUT_DIR that mirrors inputs lying outside IN_DIR (absolute paths, ``..`` in a manifest)."""

OUTPUT_SUFFIXES = {"safetensors": ".safetensors", "npz": ".npz", "npy": ".features"}
"""Suffix added to the input's file name; ``npy`` output is a folder of ``.npy`` files."""


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


AUDIO_EXTENSIONS = frozenset({
    "wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "aifc", "au", "snd", "caf", "w64", "rf64",
    "sph", "nist", "voc", "htk", "paf", "svx", "sf", "ircam", "mat", "pvf", "xi", "sds", "avr", "sd2", "wve",
})
"""File extensions (case-insensitive) taken as audio when no ``--glob`` is given: every container soundfile reads."""


@dataclass(frozen=True)
class Source:
    """One input: ``path`` is where the audio is read from, ``key`` its mirrored path (see above)."""

    key: PurePosixPath
    path: Path


def matches(key: PurePosixPath, pattern: str | None) -> bool:
    """Whether ``key`` is selected: by ``pattern`` (shell style, ``*`` also crosses ``/``; a pattern without ``/``
    is matched against the file name) or, without one, by an audio extension."""
    if pattern is None:
        return key.suffix[1:].lower() in AUDIO_EXTENSIONS
    if "/" not in pattern:
        return fnmatch.fnmatchcase(key.name, pattern)
    text = str(key)
    return fnmatch.fnmatchcase(text, pattern) or (
        pattern.startswith("**/") and fnmatch.fnmatchcase(text, pattern[3:])
    )


class InputListError(ValueError):
    """The list of inputs cannot be made: a bad ``--manifest`` line (named by file and line) or an IN_DIR that
    cannot be listed. The run does not start."""


@dataclass(frozen=True)
class _UnlistableFolder:
    """A folder under IN_DIR whose files cannot be known: its mirrored ``key``, ``path`` and the ``reason``."""

    key: PurePosixPath
    path: Path
    reason: str


class Walk(NamedTuple):
    """What a walk of IN_DIR found: the audio ``sources`` (sorted by key), ``warnings`` about folders skipped on
    purpose (seen twice), and the ``unlistable`` folders, whose files are missing from ``sources``."""

    sources: list[Source]
    warnings: list[str]
    unlistable: list[_UnlistableFolder]


def walk_audio(in_dir: Path, pattern: str | None = None, skip: Iterable[Path] = ()) -> Walk:
    """Every audio file under ``in_dir``, and the folders that were skipped or could not be listed.

    Symlinks are followed; a folder reached a second time (a symlink loop or a second link to the same folder) is
    skipped with a warning, so the walk always ends. Names starting with ``.`` are ignored. Folders in ``skip``
    (OUT_DIR when it lies inside IN_DIR) are not entered. ``InputListError`` if ``in_dir`` itself cannot be listed.
    """
    skipped = {_identity(p) for p in skip if p.exists()}
    seen: set[tuple[int, int]] = set()
    walk = Walk([], [], [])
    stack = [(Path(in_dir), PurePosixPath())]
    while stack:
        folder, key = stack.pop()
        try:
            identity = _identity(folder)
        except OSError as err:
            walk.unlistable.append(_UnlistableFolder(key, folder, f"cannot open folder ({err.strerror or err})"))
            continue
        if identity in seen or identity in skipped:
            if identity in seen:
                walk.warnings.append(f"{display(folder)}: already visited (symlink loop or duplicate link); skipped")
            continue
        seen.add(identity)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError as err:
            walk.unlistable.append(_UnlistableFolder(key, folder, f"cannot list folder ({err.strerror or err})"))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child = key / entry.name
            if _is_dir(entry):
                stack.append((Path(entry.path), child))
            elif matches(child, pattern):
                walk.sources.append(Source(child, Path(entry.path)))
    _refuse_unlistable_root(walk, in_dir)
    walk.sources.sort(key=lambda s: str(s.key))
    return walk


def _refuse_unlistable_root(walk: Walk, in_dir: Path) -> None:
    for folder in walk.unlistable:
        if not folder.key.parts:
            raise InputListError(f"IN_DIR {display(in_dir)}: {folder.reason}")


def _read_manifest(manifest: Path, in_dir: Path) -> list[Source]:
    """Sources listed in ``manifest``: one path per line (a TSV line's first column), or JSON lines with a
    ``path`` or ``audio_filepath`` field. Blank lines and lines starting with ``#`` are ignored; relative paths
    are relative to ``in_dir``; a UTF-8 byte order mark is ignored. ``InputListError`` naming the file and line
    for a line that names no usable path (invalid JSON, no path field, a NUL byte, IN_DIR itself)."""
    sources = []
    try:
        with open(manifest, encoding="utf-8-sig", errors="surrogateescape") as lines:
            for number, line in enumerate(lines, 1):
                source = _manifest_source(line.rstrip("\r\n"), in_dir, f"--manifest {display(manifest)}, line {number}")
                if source is not None:
                    sources.append(source)
    except OSError as err:
        raise InputListError(f"cannot read --manifest {display(manifest)} ({err.strerror or err})") from None
    return sources


def _manifest_source(line: str, in_dir: Path, where: str) -> Source | None:
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    raw = _json_path(line, where) if line.lstrip().startswith("{") else line.split("\t")[0]
    if not raw:
        raise InputListError(f"{where}: empty path")
    if "\0" in raw:
        raise InputListError(f"{where}: the path contains a NUL byte")
    try:
        key = source_key(in_dir, raw)
    except ValueError as err:  # the line names IN_DIR itself
        raise InputListError(f"{where}: {display(raw)!r} is IN_DIR itself, not a file") from err
    return Source(key, Path(raw) if os.path.isabs(raw) else Path(in_dir) / raw)


def _json_path(line: str, where: str) -> str:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise InputListError(f"{where}: invalid JSON ({err.msg})") from None
    raw = (record.get("path") or record.get("audio_filepath")) if isinstance(record, dict) else None
    if not isinstance(raw, str) or not raw:
        raise InputListError(f"{where}: a JSON line needs a 'path' or 'audio_filepath' string")
    return raw


def _identity(folder: Path) -> tuple[int, int]:
    status = os.stat(folder)
    return status.st_dev, status.st_ino


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False


def collect_sources(options: RunOptions) -> Walk:
    """The inputs, from the manifest if one is given, else from a walk of IN_DIR (OUT_DIR excluded); ``--glob``
    filters both. ``InputListError`` if the list cannot be made."""
    if options.manifest is not None:
        listed = _read_manifest(options.manifest, options.in_dir)
        return Walk([s for s in listed if options.pattern is None or matches(s.key, options.pattern)], [], [])
    return walk_audio(options.in_dir, options.pattern, skip=[options.out_dir])


def display(path: str | os.PathLike) -> str:
    """A printable, valid-Unicode form of a path (undecodable bytes shown as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
