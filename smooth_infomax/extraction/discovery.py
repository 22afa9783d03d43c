"""Finding the audio to process: a recursive walk of IN_DIR (symlink loops are detected and skipped) or a manifest
file listing paths."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .paths import source_key

AUDIO_EXTENSIONS = frozenset({
    "wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "aifc", "au", "snd", "caf", "w64", "rf64",
    "sph", "nist", "voc", "htk", "paf", "svx", "sf", "ircam", "mat", "pvf", "xi", "sds", "avr", "sd2", "wve",
})
"""File extensions (case-insensitive) taken as audio when no ``--glob`` is given: every container soundfile reads."""


@dataclass(frozen=True)
class Source:
    """One input: ``path`` is where the audio is read from, ``key`` its mirrored path (see ``paths.py``)."""

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


def walk_audio(in_dir: Path, pattern: str | None = None, skip: Iterable[Path] = ()) -> tuple[list[Source], list[str]]:
    """Every audio file under ``in_dir``, sorted by key, and warnings about folders that were skipped.

    Symlinks are followed; a folder reached a second time (a symlink loop or a second link to the same folder) is
    skipped with a warning, so the walk always ends. Names starting with ``.`` are ignored. Folders in ``skip``
    (OUT_DIR when it lies inside IN_DIR) are not entered.
    """
    skipped = {_identity(p) for p in skip if p.exists()}
    seen: set[tuple[int, int]] = set()
    sources, warnings = [], []
    stack = [(Path(in_dir), PurePosixPath())]
    while stack:
        folder, key = stack.pop()
        try:
            identity = _identity(folder)
        except OSError as err:
            warnings.append(f"{folder}: cannot open folder ({err.strerror or err})")
            continue
        if identity in seen or identity in skipped:
            if identity in seen:
                warnings.append(f"{folder}: already visited (symlink loop or duplicate link); skipped")
            continue
        seen.add(identity)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError as err:
            warnings.append(f"{folder}: cannot list folder ({err.strerror or err})")
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            child = key / entry.name
            if _is_dir(entry):
                stack.append((Path(entry.path), child))
            elif matches(child, pattern):
                sources.append(Source(child, Path(entry.path)))
    return sorted(sources, key=lambda s: str(s.key)), warnings


def read_manifest(manifest: Path, in_dir: Path) -> list[Source]:
    """Sources listed in ``manifest``: one path per line (a TSV line's first column), or JSON lines with a
    ``path`` or ``audio_filepath`` field. Blank lines and lines starting with ``#`` are ignored; relative paths
    are relative to ``in_dir``."""
    sources = []
    with open(manifest, encoding="utf-8", errors="surrogateescape") as lines:
        for number, line in enumerate(lines, 1):
            raw = _manifest_path(line.rstrip("\r\n"), manifest, number)
            if raw:
                path = Path(raw) if os.path.isabs(raw) else Path(in_dir) / raw
                sources.append(Source(source_key(in_dir, raw), path))
    return sources


def _manifest_path(line: str, manifest: Path, number: int) -> str | None:
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    if line.lstrip().startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{manifest}:{number}: invalid JSON ({err.msg})") from None
        raw = record.get("path") or record.get("audio_filepath") if isinstance(record, dict) else None
        if not isinstance(raw, str) or not raw:
            raise ValueError(f"{manifest}:{number}: a JSON line needs a 'path' or 'audio_filepath' string")
        return raw
    return line.split("\t")[0]


def _identity(folder: Path) -> tuple[int, int]:
    status = os.stat(folder)
    return status.st_dev, status.st_ino


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir(follow_symlinks=True)
    except OSError:
        return False
