"""Logging: a ``smooth_infomax`` logger with no handler of the library's own, ``-v``/``-q`` on
both CLIs, and ``sim-extract``'s progress lines off a terminal. The CLI runs in a real subprocess whose stderr is a
file (not a terminal), on 50 short real audio files."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from smooth_infomax.analysis.cli import main as analyze
from smooth_infomax.extraction.report import Progress, ProgressCounts, eta_s, progress_line
from smooth_infomax.logs import PACKAGE_LOGGER, CliHandler, format_eta, level_for
from test_cli_common import run_cli, tiny_model_fixture, write_audio  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
FILES = 50
PROGRESS = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d progress: (\d+)/50 files, \d+\.\d{3}/\d+\.\d{3} h audio, "
                      r"\d+ audio-s/s, ETA \d+:\d\d:\d\d$")
PER_FILE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d file (spk\d/u\d+\.wav): 0\.\d\d s audio, written$")
SUMMARY = f"{FILES} written, 0 up to date, 0 failed"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """50 files of 0.1-0.25 s of noise in three speaker folders."""
    root = tmp_path_factory.mktemp("logging-corpus")
    for i in range(FILES):
        write_audio(root / f"spk{i % 3}" / f"u{i}.wav", 0.1 + 0.003 * i, seed=i)
    return root


def extract(corpus: Path, out: Path, model: Path, *args: str) -> tuple[int, str, str]:
    """Run ``sim-extract`` in a subprocess with stdout in ``out.stdout`` and stderr in ``out.log`` (files, so not
    terminals); returns the exit code, stdout and stderr."""
    stdout_path, stderr_path = out.with_suffix(".stdout"), out.with_suffix(".log")
    command = [sys.executable, "-m", "smooth_infomax", str(corpus), str(out), "--model", str(model),
               "--num-workers", "0", *args]
    with open(stdout_path, "w") as stdout, open(stderr_path, "w") as stderr:
        code = subprocess.run(command, stdout=stdout, stderr=stderr, env=ENV, check=False, timeout=120).returncode
    return code, stdout_path.read_text(), stderr_path.read_text()


def test_progress_lines_off_a_terminal_come_before_the_summary(corpus, tiny_model, tmp_path):
    """The acceptance check: stdout and stderr to one file (``> log 2>&1``), default options."""
    log = tmp_path / "combined.log"
    command = [sys.executable, "-m", "smooth_infomax", str(corpus), str(tmp_path / "out"), "--model", str(tiny_model),
               "--num-workers", "0"]
    with open(log, "w") as handle:
        code = subprocess.run(command, stdout=handle, stderr=handle, env=ENV, check=False, timeout=120).returncode
    lines = log.read_text().splitlines()
    assert code == 0, lines
    progress = [i for i, line in enumerate(lines) if PROGRESS.match(line)]
    summary = [i for i, line in enumerate(lines) if line.startswith(SUMMARY)]
    assert progress and summary and progress[0] < summary[0], lines
    assert PROGRESS.match(lines[progress[-1]]).group(1) == str(FILES)  # the last file always gets a line
    assert not any(PER_FILE.match(line) for line in lines), lines  # per-file lines need -v


def test_quiet_writes_no_progress_lines(corpus, tiny_model, tmp_path):
    code, stdout, stderr = extract(corpus, tmp_path / "out", tiny_model, "-q", "--progress-seconds", "0")
    assert code == 0 and SUMMARY in stdout
    assert stderr == ""


def test_verbose_adds_one_line_per_file(corpus, tiny_model, tmp_path):
    """``-v`` logs each file; ``--progress-seconds 0`` also logs progress after every file."""
    code, stdout, stderr = extract(corpus, tmp_path / "out", tiny_model, "-v", "--progress-seconds", "0")
    assert code == 0 and SUMMARY in stdout
    lines = stderr.splitlines()
    per_file = [m.group(1) for m in map(PER_FILE.match, lines) if m]
    assert sorted(per_file) == sorted(f"spk{i % 3}/u{i}.wav" for i in range(FILES))
    done = [int(m.group(1)) for m in map(PROGRESS.match, lines) if m]
    assert done == list(range(1, FILES + 1))
    assert any(" model " in line and f"{FILES} files to compute" in line for line in lines)


def test_verbose_and_quiet_exclude_each_other(tiny_model, tmp_path):
    result = run_cli([tmp_path, tmp_path / "out", "--model", tiny_model, "-v", "-q"])
    assert result.exit_code == 2 and "exclude each other" in result.stderr


def test_verbose_names_up_to_date_and_failed_files_and_detaches_its_handler(tiny_model, tmp_path):
    """In-process (click's runner): per-file lines for every status, and the CLI's handler is gone afterwards."""
    write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    (tmp_path / "in" / "bad.wav").write_bytes(b"not audio")
    args = [tmp_path / "in", tmp_path / "out", "--model", tiny_model, "--num-workers", 0, "-v"]
    handlers = list(logging.getLogger(PACKAGE_LOGGER).handlers)
    first, second = run_cli(args), run_cli(args)
    assert first.exit_code == second.exit_code == 1
    assert "file a.wav: 0.30 s audio, written" in first.stderr
    assert "file a.wav: 0.30 s audio, up to date" in second.stderr
    assert "file bad.wav: failed (input): not a recognised audio format" in second.stderr
    assert logging.getLogger(PACKAGE_LOGGER).handlers == handlers
    assert not any(isinstance(h, CliHandler) for h in logging.getLogger(PACKAGE_LOGGER).handlers)


def test_importing_the_package_adds_no_handler_and_prints_nothing():
    """Only a NullHandler on ``smooth_infomax``; the root logger untouched; a library warning is not printed
    (no ``logging.lastResort``) until the application configures logging."""
    code = ("import logging; import smooth_infomax, smooth_infomax.cli, smooth_infomax.extraction, "
            "smooth_infomax.analysis.cli\n"
            "top = logging.getLogger('smooth_infomax')\n"
            "assert [type(h).__name__ for h in top.handlers] == ['NullHandler'], top.handlers\n"
            "assert logging.getLogger().handlers == [] and top.level == logging.NOTSET\n"
            "logging.getLogger('smooth_infomax.extraction.runner').warning('must not be printed')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, check=False,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


# ---- the progress line, without a subprocess --------------------------------------------------------------------

class FakeClock:
    def __init__(self) -> None:
        self.now_s = 0.0

    def __call__(self) -> float:
        return self.now_s


def test_progress_lines_at_first_file_every_interval_and_last_file(caplog):
    clock = FakeClock()
    progress = Progress(6, 60.0, quiet=False, interval_s=20.0, terminal=False, clock=clock)
    with caplog.at_level(logging.INFO, logger=PACKAGE_LOGGER):
        for step_s in (5, 5, 5, 10, 5, 5):  # files end at 5, 10, 15, 25, 30, 35 s
            clock.now_s += step_s
            progress.advance(10.0)
        progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["progress: 1/6 files, 0.003/0.017 h audio, 2 audio-s/s, ETA 0:00:25",
                     "progress: 4/6 files, 0.011/0.017 h audio, 2 audio-s/s, ETA 0:00:12",
                     "progress: 6/6 files, 0.017/0.017 h audio, 2 audio-s/s, ETA 0:00:00"]


@pytest.mark.parametrize(("quiet", "terminal"), [(True, False), (False, True), (True, True)])
def test_no_progress_lines_when_quiet_or_on_a_terminal(caplog, quiet, terminal):
    progress = Progress(3, 3.0, quiet=quiet, interval_s=0.0, terminal=terminal, clock=FakeClock())
    with caplog.at_level(logging.DEBUG, logger=PACKAGE_LOGGER):
        for _ in range(3):
            progress.advance(1.0)
        progress.close()
    assert caplog.records == []


def test_eta_counts_failed_files_as_finished_and_falls_back_to_files():
    failed = ProgressCounts(files=4, total_audio_s=40.0, done_files=2, failed_files=1, done_audio_s=10.0,
                            finished_planned_s=20.0)
    assert eta_s(failed, 10.0) == pytest.approx(10.0)
    assert progress_line(failed, 10.0) == "progress: 2/4 files, 1 failed, 0.003/0.011 h audio, 1 audio-s/s, " \
                                          "ETA 0:00:10"
    no_audio = ProgressCounts(files=4, total_audio_s=0.0, done_files=1)
    assert eta_s(no_audio, 2.0) == pytest.approx(6.0)
    assert eta_s(ProgressCounts(files=4, total_audio_s=1.0), 0.0) == float("inf")


def test_format_eta_and_levels():
    assert format_eta(3725.4) == "1:02:05" and format_eta(0) == "0:00:00" and format_eta(float("inf")) == "?"
    assert level_for(0, False) == logging.INFO and level_for(2, False) == logging.DEBUG
    assert level_for(0, True) == logging.WARNING


# ---- sim-analyze ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("flags", "lines"), [([], 4), (["-q"], 0)])
def test_analyze_train_decoder_logs_steps_unless_quiet(tone_corpus, tiny_model, tmp_path, flags, lines):
    args = [*flags, "train-decoder", str(tiny_model), str(tone_corpus), str(tmp_path / "decoder"), "--module", "1",
            "--n-files", "4", "--crop-samples", "3200", "--steps", "4", "--batch-size", "2", "--hidden", "4",
            "--threads", "1"]
    result = CliRunner().invoke(analyze, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = re.findall(r"step (\d)/4: loss \d+\.\d{5}, ETA \d+:\d\d:\d\d", result.stderr)
    assert len(steps) == lines and "wrote" in result.stdout
