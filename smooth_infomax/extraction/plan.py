"""Planning a run: which inputs exist, where their outputs go, which shard owns them, which are already up to
date, and how long the rest are (from the file headers, without decoding)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from .audio_io import AudioInfo, BadAudio, FileStat, probe, stat_input
from .discovery import Source, Walk, matches, read_manifest, walk_audio
from .fingerprint import is_up_to_date
from .paths import OUTPUT_SUFFIXES, OutsideOutputDir, display, output_path
from .readers import read_metadata
from .settings import RunOptions, Shard


@dataclass(frozen=True)
class Failure:
    """A file that could not be processed: its mirrored ``key``, ``path`` and a human-readable ``reason``."""

    key: str
    path: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"source": self.key, "path": self.path, "reason": self.reason}


@dataclass(frozen=True)
class WorkItem:
    """An input to compute: where it is read from and written to, its stat and its header information."""

    source: Source
    output: Path
    status: FileStat
    info: AudioInfo


@dataclass
class Plan:
    """What a run will do. ``found`` counts every input (all shards); the lists hold this shard's inputs."""

    found: int = 0
    todo: list[WorkItem] = field(default_factory=list)
    up_to_date: list[tuple[Source, Path, dict[str, str]]] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    other_settings: list[tuple[Path, dict[str, str]]] = field(default_factory=list)
    """Existing outputs made with other settings (path, metadata): to replace with ``--force``, else refused."""

    @property
    def in_shard(self) -> int:
        return len(self.todo) + len(self.up_to_date) + len(self.failures)


def shard_of(source: Source, count: int) -> int:
    """The shard (0-based, of ``count``) that owns ``source``: a stable hash of its key, so a file keeps its shard
    when others are added or removed. The rule, as docs/cli.md states it: the first 64 bits (16 hex digits) of the
    sha256 of the key's bytes (UTF-8; bytes of a name that is not UTF-8 as they are), modulo ``count``."""
    digest = hashlib.sha256(str(source.key).encode("utf-8", "surrogateescape")).hexdigest()
    return int(digest[:16], 16) % count


def collect_sources(options: RunOptions) -> Walk:
    """The inputs, from the manifest if one is given, else from a walk of IN_DIR (OUT_DIR excluded); ``--glob``
    filters both. ``InputListError`` if the list cannot be made."""
    if options.manifest is not None:
        listed = read_manifest(options.manifest, options.in_dir)
        return Walk([s for s in listed if options.pattern is None or matches(s.key, options.pattern)], [], [])
    return walk_audio(options.in_dir, options.pattern, skip=[options.out_dir])


def make_plan(options: RunOptions, settings_sha256: str, shard: Shard, too_short) -> Plan:
    """Plan this shard's work. ``too_short(samples_16k)`` returns a reason for inputs too short for one frame.

    A folder that cannot be listed is a failure of every shard: the files it holds could belong to any of them.
    """
    plan = Plan()
    walk = collect_sources(options)
    plan.warnings = walk.warnings
    unique, collisions = _dedupe(walk.sources, options)
    plan.found = len(unique) + len(collisions) + len(walk.unlistable)
    plan.failures += [Failure(display(f.key) + "/", display(f.path), f.reason) for f in walk.unlistable]
    for source, reason in collisions:
        if shard_of(source, shard.count) == shard.index:
            plan.failures.append(failure_for(source, reason))
    for source, output in unique:
        if shard_of(source, shard.count) == shard.index:
            _plan_one(plan, source, output, options, settings_sha256, too_short)
    return plan


def _plan_one(plan: Plan, source: Source, output: Path, options: RunOptions, settings_sha256: str, too_short) -> None:
    try:
        status = stat_input(source.path)
        _check_output_kind(output, options.fmt)
        metadata = read_metadata(output) if os.path.lexists(output) else None
        if _made_with_other_settings(metadata, settings_sha256):
            plan.other_settings.append((output, metadata))
        elif options.skip_existing and is_up_to_date(metadata, settings_sha256, source.path, status):
            plan.up_to_date.append((source, output, metadata))
            return
        info = probe(source.path)
        reason = too_short(info.samples_16k)
        if reason:
            raise BadAudio(reason)
    except BadAudio as bad:
        plan.failures.append(failure_for(source, bad.reason))
        return
    plan.todo.append(WorkItem(source, output, status, info))


def _made_with_other_settings(metadata: dict[str, str] | None, settings_sha256: str) -> bool:
    """Whether ``metadata`` is that of a ``sim-extract`` output made with settings other than this run's."""
    made = (metadata or {}).get("settings_sha256")
    return made is not None and made != settings_sha256


def _check_output_kind(output: Path, fmt: str) -> None:
    """``BadAudio`` if something of the wrong kind sits at the output path (a folder where a file goes, or for
    ``npy`` a file where a folder goes); a rename could not replace it, and a file should not be."""
    if os.path.islink(output) or not os.path.lexists(output):
        return
    wants_folder = OUTPUT_SUFFIXES[fmt] == OUTPUT_SUFFIXES["npy"]
    if output.is_dir() and not wants_folder:
        raise BadAudio(f"output path {display(output)} is a folder; move it away or choose another OUT_DIR")
    if wants_folder and not output.is_dir():
        raise BadAudio(f"output path {display(output)} is not a folder (npy outputs are folders); move it away "
                       "or choose another OUT_DIR")


def _dedupe(sources: list[Source], options: RunOptions) -> tuple[list[tuple[Source, Path]], list[tuple[Source, str]]]:
    """Drop repeated inputs; an input whose output path is taken by a different input is a collision."""
    taken: dict[Path, Source] = {}
    unique, collisions = [], []
    for source in sources:
        try:
            output = output_path(options.out_dir, source.key, options.fmt)
        except OutsideOutputDir as err:
            collisions.append((source, str(err)))
            continue
        first = taken.setdefault(output, source)
        if first is source:
            unique.append((source, output))
        elif _same_file(first.path) != _same_file(source.path):
            collisions.append((source, f"output path {display(output)} is already used by {display(first.path)}"))
    return unique, collisions


def _same_file(path: Path) -> str:
    return os.path.normpath(os.path.abspath(path))


def failure_for(source: Source, reason: str) -> Failure:
    return Failure(display(source.key), display(source.path), reason)
