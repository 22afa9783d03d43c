"""The stages of ``sim-extract`` (``smooth_infomax/extraction/``): one home for defaults, and failures reported by
the stage that failed (a long file's compute failure is a compute failure, not a failed write)."""

from pathlib import Path

import pytest

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.cli import main
from smooth_infomax.extraction import RunOptions, run
from smooth_infomax.extraction import formats as formats_module
from smooth_infomax.extraction.report import read_jsonl
from smooth_infomax.extraction.settings import DEFAULT_NUM_WORKERS
from test_cli_common import output_files, tiny_model_fixture, write_audio  # noqa: F401 (fixtures)


def test_cli_defaults_are_the_python_api_defaults(tmp_path):
    """``sim-extract IN OUT`` and ``RunOptions(IN, OUT)`` run with the same options, taken from one place."""
    context = main.make_context("sim-extract", [str(tmp_path), str(tmp_path / "out")])
    assert RunOptions(**context.params) == RunOptions(tmp_path, tmp_path / "out")
    defaults = RunOptions(tmp_path, tmp_path / "out")
    cli = {param.name: param.default for param in main.params}
    for name in ("dtype", "fmt", "chunk_seconds", "batch_seconds", "num_workers", "device", "skip_existing"):
        assert cli[name] is getattr(defaults, name), name  # the same objects, not copies that could drift
    assert defaults.num_workers == DEFAULT_NUM_WORKERS


def _options(tmp_path: Path, model: Path) -> RunOptions:
    return RunOptions(tmp_path / "in", tmp_path / "out", model=str(model), what=("mean", "logvar"),
                      chunk_seconds=0.5, num_workers=0, quiet=True)


def _corpus(tmp_path: Path) -> None:
    write_audio(tmp_path / "in" / "long.wav", 2.0, seed=1)
    write_audio(tmp_path / "in" / "short.wav", 0.3, seed=2)


def _temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if ".tmp-" in p.name]


def test_compute_failure_of_a_long_file_is_a_compute_failure(tmp_path, tiny_model, monkeypatch):
    """The rows of a long file are computed chunk by chunk during its write; the model failing after the first
    chunk is still reported as a compute failure, and nothing is left under the output name."""
    real = SmoothInfoMaxEncoder.extract_chunks

    def fails_after_one_chunk(self, *args, **kwargs):
        chunks = real(self, *args, **kwargs)
        yield next(chunks)
        raise RuntimeError("out of memory in chunk 2")

    monkeypatch.setattr(SmoothInfoMaxEncoder, "extract_chunks", fails_after_one_chunk)
    _corpus(tmp_path)
    summary = run(_options(tmp_path, tiny_model), echo=lambda _line: None)
    assert summary.written == 1 and summary.exit_code == 1
    [failure] = summary.failures
    assert (failure.key, failure.stage) == ("long.wav", "compute")
    assert failure.reason == "compute failed (RuntimeError: out of memory in chunk 2)"
    logged = read_jsonl(tmp_path / "out" / "failures.jsonl")
    assert [(f["source"], f["reason"]) for f in logged] == [("long.wav", failure.reason)]
    assert sorted(output_files(tmp_path / "out")) == ["short.wav.safetensors"]
    assert _temporaries(tmp_path / "out") == []


def test_compute_failure_of_a_batch_fails_its_files_at_compute(tmp_path, tiny_model, monkeypatch):
    def fails(self, *args, **kwargs):
        raise RuntimeError("no memory")

    monkeypatch.setattr(SmoothInfoMaxEncoder, "extract", fails)
    write_audio(tmp_path / "in" / "short.wav", 0.3, seed=2)
    summary = run(_options(tmp_path, tiny_model), echo=lambda _line: None)
    assert [(f.key, f.stage, f.reason) for f in summary.failures] == [
        ("short.wav", "compute", "compute failed (RuntimeError: no memory)")]


@pytest.mark.parametrize("name", ["long.wav", "short.wav"])
def test_write_failure_is_a_write_failure(tmp_path, tiny_model, monkeypatch, name):
    real = formats_module.SafetensorsStream.write_rows

    def disk_full_for(self, key, start_row, rows):
        if f"/.{name}." in str(self._file.name):
            raise OSError(28, "No space left on device")
        real(self, key, start_row, rows)

    monkeypatch.setattr(formats_module.SafetensorsStream, "write_rows", disk_full_for)
    _corpus(tmp_path)
    summary = run(_options(tmp_path, tiny_model), echo=lambda _line: None)
    assert [(f.key, f.stage) for f in summary.failures] == [(name, "write")]
    assert "No space left on device" in summary.failures[0].reason
    assert summary.written == 1 and _temporaries(tmp_path / "out") == []
