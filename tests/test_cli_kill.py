"""A run killed with SIGKILL at random points and restarted: every output is complete, equals a clean run, and
outputs finished before a kill are never recomputed."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smooth_infomax.extraction import load_features
from smooth_infomax.extraction.report import read_jsonl
from test_cli_common import (
    assert_same_outputs,
    no_hang_fixture,  # noqa: F401 (fixture)
    output_files,
    run_cli,
    sim_model_fixture,  # noqa: F401 (fixtures)
    write_audio,
)

FILES = 24
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1]), "OMP_NUM_THREADS": "1"}
"""One intra-op thread: on a shared 2-core machine spinning OpenMP threads only slow the run down."""


def start(args: list) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "smooth_infomax", *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_midway(args: list, out: Path, done_before: int, rng: random.Random, during_write: bool) -> bool:
    """Start a run and SIGKILL it once it has written a few more outputs: after a random delay, or
    (``during_write``) the moment a temporary file shows that an output is being written."""
    process = start(args)
    target = done_before + rng.randint(1, 3)
    while process.poll() is None and len(output_files(out)) < target:
        time.sleep(0.002)
    if during_write:
        deadline = time.monotonic() + 5
        while process.poll() is None and not temporaries(out) and time.monotonic() < deadline:
            time.sleep(0.0005)
    else:
        time.sleep(rng.uniform(0, 0.03))
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    return killed


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if ".tmp-" in p.name]


@pytest.mark.slow
def test_sigkill_and_restart(tmp_path, sim_model, no_hang):
    for i in range(FILES):
        write_audio(tmp_path / "in" / f"d{i % 4}" / f"u{i}.wav", 0.25 + 0.05 * (i % 4), seed=i)
    out = tmp_path / "out"
    args = [tmp_path / "in", out, "--model", sim_model, "--batch-seconds", 0.7, "--num-workers", 0, "--quiet",
            "--what", "mean,logvar,sample"]
    rng, kills, cut_writes, finished = random.Random(6), 0, 0, {}
    for round_ in range(3):
        kills += kill_midway(args, out, len(finished), rng, during_write=round_ > 0)
        cut_writes += bool(temporaries(out))
        for name, path in output_files(out).items():  # whatever exists after a kill is complete
            arrays, meta = load_features(path)
            assert arrays and meta["fingerprint"]
            stat = path.stat()
            finished.setdefault(name, (stat.st_ino, stat.st_mtime_ns))
    assert kills == 3 and cut_writes >= 1 and 0 < len(finished) < FILES
    final = subprocess.run([sys.executable, "-m", "smooth_infomax", *map(str, args)], capture_output=True,
                           text=True, env=ENV, check=False, timeout=60)
    assert final.returncode == 0, final.stderr
    assert f"{FILES - len(finished)} written, {len(finished)} up to date" in final.stdout
    for name, identity in finished.items():  # not recomputed
        stat = output_files(out)[name].stat()
        assert (stat.st_ino, stat.st_mtime_ns) == identity, name
    assert not [p for p in out.rglob(".*")]  # temporary files of killed runs are gone
    entries = read_jsonl(out / "manifest.jsonl")
    assert {e["output"] for e in entries} == set(output_files(out))
    assert run_cli([tmp_path / "in", tmp_path / "clean", *args[2:]]).exit_code == 0
    assert_same_outputs(out, tmp_path / "clean")
