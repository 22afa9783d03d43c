"""Logging for the command-line tools (see ``docs/cli.md``, "Log lines and progress").

Every module of the package that reports anything logs through ``logging.getLogger(__name__)``, a child of the
``smooth_infomax`` logger. The library installs no handler of its own (only a ``NullHandler``, in
``smooth_infomax/__init__.py``), so a Python caller sees these lines only after configuring ``logging``.

The CLIs (``sim-extract`` and ``sim-analyze``) take ``-v/--verbose`` and ``-q/--quiet`` (:func:`verbosity_options`)
and, for the duration of the command only, attach one stderr handler to the ``smooth_infomax`` logger
(:func:`start_cli_logging`): by default INFO (progress lines), with ``-v`` DEBUG (plus one line per file), with
``-q`` WARNING (no progress lines).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click
from tqdm import tqdm

PACKAGE_LOGGER = "smooth_infomax"
"""The top logger of the package; every module logs to a child of it."""

LOG_FORMAT = "%(asctime)s %(message)s"
LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
"""A CLI log line: ``2025-01-31 12:00:00 <message>``."""

_VERBOSE_KEY = "smooth_infomax.verbose"
_QUIET_KEY = "smooth_infomax.quiet"

_Command = TypeVar("_Command", bound=Callable[..., Any])


def level_for(verbose_count: int, quiet: bool) -> int:
    """The log level of the CLI options: ``-q`` WARNING, none INFO, ``-v`` (once or more) DEBUG."""
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose_count > 0 else logging.INFO


class CliHandler(logging.Handler):
    """Writes each record as one line to the current ``sys.stderr`` (looked up per record, so a stream swapped in
    later, as by click's test runner, is honoured) through ``tqdm.write``, which keeps a progress bar on a terminal
    intact."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 -- logging must never break the command; logging reports it
            self.handleError(record)


@contextmanager
def cli_logging(level: int) -> Iterator[CliHandler]:
    """Attach one :class:`CliHandler` at ``level`` to the ``smooth_infomax`` logger, and set the logger's level,
    for the duration of the block; both are undone afterwards."""
    logger = logging.getLogger(PACKAGE_LOGGER)
    handler = CliHandler(level)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
    previous_level = logger.level
    logger.setLevel(level)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)


def _remember(key: str) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that stores the option's value in ``ctx.meta[key]`` (shared with subcommands)."""
    def callback(ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        ctx.meta[key] = value
        return value
    return callback


def verbosity_options(quiet_help: str, verbose_help: str = "Log more: DEBUG lines too (repeatable).",
                      expose_quiet: bool = False) -> Callable[[_Command], _Command]:
    """Decorator adding ``-v/--verbose`` (repeatable) and ``-q/--quiet`` to a click command or group. Their values
    are kept in ``ctx.meta`` for :func:`start_cli_logging`; ``expose_quiet`` also passes ``quiet`` to the
    command."""
    def decorate(command: _Command) -> _Command:
        command = click.option("--quiet", "-q", is_flag=True, default=False, expose_value=expose_quiet,
                               callback=_remember(_QUIET_KEY), help=quiet_help)(command)
        return click.option("--verbose", "-v", count=True, expose_value=False, callback=_remember(_VERBOSE_KEY),
                            help=verbose_help)(command)
    return decorate


def start_cli_logging(ctx: click.Context) -> int:
    """Log to stderr at the level of ``-v``/``-q`` until ``ctx`` closes; returns the level. ``-v`` with ``-q`` is
    a usage error (exit code 2)."""
    verbose_count, quiet = ctx.meta.get(_VERBOSE_KEY, 0), ctx.meta.get(_QUIET_KEY, False)
    if verbose_count and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet exclude each other", ctx)
    level = level_for(verbose_count, quiet)
    ctx.with_resource(cli_logging(level))
    return level


def stderr_is_terminal() -> bool:
    """Whether ``sys.stderr`` is a terminal (false when it is missing or closed)."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def format_eta(seconds: float) -> str:
    """``H:MM:SS`` for a time left, ``?`` when it cannot be known yet (infinite or NaN)."""
    if not math.isfinite(seconds):
        return "?"
    whole_s = max(0, round(seconds))
    return f"{whole_s // 3600}:{whole_s // 60 % 60:02d}:{whole_s % 60:02d}"
