"""``sim-extract``: Smooth InfoMax features for every audio file under a folder (see ``docs/cli.md``).

Exit codes: 0 when every input of this shard is complete (written now or already up to date; also with no
input at all), 1 when at least one input failed (listed in the summary and in ``failures.jsonl``; a folder that
cannot be listed counts as one), 2 for usage and setup errors (bad option, missing IN_DIR, OUT_DIR == IN_DIR, a
bad ``--manifest`` line, OUT_DIR holding outputs made with other settings without ``--force``, a model that
cannot be loaded); nothing is written then. 130 after Ctrl-C (``SIGINT``): the summary of what was done is
printed and this run's temporary files are removed.

This module only parses options; the work is done by ``smooth_infomax.extraction.run``.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

import click

from .extraction.settings import (
    FORMATS,
    STORE_DTYPES,
    RunOptions,
    format_modules,
    format_what,
    parse_modules,
    parse_shard,
    parse_what,
)
from .logs import start_cli_logging, verbosity_options

_DEFAULT: dict[str, Any] = {field.name: field.default for field in dataclasses.fields(RunOptions)
                            if field.default is not dataclasses.MISSING}  # IN_DIR and OUT_DIR have none
"""Every option's default, from ``RunOptions`` (their one home, shared with Python callers)."""


class SetupFailure(click.ClickException):
    """A run that cannot start; exits with code 2 like click's usage errors."""

    exit_code = 2


def _list_models(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from .model_list import model_list_lines

    for line in model_list_lines():
        click.echo(line)
    ctx.exit(0)


def _parsed(parser):
    """A click callback that applies ``parser`` and turns its ``ValueError`` into a usage error."""
    def callback(_ctx, param, value):
        try:
            return None if value is None else parser(value)
        except ValueError as err:
            raise click.BadParameter(str(err), param=param) from None
    return callback


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.argument("in_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--model", help="Shipped model name, Hub repo id or local folder [default: sim-mix if shipped].")
@click.option("--revision", help="Hub branch, tag or commit of --model.")
@click.option("--glob", "pattern", help="Only files matching this shell pattern (relative to IN_DIR; without '/' "
              "it matches file names) [default: every audio extension soundfile reads].")
@click.option("--manifest", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the input list from this file (one path per line, TSV first column, or JSON lines with "
              "'path'/'audio_filepath'); relative paths are relative to IN_DIR.")
@click.option("--modules", default=format_modules(_DEFAULT["modules"]), show_default=True,
              callback=_parsed(parse_modules),
              help="Modules to store: 'all' or indices such as 0,2,-1.")
@click.option("--what", default=format_what(_DEFAULT["what"]), show_default=True, callback=_parsed(parse_what),
              help="Comma-separated subset of mean,logvar,sample (logvar and sample exist for Gaussian modules).")
@click.option("--dtype", type=click.Choice(list(STORE_DTYPES)), default=_DEFAULT["dtype"], show_default=True,
              help="Stored dtype.")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default=_DEFAULT["fmt"], show_default=True,
              help="Output format (npz is written without pickle).")
@click.option("--chunk-seconds", type=click.FloatRange(min=0.01), default=_DEFAULT["chunk_seconds"], show_default=True,
              help="Files longer than this are processed in chunks of this length (bounded memory, same result).")
@click.option("--batch-seconds", type=click.FloatRange(min=0.01), default=_DEFAULT["batch_seconds"], show_default=True,
              help="Padded audio per batch; files of similar length are batched together.")
@click.option("--num-workers", type=click.IntRange(min=0), default=_DEFAULT["num_workers"], show_default=True,
              help="DataLoader workers decoding and resampling (0: in the main process).")
@click.option("--device", default=_DEFAULT["device"], show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--bf16", is_flag=True, default=_DEFAULT["bf16"],
              help="Compute under bfloat16 autocast (faster on recent hardware; "
              "results differ slightly, so outputs are fingerprinted separately).")
@click.option("--skip-existing/--force", default=_DEFAULT["skip_existing"], show_default=True,
              help="Skip inputs whose output is up to date (same input and settings), or recompute everything. "
              "Outputs made with other settings stop the run (exit 2) unless --force is given; --force replaces "
              "them.")
@click.option("--dry-run", is_flag=True, default=_DEFAULT["dry_run"],
              help="Print what would be computed and the disk estimate; write nothing.")
@click.option("--shard", callback=_parsed(parse_shard), metavar="I/N",
              help="Process only shard I of N (0-based); under torchrun each rank takes its own sub-shard.")
@verbosity_options("No progress bar and no progress lines.", "Also log one line per file (repeatable).",
                   expose_quiet=True)
@click.option("--progress-seconds", type=click.FloatRange(min=0), default=_DEFAULT["progress_seconds"],
              show_default=True, help="Off a terminal, at least this long between two progress lines on stderr "
              "(0: after every file).")
@click.option("--list-models", is_flag=True, is_eager=True, expose_value=False, callback=_list_models,
              help="List shipped and cached models, then exit.")
@click.pass_context
def main(ctx: click.Context, **kwargs) -> None:
    """Extract SIM features for every audio file under IN_DIR into a mirrored tree under OUT_DIR.

    Exit codes: 0 all inputs complete, 1 some inputs failed (see failures.jsonl), 2 usage or setup error (nothing
    written), 130 interrupted (Ctrl-C). Details: docs/cli.md.
    """
    from .extraction import RunInterrupted, SetupError, run
    from .extraction.report import EXIT_INTERRUPTED
    from .inference import SlowDtypeWarning

    start_cli_logging(ctx)
    options = RunOptions(**kwargs)
    try:
        with warnings.catch_warnings():  # the run says it once, as a warning line
            warnings.simplefilter("ignore", SlowDtypeWarning)
            summary = run(options, echo=lambda line: click.echo(line, err=line.startswith("warning")))
    except SetupError as err:
        raise SetupFailure(str(err)) from None
    except RunInterrupted as interrupted:
        summary = interrupted.summary
    except KeyboardInterrupt:  # before any output was written: nothing to sum up
        click.echo("interrupted before any output was written", err=True)
        ctx.exit(EXIT_INTERRUPTED)
    if not summary.dry_run:
        _echo_summary(summary)
    ctx.exit(summary.exit_code)


def _echo_summary(summary) -> None:
    from .extraction.report import summary_lines

    for line in summary_lines(summary):
        click.echo(line, err=line.startswith("FAILED"))
