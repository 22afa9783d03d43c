"""Planning a run: which inputs exist, where their outputs go, which shard owns them, which are already up to
date (by fingerprint), how long the rest are (from the file headers, without decoding), and the batches they are
computed in.

Fingerprints decide ``--skip-existing``. An output's fingerprint is ``sha256(settings_sha256 + ":" +
source_sha256)``: a change of the input's content or of any setting that changes the numbers (model config and
weights, modules, what, dtype, compute dtype) gives a new fingerprint, and the file is recomputed. The input's size
and modification time are stored too: when they are unchanged the content hash is trusted without reading the
input again. The fingerprint also seeds the file's stored samples (``store.draw_sample``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from .audio_io import AudioInfo, BadAudio, FileStat, probe, stat_input
from .formats import read_metadata
from .settings import RunContext, RunOptions, SetupError, Shard
from .sources import (
    OUTPUT_SUFFIXES,
    InputListError,
    OutsideOutputDir,
    Source,
    collect_sources,
    display,
    output_path,
)

if TYPE_CHECKING:
    from ..encoder import SmoothInfoMaxEncoder

_Stage = Literal["input", "decode", "compute", "write"]
"""Where a file failed: its input (listing, stat, header, output path), decoding, the model, or writing."""

_TooShort = Callable[[int], "str | None"]
"""Why an input of this many samples (16 kHz) is too short for the requested modules, or ``None``."""

_HASH_BLOCK_BYTES = 1 << 20


@dataclass(frozen=True)
class Failure:
    """A file that could not be processed: its mirrored ``key``, ``path``, a human-readable ``reason`` and the
    ``stage`` that failed. Each stage returns one of these instead of raising, and the runner records it."""

    key: str
    path: str
    reason: str
    stage: _Stage = "input"

    def as_dict(self) -> dict[str, str]:
        """The line of ``failures.jsonl``."""
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


def make_plan(options: RunOptions, settings_sha256: str, shard: Shard, too_short: _TooShort) -> Plan:
    """Plan this shard's work. ``too_short(samples_16k)`` returns a reason for inputs too short for one frame.

    A folder that cannot be listed is a failure of every shard: the files it holds could belong to any of them.
    ``SetupError`` if the list of inputs cannot be made (IN_DIR cannot be listed, a bad ``--manifest`` line).
    """
    plan = Plan()
    try:
        walk = collect_sources(options)
    except InputListError as err:
        raise SetupError(str(err)) from None
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


def _plan_one(plan: Plan, source: Source, output: Path, options: RunOptions, settings_sha256: str,
              too_short: _TooShort) -> None:
    try:
        status = stat_input(source.path)
        _check_output_kind(output, options.fmt)
        metadata = read_metadata(output) if os.path.lexists(output) else None
        if metadata is not None and _made_with_other_settings(metadata, settings_sha256):
            plan.other_settings.append((output, metadata))
        elif (metadata is not None and options.skip_existing
              and _is_up_to_date(metadata, settings_sha256, source.path, status)):
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


def failure_for(source: Source, reason: str, stage: _Stage = "input") -> Failure:
    """The ``Failure`` of ``source`` at ``stage``."""
    return Failure(display(source.key), display(source.path), reason, stage)

def other_settings_warnings(plan: Plan, context: RunContext, skip_existing: bool) -> list[str]:
    """``SetupError`` naming the differing settings if OUT_DIR holds outputs made with other settings, unless
    ``--force`` was given (``skip_existing`` false); then a warning that they will be replaced."""
    if not plan.other_settings:
        return []
    differences: list[str] = []
    for _, metadata in plan.other_settings:
        differences += [d for d in context.settings.differences(metadata, context.model_name) if d not in differences]
    count, first = len(plan.other_settings), display(plan.other_settings[0][0])
    what = f"{count} output{'s' if count > 1 else ''} made with other settings (first: {first}): " + "; ".join(
        differences[:6]) + ("; ..." if len(differences) > 6 else "")
    if skip_existing:
        raise SetupError(f"OUT_DIR holds {what}. Pass --force to replace them, or choose another OUT_DIR")
    return [f"--force: replacing {what}"]


def length_batches(items: list[WorkItem], batch_samples: int, chunk_samples: int) -> list[list[int]]:
    """Indices of ``items`` grouped into batches.

    Files up to ``chunk_samples`` long are sorted by length and packed so that a batch's padded size
    (``count * longest``) stays within ``batch_samples`` (a batch always holds at least one file). Longer files
    get a batch of their own and are processed in chunks.
    """
    lengths = [item.info.samples_16k for item in items]
    short = sorted((i for i, n in enumerate(lengths) if n <= chunk_samples), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in short:
        if current and (len(current) + 1) * lengths[index] > batch_samples:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches + [[i] for i, n in enumerate(lengths) if n > chunk_samples]


# ---- fingerprints -------------------------------------------------------------------------------------------------

def model_sha256(encoder: SmoothInfoMaxEncoder) -> str:
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


def _is_up_to_date(metadata: dict[str, str] | None, settings_sha256: str, path: Path, status: FileStat) -> bool:
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
