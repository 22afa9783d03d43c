"""``run``: one ``sim-extract`` run from options to summary. Set up (folders, model, settings, shard), plan, then
one flat loop over batches: decode -> compute -> write, each stage returning a value or a ``Failure`` that the
loop records (summary, ``failures.jsonl``, progress)."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from ..audio import SAMPLE_RATE
from ..inference import slow_dtype_reason
from .compute import check_length, compute, decode_batches, prepare_context, too_short_reason
from .formats import TempName
from .plan import Failure, Plan, length_batches, make_plan, other_settings_warnings
from .report import Progress, RunLog, RunSummary, dry_run_lines, estimate_bytes, log_present
from .settings import RunContext, RunOptions, SetupError, Shard
from .sources import display
from .store import OutputTree, Written, clean_temporaries, write_output

logger = logging.getLogger(__name__)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (``SIGINT``) during a run, raised once the temporary files are removed and the logs closed;
    ``summary`` says what was done before (``summary.interrupted`` is true, ``exit_code`` 130)."""

    def __init__(self, summary: RunSummary):
        super().__init__("interrupted")
        self.summary = summary


def run(options: RunOptions, echo: Callable[[str], None] = print) -> RunSummary:
    """Run ``sim-extract`` with ``options``; warnings and the dry-run listing go to ``echo``, progress and per-file
    lines to the ``smooth_infomax.extraction`` loggers (INFO and DEBUG). Raises ``SetupError`` if it cannot start,
    and ``RunInterrupted`` (a ``KeyboardInterrupt``) on Ctrl-C once outputs are being written."""
    start = time.monotonic()
    _check_folders(options)
    context, shard = prepare_context(options), resolve_shard(options.shard)
    plan = make_plan(options, context.settings_sha256, shard, lambda samples: too_short_reason(context, samples))
    for warning in [*plan.warnings, *other_settings_warnings(plan, context, options.skip_existing)]:
        echo(f"warning: {warning}")
    device = next(context.encoder.parameters()).device
    if options.bf16 and (slow := slow_dtype_reason(torch.bfloat16, device)):
        echo(f"warning: --bf16: {slow}; leave it out for speed")
    summary = RunSummary(found=plan.found, in_shard=plan.in_shard, up_to_date=len(plan.up_to_date),
                         failures=list(plan.failures), dry_run=options.dry_run,
                         estimate_bytes=estimate_bytes(context, plan))
    if options.dry_run:
        for line in dry_run_lines(context, plan, summary, options.fmt):
            echo(line)
        return summary
    _log_plan(context, plan, device)
    _write_all(options, context, shard, plan, summary)
    summary.elapsed_s = time.monotonic() - start
    if summary.interrupted:
        raise RunInterrupted(summary)
    return summary


def resolve_shard(shard: Shard | None, environ: Mapping[str, str] = os.environ) -> Shard:
    """``--shard I/N`` combined with torchrun's ``RANK``/``WORLD_SIZE``: rank ``r`` of ``W`` in shard ``I/N``
    takes shard ``I * W + r`` of ``N * W``."""
    base = shard or Shard()
    world, rank = int(environ.get("WORLD_SIZE", "1")), int(environ.get("RANK", "0"))
    if world <= 1:
        return base
    return Shard(base.index * world + rank, base.count * world)


def _check_folders(options: RunOptions) -> None:
    """``SetupError`` if OUT_DIR is IN_DIR (also through a symlink): outputs would be mixed with the inputs."""
    in_dir, out_dir = options.in_dir, options.out_dir
    same = os.path.realpath(in_dir) == os.path.realpath(out_dir)
    if not same and os.path.isdir(in_dir) and os.path.isdir(out_dir):
        same = os.path.samefile(in_dir, out_dir)
    if same:
        raise SetupError(f"OUT_DIR is IN_DIR ({display(out_dir)}): outputs would be mixed with the inputs; "
                         "choose another OUT_DIR")


def _write_all(options: RunOptions, context: RunContext, shard: Shard, plan: Plan, summary: RunSummary) -> None:
    """Compute and write this shard's outputs and log them. On Ctrl-C, stops, removes this process's temporary
    files and sets ``summary.interrupted``."""
    log = RunLog(options.out_dir, shard)
    summary.manifest = log.manifest_path
    try:
        log.open()
    except OSError as err:
        raise SetupError(f"cannot write to OUT_DIR {display(options.out_dir)}: {err.strerror or err}") from None
    outputs = [i.output for i in plan.todo] + [o for _, o, _ in plan.up_to_date]
    try:
        for failure in plan.failures:
            log.failure(failure)
        clean_temporaries(options.out_dir, outputs, TempName.abandoned)
        log_present(log, plan)
        _log_unprocessed_files(plan)
        _process(plan, context, options, log, summary)
    except KeyboardInterrupt:
        summary.interrupted = True
        clean_temporaries(options.out_dir, outputs, TempName.is_mine)
    finally:
        log.close()


def _process(plan: Plan, context: RunContext, options: RunOptions, log: RunLog, summary: RunSummary) -> None:
    """The loop: per batch, decode (in workers) -> check length -> compute -> write, then record each result."""
    todo, replaced = plan.todo, {output for output, _ in plan.other_settings}
    chunk_samples = max(1, int(options.chunk_seconds * SAMPLE_RATE))
    batches = length_batches(todo, int(options.batch_seconds * SAMPLE_RATE), chunk_samples)
    tree = OutputTree(options.out_dir)
    planned_s = {display(i.source.key): i.info.duration_s for i in todo}
    progress = Progress(len(todo), sum(planned_s.values()), options.quiet, options.progress_seconds)
    try:
        for batch in decode_batches(todo, batches, options.num_workers):
            decoded = [check_length(result, context) for result in batch]
            for result in compute(context, decoded, chunk_samples, options.bf16):
                outcome = result if isinstance(result, Failure) else write_output(context, options.fmt, tree, result)
                _record(outcome, log, summary, progress, replaced, planned_s)
    finally:
        progress.close()


def _record(result: Written | Failure, log: RunLog, summary: RunSummary, progress: Progress,
            replaced: set[Path], planned_s: dict[str, float]) -> None:
    """Count, log and show one file's outcome. ``planned_s``: each input's length (by display key) from its
    header."""
    if isinstance(result, Failure):
        summary.failures.append(result)
        log.failure(result)
        duration_s = planned_s.get(result.key)
        _log_file(result.key, duration_s, f"failed ({result.stage}): {result.reason}")
        progress.advance(0.0, duration_s or 0.0, failed=True)
        return
    log.output_written(result.item.output, result.metadata, result.size_bytes, "written")
    summary.written += 1
    summary.replaced += result.item.output in replaced
    summary.audio_s += result.audio_s
    _log_file(display(result.item.source.key), result.audio_s, "written")
    progress.advance(result.audio_s, result.item.info.duration_s)


def _log_plan(context: RunContext, plan: Plan, device: torch.device) -> None:
    """One DEBUG line: the model, the device and what this shard will do."""
    audio_h = sum(i.info.duration_s for i in plan.todo) / 3600
    logger.debug("model %s on %s: %d files to compute (%.3f h audio), %d up to date, %d failed before computing",
                 context.model_name, device, len(plan.todo), audio_h, len(plan.up_to_date), len(plan.failures))


def _log_unprocessed_files(plan: Plan) -> None:
    """The per-file DEBUG lines of the inputs that are not computed: up to date, or failed while planning."""
    for source, _, metadata in plan.up_to_date:
        duration_s = metadata.get("source_duration_s")
        _log_file(display(source.key), float(duration_s) if duration_s else None, "up to date")
    for failure in plan.failures:
        _log_file(failure.key, None, f"failed ({failure.stage}): {failure.reason}")


def _log_file(key: str, duration_s: float | None, status: str) -> None:
    """One DEBUG line per file (``-v``): ``file spk1/a.wav: 2.31 s audio, written`` (no length when it is
    unknown, as for a file that failed while planning)."""
    duration = "" if duration_s is None else f"{duration_s:.2f} s audio, "
    logger.debug("file %s: %s%s", key, duration, status)
