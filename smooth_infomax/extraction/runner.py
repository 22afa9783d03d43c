"""``run``: one ``sim-extract`` run from options to summary (plan, decode, compute, write, log)."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import torch

from ..audio import SAMPLE_RATE
from ..hub import shipped_models
from ..inference import slow_dtype_reason
from .compute import SetupError, batch_rows, load_encoder, long_rows, resolve_device, resolve_modules, too_short_reason
from .discovery import InputListError
from .fingerprint import model_sha256
from .loading import Decoded, DecodeFailed, length_batches, make_loader
from .logs import RunLog
from .metadata import RunContext
from .paths import OutputTree, TempName, display, parse_temp_name
from .plan import Plan, WorkItem, failure_for, make_plan
from .report import Progress, RunSummary, dry_run_lines, estimate_bytes
from .settings import DEFAULT_MODEL, FeatureSettings, RunOptions, Shard
from .store import output_size_bytes, write_output
from .writers import remove_path


def resolve_shard(shard: Shard | None, environ: Mapping[str, str] = os.environ) -> Shard:
    """``--shard I/N`` combined with torchrun's ``RANK``/``WORLD_SIZE``: rank ``r`` of ``W`` in shard ``I/N``
    takes shard ``I * W + r`` of ``N * W``."""
    base = shard or Shard()
    world, rank = int(environ.get("WORLD_SIZE", "1")), int(environ.get("RANK", "0"))
    if world <= 1:
        return base
    return Shard(base.index * world + rank, base.count * world)


def default_model() -> str:
    if DEFAULT_MODEL in shipped_models():
        return DEFAULT_MODEL
    raise SetupError(f"no default model: {DEFAULT_MODEL!r} is not shipped with this installation; "
                     "pass --model NAME|REPO|PATH (see sim-extract --list-models)")


def prepare(options: RunOptions) -> tuple[RunContext, Shard]:
    """Load the model and fix the settings that decide the outputs' numbers."""
    device = resolve_device(options.device)
    encoder = load_encoder(options.model or default_model(), options.revision, device)
    modules = resolve_modules(encoder, options.modules)
    compute_dtype = "bfloat16" if options.bf16 else "float32"
    settings = FeatureSettings(modules, tuple(options.what), options.dtype, compute_dtype, model_sha256(encoder))
    context = RunContext(encoder, settings, settings.sha256(), str(encoder.name_or_path), encoder.revision or "")
    if not any(context.module_keys(m) for m in modules):
        raise SetupError(f"--what {','.join(options.what)}: none of modules {modules} is Gaussian, nothing to store")
    return context, resolve_shard(options.shard)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C (``SIGINT``) during a run, raised once the temporary files are removed and the logs closed;
    ``summary`` says what was done before (``summary.interrupted`` is true, ``exit_code`` 130)."""

    def __init__(self, summary: RunSummary):
        super().__init__("interrupted")
        self.summary = summary


def run(options: RunOptions, echo: Callable[[str], None] = print) -> RunSummary:
    """Run ``sim-extract`` with ``options``; messages go to ``echo``. Raises ``SetupError`` if it cannot start,
    and ``RunInterrupted`` (a ``KeyboardInterrupt``) on Ctrl-C once outputs are being written."""
    start = time.monotonic()
    check_folders(options)
    context, shard = prepare(options)
    too_short = functools.partial(too_short_reason, context.encoder, context.settings.modules)
    try:
        plan = make_plan(options, context.settings_sha256, shard, too_short)
    except InputListError as err:
        raise SetupError(str(err)) from None
    for warning in [*plan.warnings, *_check_other_settings(plan, context, options)]:
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
    _write_all(options, context, shard, plan, summary, too_short)
    summary.elapsed_s = time.monotonic() - start
    if summary.interrupted:
        raise RunInterrupted(summary)
    return summary


def check_folders(options: RunOptions) -> None:
    """``SetupError`` if OUT_DIR is IN_DIR (also through a symlink): outputs would be mixed with the inputs."""
    in_dir, out_dir = options.in_dir, options.out_dir
    same = os.path.realpath(in_dir) == os.path.realpath(out_dir)
    if not same and os.path.isdir(in_dir) and os.path.isdir(out_dir):
        same = os.path.samefile(in_dir, out_dir)
    if same:
        raise SetupError(f"OUT_DIR is IN_DIR ({display(out_dir)}): outputs would be mixed with the inputs; "
                         "choose another OUT_DIR")


def _check_other_settings(plan: Plan, context: RunContext, options: RunOptions) -> list[str]:
    """``SetupError`` naming the differing settings if OUT_DIR holds outputs made with other settings, unless
    ``--force`` was given; then a warning that they will be replaced."""
    if not plan.other_settings:
        return []
    differences: list[str] = []
    for _, metadata in plan.other_settings:
        differences += [d for d in context.settings.differences(metadata, context.model_name) if d not in differences]
    count, first = len(plan.other_settings), display(plan.other_settings[0][0])
    what = f"{count} output{'s' if count > 1 else ''} made with other settings (first: {first}): " + "; ".join(
        differences[:6]) + ("; ..." if len(differences) > 6 else "")
    if options.skip_existing:
        raise SetupError(f"OUT_DIR holds {what}. Pass --force to replace them, or choose another OUT_DIR")
    return [f"--force: replacing {what}"]


def _write_all(options: RunOptions, context: RunContext, shard: Shard, plan: Plan, summary: RunSummary,
               too_short) -> None:
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
        _clean_temporaries(options.out_dir, outputs, TempName.abandoned)
        _log_present(log, plan)
        _execute(plan.todo, context, options, log, summary, too_short, {o for o, _ in plan.other_settings})
    except KeyboardInterrupt:
        summary.interrupted = True
        _clean_temporaries(options.out_dir, outputs, TempName.is_mine)
    finally:
        log.close()


def _execute(todo: list[WorkItem], context: RunContext, options: RunOptions, log: RunLog, summary: RunSummary,
             too_short, replaced: set[Path]) -> None:
    chunk_samples = max(1, int(options.chunk_seconds * SAMPLE_RATE))
    batches = length_batches(todo, int(options.batch_seconds * SAMPLE_RATE), chunk_samples)
    tree = OutputTree(options.out_dir)
    progress = Progress(len(todo), sum(i.info.duration_s for i in todo), options.quiet)

    def fail(item: WorkItem, reason: str) -> None:
        failure = failure_for(item.source, reason)
        summary.failures.append(failure)
        log.failure(failure)
        progress.advance()

    try:
        for batch in make_loader(todo, batches, options.num_workers):
            ready = [r for r in batch if _usable(r, todo, fail, too_short)]
            for decoded, chunks in _compute(ready, todo, context, options, chunk_samples, fail):
                item = todo[decoded.index]
                try:
                    metadata = write_output(context, options.fmt, tree, item, decoded.audio,
                                            decoded.source_sha256, chunks)
                except Exception as err:  # noqa: BLE001 -- a file's failure must not stop the run
                    fail(item, f"{type(err).__name__}: {err}")
                    continue
                log.output_written(item.output, metadata, output_size_bytes(item.output), "written")
                summary.written += 1
                summary.replaced += item.output in replaced
                summary.audio_s += decoded.audio.info.duration_s
                progress.advance(decoded.audio.info.duration_s)
    finally:
        progress.close()


def _usable(result: Decoded | DecodeFailed, todo: list[WorkItem], fail, too_short) -> bool:
    if isinstance(result, DecodeFailed):
        fail(todo[result.index], result.reason)
        return False
    reason = too_short(int(result.audio.waveform.shape[0]))
    if reason:
        fail(todo[result.index], reason)
        return False
    return True


def _compute(ready: list[Decoded], todo, context: RunContext, options: RunOptions, chunk_samples: int,
             fail) -> Iterator[tuple[Decoded, object]]:
    """Pairs of a decoded file and its rows: a lazy chunk iterator for a long file alone in its batch, else
    the batch's ``extract`` result."""
    encoder, modules = context.encoder, context.settings.modules
    logvar = bool({"logvar", "sample"} & set(context.settings.what))  # samples are drawn from mean and logvar
    if len(ready) == 1 and ready[0].audio.waveform.shape[0] > chunk_samples:
        yield ready[0], long_rows(encoder, ready[0].audio.waveform, modules, chunk_samples, options.bf16, logvar)
        return
    if not ready:
        return
    try:
        rows = batch_rows(encoder, [r.audio.waveform for r in ready], modules, options.bf16, logvar)
    except Exception as err:  # noqa: BLE001 -- e.g. out of memory: the batch's files fail, the run goes on
        for result in ready:
            fail(todo[result.index], f"compute failed ({type(err).__name__}: {err})")
        return
    yield from ((result, [item_rows]) for result, item_rows in zip(ready, rows))


def _clean_temporaries(out_dir: Path, outputs: list[Path], removable: Callable[[TempName], bool]) -> None:
    """Delete the temporary files of ``outputs`` (this shard's: other shards may be writing theirs right now) for
    which ``removable`` is true, only in folders that resolve inside OUT_DIR. ``TempName.abandoned`` never holds
    for a live process, so a concurrent run's file being written is never removed."""
    tree = OutputTree(out_dir)
    by_folder: dict[Path, set[str]] = {}
    for output in outputs:
        by_folder.setdefault(output.parent, set()).add(output.name)
    for folder, names in by_folder.items():
        if not folder.is_dir() or not tree.contains(os.path.realpath(folder)):
            continue
        for entry in os.scandir(folder):
            temp = parse_temp_name(entry.name)
            if temp is not None and temp.target in names and removable(temp):
                remove_path(Path(entry.path))


def _log_present(log: RunLog, plan: Plan) -> None:
    """Add manifest lines for complete outputs the manifest lacks (e.g. a run killed between rename and log)."""
    recorded = log.recorded()
    for _, output, metadata in plan.up_to_date:
        if (log.relative(output), metadata.get("fingerprint")) not in recorded:
            log.output_written(output, metadata, output_size_bytes(output), "present")
