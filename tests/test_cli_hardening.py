"""``sim-extract`` under attack: an OUT_DIR made with other settings, two runs on one OUT_DIR, a folder at
an output path, bad manifest lines, Ctrl-C, unlistable folders, OUT_DIR == IN_DIR, non-UTF-8 file names,
unreadable files, and the documented shard rule. Real files, real subprocesses and real signals."""

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from smooth_infomax.extraction import load_features
from smooth_infomax.extraction.formats import SafetensorsWriter
from smooth_infomax.extraction.plan import shard_of
from smooth_infomax.extraction.report import read_jsonl
from smooth_infomax.extraction.sources import Source
from test_cli_common import (
    output_files,
    run_cli,
    save_model,
    tiny_config,
    tiny_model_fixture,  # noqa: F401 (fixtures)
    write_audio,
)

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
"""One intra-op thread: on a shared 2-core machine spinning OpenMP threads only slow the run down."""

_NO_DAC = ["--bounding-set", "-dac_override,-dac_read_search"]


def cli_command(*args) -> list[str]:
    return [sys.executable, "-m", "smooth_infomax", *map(str, args)]


def run_subprocess(command: list[str], timeout_s: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env=ENV, check=False, timeout=timeout_s)


def run_with_locked(path: Path, command: list[str]) -> subprocess.CompletedProcess:
    """Run ``command`` (honouring permissions) while ``path`` has mode 0, then restore its mode."""
    command = honouring_permissions(command)
    mode = path.stat().st_mode
    path.chmod(0)
    try:
        return run_subprocess(command)
    finally:
        path.chmod(mode)


def honouring_permissions(command: list[str]) -> list[str]:
    """``command`` run so that file permission bits apply to it. Root bypasses them through CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH, so as root it runs under ``setpriv`` with both dropped from its bounding set."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv: cannot drop CAP_DAC_OVERRIDE to make a file unreadable")
    if subprocess.run([setpriv, *_NO_DAC, "true"], capture_output=True, check=False).returncode:
        pytest.skip("running as root without CAP_SETPCAP: cannot drop CAP_DAC_OVERRIDE to make a file unreadable")
    return [setpriv, *_NO_DAC, *command]


def temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if ".tmp-" in p.name or ".old-" in p.name]


@contextlib.contextmanager
def running(command: list[str], **popen_args):
    """``command`` started in the background, killed on the way out if it still runs (a failed test)."""
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               **popen_args)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.communicate()


def wait_for(condition, process: subprocess.Popen, timeout_s: float = 180) -> bool:
    """Poll ``condition()`` every half millisecond while ``process`` runs; whether it became true. The timeout is
    generous: on a loaded 2-core machine importing torch alone can take tens of seconds."""
    deadline = time.monotonic() + timeout_s
    while process.poll() is None and time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.0005)
    return False


def identity(path: Path) -> tuple[int, int]:
    status = path.stat()
    return status.st_ino, status.st_mtime_ns


# ---- 4: an OUT_DIR holding outputs made with other settings ----------------------------------------------------

@pytest.mark.parametrize(("first", "second", "named"), [
    (["--modules", "0"], ["--modules", "2"], "--modules 0 there, 2 now"),
    (["--what", "mean"], ["--what", "mean,logvar"], "--what mean there, mean,logvar now"),
    (["--dtype", "float16"], [], "--dtype float16 there, float32 now"),
    ([], ["--model", "other"], "--model"),
])
def test_out_dir_with_other_settings_is_refused_unless_force(tmp_path, tiny_model, first, second, named):
    write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    write_audio(tmp_path / "in" / "b.wav", 0.3, seed=2)
    other = save_model(tmp_path / "other-model", tiny_config(), seed=5)
    second = [str(other) if arg == "other" else arg for arg in second]
    out = tmp_path / "out"
    base = [tmp_path / "in", out, "--num-workers", 0, "--quiet"]
    model = [] if "--model" in second else ["--model", tiny_model]
    assert run_cli([*base, "--model", tiny_model, *first]).exit_code == 0
    before = {name: identity(path) for name, path in output_files(out).items()}

    refused = run_cli([*base, *model, *second])
    assert refused.exit_code == 2, refused.output
    assert named in refused.stderr and "2 outputs" in refused.stderr and "--force" in refused.stderr
    assert {name: identity(path) for name, path in output_files(out).items()} == before  # nothing replaced

    forced = run_cli([*base, *model, *second, "--force"])
    assert forced.exit_code == 0, forced.output
    assert "2 written" in forced.output and "2 replaced outputs made with other settings" in forced.output
    assert run_cli([*base, *model, *second]).exit_code == 0  # now they match: up to date


def test_changed_input_with_same_settings_is_not_a_conflict(tmp_path, tiny_model):
    audio = write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    args = [tmp_path / "in", tmp_path / "out", "--model", tiny_model, "--num-workers", 0, "--quiet"]
    assert run_cli(args).exit_code == 0
    write_audio(audio, 0.4, seed=2)
    result = run_cli(args)
    assert result.exit_code == 0 and "1 written" in result.output and "replaced" not in result.output


def test_decoded_audio_is_passed_with_its_rate_and_warns_nothing(tmp_path, tiny_model):
    """The run hands ``extract`` 16 kHz audio and says so: no ``sample_rate`` warning per batch."""
    write_audio(tmp_path / "in" / "a.wav", 0.3, rate=22050, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = run_cli([tmp_path / "in", tmp_path / "out", "--model", tiny_model, "--num-workers", 0, "--quiet"])
    assert result.exit_code == 0, result.output


# ---- 7: two unsharded runs on one OUT_DIR; a folder at an output path -------------------------------------------

def test_temp_file_of_a_live_process_is_never_removed(tmp_path, tiny_model):
    write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    out = tmp_path / "out"
    out.mkdir()
    host = socket.gethostname()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        live_temp = out / f".a.wav.safetensors.tmp-{host}-{live.pid}-0123abcd"
        dead_temp = out / f".a.wav.safetensors.tmp-{host}-{dead.pid}-4567abcd"
        live_temp.write_bytes(b"being written")
        dead_temp.write_bytes(b"left by a killed run")
        result = run_cli([tmp_path / "in", out, "--model", tiny_model, "--num-workers", 0, "--quiet"])
        assert result.exit_code == 0, result.output
        assert live_temp.exists()  # its owner still runs
        assert not dead_temp.exists()  # its owner is gone
    finally:
        live.kill()
        live.wait()


@pytest.mark.slow
def test_second_run_on_the_same_out_dir_does_not_break_the_first(tmp_path, tiny_model):
    write_audio(tmp_path / "in" / "long.wav", 20, seed=1)
    out = tmp_path / "out"
    args = [tmp_path / "in", out, "--model", tiny_model, "--num-workers", 0, "--chunk-seconds", 0.05, "--quiet"]
    with running(cli_command(*args)) as first:
        assert wait_for(lambda: temporaries(out), first), "the first run never showed a temporary file"
        first.send_signal(signal.SIGSTOP)  # frozen in the middle of its write
        try:
            second = run_cli(args)
        finally:
            first.send_signal(signal.SIGCONT)
        assert second.exit_code == 0, second.output
        stdout, stderr = first.communicate(timeout=180)
    assert first.returncode == 0, stderr
    assert "1 written, 0 up to date, 0 failed" in stdout and "FAILED" not in stderr
    arrays, meta = load_features(out / "long.wav.safetensors")
    assert arrays["module0.mean"].shape[0] > 0 and meta["fingerprint"]
    assert temporaries(out) == []


@pytest.mark.parametrize(("fmt", "suffix", "make", "words"), [
    ("safetensors", ".safetensors", "folder", "is a folder"),
    ("npz", ".npz", "folder", "is a folder"),
    ("npy", ".features", "file", "is not a folder"),
])
def test_wrong_kind_of_file_at_an_output_path_is_named(tmp_path, tiny_model, fmt, suffix, make, words):
    write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    write_audio(tmp_path / "in" / "b.wav", 0.3, seed=2)
    out = tmp_path / "out"
    blocker = out / f"a.wav{suffix}"
    if make == "folder":
        (blocker / "inside").mkdir(parents=True)
    else:
        out.mkdir()
        blocker.write_text("not an output")
    result = run_cli([tmp_path / "in", out, "--model", tiny_model, "--num-workers", 0, "--format", fmt, "--quiet"])
    assert result.exit_code == 1, result.output
    failures = read_jsonl(out / "failures.jsonl")
    assert [f["source"] for f in failures] == ["a.wav"]
    assert words in failures[0]["reason"] and "closed file" not in failures[0]["reason"]
    assert (out / f"b.wav{suffix}").exists()
    assert temporaries(out) == []  # no full-size temporary file left behind


def test_writer_abort_after_a_failed_commit_keeps_the_real_error(tmp_path):
    final = tmp_path / "a.wav.safetensors"
    final.mkdir()
    writer = SafetensorsWriter(final, {"module0.mean": ((4, 3), np.dtype("<f4"))}, {"format": "test"})
    writer.write_rows("module0.mean", 0, np.ones((4, 3), np.float32))
    with pytest.raises(IsADirectoryError):
        writer.commit()
    writer.abort()
    writer.abort()  # idempotent
    assert [p.name for p in tmp_path.iterdir()] == ["a.wav.safetensors"]


# ---- 8: bad manifest lines, UTF-8 BOM ---------------------------------------------------------------------------

@pytest.mark.parametrize(("line", "words"), [
    (".", "IN_DIR itself"),
    ("{not json", "invalid JSON"),
    ('{"file": "a.wav"}', "'path' or 'audio_filepath'"),
    ('{"path": 3}', "'path' or 'audio_filepath'"),
    ("\tsecond column", "empty path"),
    ('{"path": "a\\u0000.wav"}', "NUL"),
])
def test_bad_manifest_line_is_a_usage_error_naming_file_and_line(tmp_path, tiny_model, line, words):
    write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    manifest = tmp_path / "list.txt"
    manifest.write_text(f"a.wav\n{line}\n", encoding="utf-8")
    out = tmp_path / "out"
    result = run_cli([tmp_path / "in", out, "--model", tiny_model, "--manifest", manifest, "--num-workers", 0])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1
    assert f"Error: --manifest {manifest}, line 2:" in result.stderr and words in result.stderr
    assert not out.exists()  # nothing written


@pytest.mark.slow
def test_bad_manifest_line_from_the_command_line_is_one_line_without_traceback(tmp_path, tiny_model):
    write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    manifest = tmp_path / "list.txt"
    manifest.write_text("a.wav\n{not json\n", encoding="utf-8")
    result = run_subprocess(cli_command(tmp_path / "in", tmp_path / "out", "--model", tiny_model, "--manifest",
                                        manifest, "--num-workers", 0))
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"Error: --manifest {manifest}, line 2: invalid JSON (Expecting property name enclosed " \
                            "in double quotes)\n"


def test_manifest_with_utf8_bom(tmp_path, tiny_model):
    write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    write_audio(tmp_path / "in" / "b.wav", 0.3, seed=2)
    out = tmp_path / "out"
    for number, first_line in enumerate(["a.wav", '{"path": "a.wav"}']):
        manifest = tmp_path / f"list{number}.txt"
        manifest.write_bytes(b"\xef\xbb\xbf" + f"{first_line}\nb.wav\n".encode())
        result = run_cli([tmp_path / "in", out / str(number), "--model", tiny_model, "--manifest", manifest,
                          "--num-workers", 0, "--quiet"])
        assert result.exit_code == 0, result.output
        assert sorted(output_files(out / str(number))) == ["a.wav.safetensors", "b.wav.safetensors"]


# ---- 9: Ctrl-C --------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ctrl_c_prints_the_summary_removes_temp_files_and_exits_130(tmp_path, tiny_model):
    for i in range(3):  # shorter than a chunk: written first, one per batch
        write_audio(tmp_path / "in" / f"short{i}.wav", 0.04, seed=i)
    write_audio(tmp_path / "in" / "long.wav", 40, seed=9)
    out = tmp_path / "out"
    args = [tmp_path / "in", out, "--model", tiny_model, "--num-workers", 1, "--chunk-seconds", 0.05,
            "--batch-seconds", 0.04, "--quiet"]
    with running(cli_command(*args), start_new_session=True) as run:
        writing_long = wait_for(lambda: any(p.name.startswith(".long.wav") for p in temporaries(out)), run)
        assert writing_long, "the run never started writing long.wav"
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C does: the whole foreground process group, workers included
        stdout, stderr = run.communicate(timeout=180)
    assert run.returncode == 130, stderr
    assert "interrupted" in stdout and "3 written, 0 up to date, 0 failed, 1 not processed" in stdout, stdout
    assert "Traceback" not in stderr
    assert temporaries(out) == []
    assert sorted(output_files(out)) == [f"short{i}.wav.safetensors" for i in range(3)]
    resumed = run_cli(args)
    assert resumed.exit_code == 0 and "1 written, 3 up to date" in resumed.output


# ---- 10: unlistable folders, OUT_DIR == IN_DIR ------------------------------------------------------------------

@pytest.mark.slow
def test_unlistable_subfolder_is_a_failure(tmp_path, tiny_model):
    write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    hidden = tmp_path / "in" / "locked"
    write_audio(hidden / "b.wav", 0.3, seed=2)
    out = tmp_path / "out"
    result = run_with_locked(hidden, cli_command(tmp_path / "in", out, "--model", tiny_model, "--num-workers", 0))
    assert result.returncode == 1, result.stderr
    assert "FAILED locked/: cannot list folder (Permission denied)" in result.stderr
    assert "1 written, 0 up to date, 1 failed" in result.stdout
    failures = read_jsonl(out / "failures.jsonl")
    assert failures == [{"source": "locked/", "path": str(hidden), "reason": "cannot list folder (Permission denied)"}]


def test_out_dir_equal_to_in_dir_is_refused(tmp_path, tiny_model):
    root = tmp_path / "in"
    write_audio(root / "a.wav", 0.3, seed=1)
    os.symlink(root, tmp_path / "alias")
    for out in (root, tmp_path / "alias", root / "sub" / ".."):
        result = run_cli([root, out, "--model", tiny_model, "--num-workers", 0])
        assert result.exit_code == 2, result.output
        assert "OUT_DIR is IN_DIR" in result.stderr
    assert sorted(p.name for p in root.iterdir()) == ["a.wav"]


# ---- 11: non-UTF-8 file names, unreadable files -----------------------------------------------------------------

def test_file_name_with_a_non_utf8_byte_is_processed_and_round_trips(tmp_path, tiny_model):
    root, out = tmp_path / "in", tmp_path / "out"
    folder = Path(os.fsdecode(bytes(root) + b"/d\xe9j\xe0"))
    name = os.fsdecode(b"caf\xe9.wav")
    folder.mkdir(parents=True)
    os.rename(write_audio(root / "tmp.wav", 0.3, seed=1), folder / name)  # soundfile cannot write to such a name
    write_audio(root / "plain.wav", 0.3, seed=2)
    result = run_cli([root, out, "--model", tiny_model, "--num-workers", 0, "--quiet"])
    assert result.exit_code == 0, result.output
    output = out / folder.name / f"{name}.safetensors"  # the same bytes as the input's name
    assert output.is_file()
    arrays, meta = load_features(output)
    assert arrays["module0.mean"].shape[0] > 0
    assert meta["source"] == "d\\xe9j\\xe0/caf\\xe9.wav"  # readable
    assert bytes.fromhex(meta["source_key_hex"]) == b"d\xe9j\xe0/caf\xe9.wav"  # exact
    assert json.loads(meta["json"])["source_key_hex"] == meta["source_key_hex"]
    plain = load_features(out / "plain.wav.safetensors")[1]
    assert bytes.fromhex(plain["source_key_hex"]).decode() == plain["source"] == "plain.wav"
    again = run_cli([root, out, "--model", tiny_model, "--num-workers", 0, "--quiet"])
    assert again.exit_code == 0 and "0 written, 2 up to date" in again.output


@pytest.mark.slow
def test_unreadable_file_says_permission_denied(tmp_path, tiny_model):
    write_audio(tmp_path / "in" / "a.wav", 0.3, seed=1)
    locked = write_audio(tmp_path / "in" / "locked.wav", 0.3, seed=2)
    out = tmp_path / "out"
    result = run_with_locked(locked, cli_command(tmp_path / "in", out, "--model", tiny_model, "--num-workers", 0))
    assert result.returncode == 1, result.stderr
    assert "FAILED locked.wav: cannot access file (Permission denied)" in result.stderr
    assert "System error" not in result.stderr


# ---- 14: the documented shard rule is the code's ----------------------------------------------------------------

def test_documented_shard_rule_is_the_code(tmp_path):
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    rule = re.search(r"`--shard I/N` keeps the inputs whose `(.+?)` equals `I`", text)
    assert rule, "docs/cli.md no longer states the shard rule as a Python expression"
    keys = [f"spk{i}/utt{i}.wav" for i in range(200)] + [os.fsdecode(b"caf\xe9.wav"), "ünï/音声.flac"]
    for count in (1, 2, 3, 7, 1000):
        for key in keys:
            documented = eval(rule.group(1), {"hashlib": hashlib, "key": key, "N": count})
            assert documented == shard_of(Source(PurePosixPath(key), tmp_path / key), count), (key, count)
