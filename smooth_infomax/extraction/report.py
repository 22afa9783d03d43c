"""What a run tells: the progress bar (on a terminal) or progress log lines (off one), the run summary, the dry-run
report and disk estimate, and the logs in OUT_DIR: ``manifest.jsonl`` (one line per output written, appended across
runs) and ``failures.jsonl`` (the files that failed in the latest run). Sharded runs add ``-shard{I}of{N}`` to both
log names so that concurrent shards never write to the same log."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tqdm import tqdm

from ..logs import format_eta, stderr_is_terminal
from .plan import Failure, Plan
from .settings import DEFAULT_PROGRESS_SECONDS, RunContext, Shard
from .sources import display
from .store import output_size_bytes

_METADATA_BYTES = 4096  # header and metadata per output, roughly

logger = logging.getLogger(__name__)


EXIT_INTERRUPTED = 130
"""Exit code after Ctrl-C (``SIGINT``): 128 + 2, as shells report a process ended by ``SIGINT``."""


@dataclass
class RunSummary:
    """What a run did. ``exit_code`` is 0 when every input of this shard is complete, 1 if any failed, and 130
    if the run was interrupted (Ctrl-C) before it finished."""

    found: int = 0
    in_shard: int = 0
    written: int = 0
    up_to_date: int = 0
    failures: list[Failure] = field(default_factory=list)
    audio_s: float = 0.0
    elapsed_s: float = 0.0
    estimate_bytes: int = 0
    dry_run: bool = False
    manifest: Path | None = None
    replaced: int = 0
    """Outputs made with other settings that this run replaced (``--force``)."""
    interrupted: bool = False

    @property
    def not_processed(self) -> int:
        """Inputs of this shard neither written, up to date nor failed (left over by an interruption)."""
        return self.in_shard - self.written - self.up_to_date - len(self.failures)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return 1 if self.failures else 0


class Progress:
    """Progress of a run's files. On a terminal, a tqdm bar counting files, with audio hours done and throughput in
    audio-seconds per second. Off a terminal, an INFO log line (:func:`progress_line`) after the first file, then
    after a file once at least ``interval_s`` passed since the last line, and after the last file. ``quiet``: no
    bar and no lines. ``clock`` and ``terminal`` are for tests (default: ``time.monotonic``, whether stderr is a
    terminal)."""

    def __init__(self, files: int, audio_s: float, quiet: bool, interval_s: float = DEFAULT_PROGRESS_SECONDS,
                 terminal: bool | None = None, clock: Callable[[], float] = time.monotonic):
        terminal = stderr_is_terminal() if terminal is None else terminal
        self._bar = tqdm(total=files, unit="file", desc="sim-extract", disable=quiet or not terminal,
                         dynamic_ncols=True, leave=False)
        self._log_lines = not quiet and not terminal
        self._counts = ProgressCounts(files=files, total_audio_s=audio_s)
        self._interval_s, self._clock = interval_s, clock
        self._start_s = self._last_line_s = clock()

    def advance(self, audio_s: float = 0.0, planned_audio_s: float | None = None, failed: bool = False) -> None:
        """One file finished: ``audio_s`` of audio computed (0 for a failure), ``planned_audio_s`` the length its
        header announced (defaults to ``audio_s``)."""
        counts = self._counts
        counts.done_files += 1
        counts.failed_files += failed
        counts.done_audio_s += audio_s
        counts.finished_planned_s += audio_s if planned_audio_s is None else planned_audio_s
        now_s = self._clock()
        elapsed_s = now_s - self._start_s
        rate = counts.done_audio_s / max(elapsed_s, 1e-9)
        self._bar.set_postfix_str(f"{counts.done_audio_s / 3600:.2f}/{counts.total_audio_s / 3600:.2f} h audio, "
                                  f"{rate:.0f} audio-s/s", refresh=False)
        self._bar.update(1)
        if self._log_lines and self._line_due(now_s):
            logger.info("%s", progress_line(counts, elapsed_s))
            self._last_line_s = now_s

    def _line_due(self, now_s: float) -> bool:
        done, files = self._counts.done_files, self._counts.files
        return done in (1, files) or now_s - self._last_line_s >= self._interval_s

    def close(self) -> None:
        self._bar.close()


@dataclass
class ProgressCounts:
    """What a progress line reports: files of this run (done includes failed), audio computed and the audio
    the finished files' headers announced (for the time left)."""

    files: int
    total_audio_s: float
    done_files: int = 0
    failed_files: int = 0
    done_audio_s: float = 0.0
    finished_planned_s: float = 0.0


def progress_line(counts: ProgressCounts, elapsed_s: float) -> str:
    """``progress: 12/50 files, 0.004/0.014 h audio, 45 audio-s/s, ETA 0:00:07`` (``, 1 failed`` when any did).
    The time left assumes the rest runs at the audio rate so far (by files while no audio is done yet)."""
    rate = counts.done_audio_s / elapsed_s if elapsed_s > 0 else 0.0
    failed = f", {counts.failed_files} failed" if counts.failed_files else ""
    audio_h = f"{counts.done_audio_s / 3600:.3f}/{counts.total_audio_s / 3600:.3f} h audio"
    eta = format_eta(eta_s(counts, elapsed_s))
    return f"progress: {counts.done_files}/{counts.files} files{failed}, {audio_h}, {rate:.0f} audio-s/s, ETA {eta}"


def eta_s(counts: ProgressCounts, elapsed_s: float) -> float:
    """Seconds left: the audio still to do at the audio rate so far, or the files still to do at the file rate
    while no audio is done; 0 when every file is done, ``inf`` when nothing is known yet."""
    if counts.done_files >= counts.files:
        return 0.0
    if counts.finished_planned_s > 0:
        return elapsed_s * max(counts.total_audio_s - counts.finished_planned_s, 0.0) / counts.finished_planned_s
    if counts.done_files > 0:
        return elapsed_s * (counts.files - counts.done_files) / counts.done_files
    return math.inf


def estimate_bytes(context: RunContext, plan: Plan) -> int:
    """Disk space the planned outputs will take (tensor bytes plus a few KiB of metadata each)."""
    total = 0
    for item in plan.todo:
        for (rows, dim), dtype in context.specs(item.info.samples_16k).values():
            total += rows * dim * dtype.itemsize
        total += _METADATA_BYTES
    return total


def dry_run_lines(context: RunContext, plan: Plan, summary: RunSummary, fmt: str) -> list[str]:
    settings = context.settings
    revision = f" @ {context.model_revision}" if context.model_revision else ""
    modules = ",".join(map(str, settings.modules))
    lines = [(f"dry run: model {context.model_name}{revision}, modules {modules}, {','.join(settings.what)}, "
              f"{settings.dtype}, {fmt}")]
    lines += [f"would compute {display(i.source.key)} -> {display(i.output)} ({i.info.duration_s:.2f} s)"
              for i in plan.todo]
    lines += [f"would skip (up to date) {display(source.key)}" for source, _, _ in plan.up_to_date]
    lines += [f"would fail {f.key}: {f.reason}" for f in plan.failures]
    audio_h = sum(i.info.duration_s for i in plan.todo) / 3600
    replacing = f", replacing {len(plan.other_settings)} made with other settings" if plan.other_settings else ""
    lines.append(f"{summary.found} files found, {plan.in_shard} in this shard: {len(plan.todo)} to compute "
                 f"({audio_h:.3f} h audio{replacing}), {len(plan.up_to_date)} up to date, {len(plan.failures)} bad")
    lines.append(f"estimated output size: {_human_bytes(summary.estimate_bytes)} ({summary.estimate_bytes} bytes)")
    return lines


def summary_lines(summary: RunSummary) -> list[str]:
    """The summary line (stdout), then one ``FAILED <key>: <reason>`` line per failure (stderr)."""
    rate = summary.audio_s / summary.elapsed_s if summary.elapsed_s > 0 else 0.0
    counts = f"{summary.written} written, {summary.up_to_date} up to date, {len(summary.failures)} failed"
    if summary.interrupted:
        counts = f"interrupted: {counts}, {summary.not_processed} not processed"
    plural = "s" if summary.replaced > 1 else ""
    replaced = f"; {summary.replaced} replaced output{plural} made with other settings" if summary.replaced else ""
    lines = [(f"{counts} ({summary.in_shard} in this shard of {summary.found} found){replaced}; "
              f"{summary.audio_s / 3600:.3f} h audio in {summary.elapsed_s:.1f} s ({rate:.0f} audio-s/s)")]
    lines += [f"FAILED {f.key}: {f.reason}" for f in summary.failures]
    return lines


def _human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"


# ---- logs ---------------------------------------------------------------------------------------------------------

class RunLog:
    """Appends manifest and failure lines; each line is flushed as soon as it is written."""

    def __init__(self, out_dir: Path, shard: Shard):
        self.out_dir = out_dir
        self.manifest_path = out_dir / f"manifest{shard.suffix}.jsonl"
        self.failures_path = out_dir / f"failures{shard.suffix}.jsonl"
        self.shard = shard
        self._manifest: IO[str] | None = None
        self._failures: IO[str] | None = None

    def open(self) -> None:
        """Start logging: the manifest is appended to (after mending a line cut by a kill), failures restart."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if self.manifest_path.exists() and self.manifest_path.stat().st_size:
            with open(self.manifest_path, "rb") as handle:
                handle.seek(-1, os.SEEK_END)
                cut = handle.read(1) != b"\n"
        else:
            cut = False
        self._manifest = open(self.manifest_path, "a", encoding="utf-8")  # noqa: SIM115 -- closed in close()
        if cut:
            self._manifest.write("\n")
        self._failures = open(self.failures_path, "w", encoding="utf-8")  # noqa: SIM115 -- closed in close()

    def close(self) -> None:
        for handle in (self._manifest, self._failures):
            if handle is not None:
                handle.close()

    def recorded(self) -> set[tuple[str | None, str | None]]:
        """``(output, fingerprint)`` pairs already in the manifest (lines cut by a kill are ignored)."""
        return {(entry.get("output"), entry.get("fingerprint")) for entry in read_jsonl(self.manifest_path)}

    def output_written(self, output: Path, metadata: dict[str, str], size_bytes: int, status: str) -> None:
        """Log an output: ``status`` is ``written`` (computed now) or ``present`` (complete already, not logged)."""
        module_info = json.loads(metadata["json"])["module_info"]
        entry = {"output": self.relative(output), "source": metadata["source"],
                 "fingerprint": metadata["fingerprint"], "status": status,
                 "duration_s": float(metadata["source_duration_s"]),
                 "frames": {str(m["index"]): m["frames"] for m in module_info}, "bytes": size_bytes,
                 "shard": str(self.shard), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        _append(self._manifest, entry)

    def failure(self, failure: Failure) -> None:
        _append(self._failures, failure.as_dict())

    def relative(self, output: Path) -> str:
        return display(output.relative_to(self.out_dir).as_posix())


def read_jsonl(path: Path) -> list[dict]:
    """The complete JSON lines of ``path`` (an unparsable line, such as one cut by a kill, is skipped)."""
    if not path.exists():
        return []
    entries = []
    with open(path, encoding="utf-8", errors="replace") as lines:
        for line in lines:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
    return entries


def _append(handle: IO[str] | None, entry: dict) -> None:
    if handle is None:
        raise RuntimeError("the run log is not open: call RunLog.open() first")
    handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    handle.flush()


def log_present(log: RunLog, plan: Plan) -> None:
    """Add manifest lines for complete outputs the manifest lacks (e.g. a run killed between rename and log)."""
    recorded = log.recorded()
    for _, output, metadata in plan.up_to_date:
        if (log.relative(output), metadata.get("fingerprint")) not in recorded:
            log.output_written(output, metadata, output_size_bytes(output), "present")
