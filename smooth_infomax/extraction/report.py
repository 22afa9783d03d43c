"""Progress bar, run summary, dry-run report and disk estimate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from .metadata import RunContext
from .paths import display
from .plan import Failure, Plan

_METADATA_BYTES = 4096  # header and metadata per output, roughly


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
    """A tqdm bar counting files, with audio hours done and throughput in audio-seconds per second."""

    def __init__(self, files: int, audio_s: float, quiet: bool):
        self._bar = tqdm(total=files, unit="file", desc="sim-extract", disable=True if quiet else None,
                         dynamic_ncols=True, leave=False)
        self._total_h, self._done_s, self._start = audio_s / 3600, 0.0, time.monotonic()

    def advance(self, audio_s: float = 0.0) -> None:
        self._done_s += audio_s
        rate = self._done_s / max(time.monotonic() - self._start, 1e-9)
        self._bar.set_postfix_str(f"{self._done_s / 3600:.2f}/{self._total_h:.2f} h audio, {rate:.0f} audio-s/s",
                                  refresh=False)
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()


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
    lines.append(f"estimated output size: {human_bytes(summary.estimate_bytes)} ({summary.estimate_bytes} bytes)")
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


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"
