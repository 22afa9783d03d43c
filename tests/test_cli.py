"""``sim-extract``: outputs equal ``extract``, mirrored tree, metadata, formats, skip-existing and options."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from smooth_infomax import SmoothInfoMaxEncoder, __version__
from smooth_infomax.extraction import load_features
from smooth_infomax.extraction.report import read_jsonl
from smooth_infomax.extraction.store import draw_sample
from smooth_infomax.inference import slow_dtype_reason
from smooth_infomax.model_list import model_list_lines
from test_cli_common import (
    assert_same_outputs,
    output_files,
    reference,
    run_cli,
    sim_model_fixture,  # noqa: F401 (fixtures)
    tiny_model_fixture,  # noqa: F401 (fixtures)
    write_audio,
)


@pytest.mark.slow
def test_outputs_equal_extract_with_mixed_batch_and_long_file(tmp_path, sim_model):
    """Real ``sim`` preset: one batch of 4 mixed lengths (one stereo 44.1 kHz) and a file 4x the chunk length."""
    files = {"a.wav": (0.31, 16000, 1), "sub/b.flac": (0.45, 16000, 1), "sub/deep/c.wav": (0.55, 44100, 2),
             "sub/d.wav": (0.2, 16000, 1), "long.wav": (2.5, 16000, 1)}
    for i, (name, (seconds, rate, channels)) in enumerate(files.items()):
        write_audio(tmp_path / "in" / name, seconds, rate, channels, seed=i)
    out = tmp_path / "out"
    result = run_cli([tmp_path / "in", out, "--model", sim_model, "--what", "mean,logvar,sample",
                      "--batch-seconds", 5, "--chunk-seconds", 0.6, "--num-workers", 0])
    assert result.exit_code == 0, result.output
    assert sorted(output_files(out)) == sorted(f"{name}.safetensors" for name in files)
    encoder = SmoothInfoMaxEncoder.from_pretrained(sim_model)
    for name, spec in files.items():
        arrays, meta = load_features(out / f"{name}.safetensors")
        expected = reference(encoder, tmp_path / "in" / name)
        assert sorted(arrays) == sorted([*expected, *(f"module{m}.sample" for m in range(3))])
        for key, value in expected.items():
            np.testing.assert_allclose(arrays[key], value, atol=1e-4 if name == "long.wav" else 1e-5, rtol=0)
        for m in range(3):  # samples follow the documented recipe from mean, logvar and the stored seed
            mean, logvar = (torch.from_numpy(arrays[f"module{m}.{w}"]) for w in ("mean", "logvar"))
            redrawn = draw_sample(mean, logvar, int(meta["seed"]), m, 0).numpy()
            np.testing.assert_allclose(arrays[f"module{m}.sample"], redrawn, atol=1e-5, rtol=0)
        _check_metadata(meta, name, spec, str(sim_model))


def _check_metadata(meta, name, spec, model):
    seconds, rate, channels = spec
    assert meta["model"] == model and meta["model_revision"] == ""
    assert meta["smooth_infomax_version"] == __version__
    assert meta["sample_rate"] == "16000" and meta["hop_samples"] == "20,80,160,160"
    assert meta["source"] == name and int(meta["source_sample_rate"]) == rate
    assert float(meta["source_duration_s"]) == pytest.approx(seconds, abs=1e-4)
    assert int(meta["source_channels"]) == channels
    assert ("resample" in meta["resampler"]) == (rate != 16000)
    info = json.loads(meta["json"])
    assert [m["hop_samples"] for m in info["module_info"]] == [20, 80, 160, 160]
    assert info["module_info"][3]["keys"] == ["module3.mean"]


@pytest.mark.parametrize("fmt", ["npz", "npy"])
def test_other_formats_and_float16(tmp_path, tiny_model, fmt):
    for i in range(2):
        write_audio(tmp_path / "in" / f"x{i}.wav", 0.4 + 0.2 * i, seed=i)
    common = [tmp_path / "in", "--model", tiny_model, "--what", "mean,logvar", "--num-workers", 0]
    assert run_cli([common[0], tmp_path / "ref", *common[1:]]).exit_code == 0
    result = run_cli([common[0], tmp_path / fmt, *common[1:], "--format", fmt, "--dtype", "float16"])
    assert result.exit_code == 0, result.output
    suffix = {"npz": ".npz", "npy": ".features"}[fmt]
    for i in range(2):
        ref, ref_meta = load_features(tmp_path / "ref" / f"x{i}.wav.safetensors")
        got, meta = load_features(tmp_path / fmt / f"x{i}.wav{suffix}")
        assert sorted(got) == sorted(ref) and meta["dtype"] == "float16"
        assert meta["source_sha256"] == ref_meta["source_sha256"]
        for key in ref:
            assert got[key].dtype == np.float16
            np.testing.assert_allclose(got[key].astype(np.float32), ref[key], atol=2e-3, rtol=2e-3)
    if fmt == "npz":  # a plain np.load, no pickle
        with np.load(tmp_path / "npz" / "x0.wav.npz", allow_pickle=False) as archive:
            assert json.loads(archive["__metadata__"].tobytes())["format"] == "smooth-infomax-features"


def test_skip_existing_fingerprints_and_force(tmp_path, tiny_model):
    inputs = [write_audio(tmp_path / "in" / f"f{i}.wav", 0.3, seed=i) for i in range(3)]
    out, args = tmp_path / "out", [tmp_path / "in", tmp_path / "out", "--model", tiny_model, "--num-workers", 0]
    assert run_cli(args).exit_code == 0
    stamps = {n: p.stat().st_mtime_ns for n, p in output_files(out).items()}
    assert "0 written, 3 up to date" in run_cli(args).output
    write_audio(inputs[0], 0.3, seed=99)  # new content
    os.utime(inputs[1], ns=(1, 1))  # new mtime, same content: hashed, not recomputed
    assert "1 written, 2 up to date" in run_cli(args).output
    assert output_files(out)["f1.wav.safetensors"].stat().st_mtime_ns == stamps["f1.wav.safetensors"]
    changed = run_cli(args + ["--what", "mean,logvar"])  # a setting changed: refused, nothing replaced
    assert changed.exit_code == 2 and "--what mean there, mean,logvar now" in changed.stderr
    forced = run_cli(args + ["--what", "mean,logvar", "--force"]).output
    assert "3 written" in forced and "3 replaced outputs made with other settings" in forced
    assert "3 written" in run_cli(args + ["--what", "mean,logvar", "--force"]).output
    entries = read_jsonl(out / "manifest.jsonl")
    assert [e["status"] for e in entries].count("written") == 3 + 1 + 3 + 3
    assert not list(out.glob(".*"))  # no temporary files left


def test_dry_run_writes_nothing_and_estimates_size(tmp_path, tiny_model):
    for i in range(3):
        write_audio(tmp_path / "in" / f"f{i}.wav", 0.25 * (i + 1), seed=i)
    args = [tmp_path / "in", tmp_path / "out", "--model", tiny_model, "--what", "mean,logvar", "--num-workers", 0]
    result = run_cli(args + ["--dry-run"])
    assert result.exit_code == 0 and not (tmp_path / "out").exists()
    assert "would compute f2.wav" in result.output
    estimate = int(result.output.split("estimated output size:")[1].split("(")[1].split()[0])
    assert run_cli(args).exit_code == 0
    actual = sum(p.stat().st_size for p in output_files(tmp_path / "out").values())
    assert abs(estimate - actual) < 3 * 4096


@pytest.mark.parametrize("bad, message", [
    (["--shard", "2/2"], "0 <= I < N"), (["--modules", "7"], "module indices"), (["--what", "mode"], "subset"),
    (["--model", "/nonexistent/model"], "cannot load model"), (["--device", "cuda:9"], "device"),
])
def test_usage_and_setup_errors_exit_2(tmp_path, tiny_model, bad, message):
    write_audio(tmp_path / "in" / "a.wav", 0.2)
    base = [tmp_path / "in", tmp_path / "out", "--model", tiny_model]
    result = run_cli(base + bad)
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "out").exists()


def test_default_model_is_the_shipped_one(tmp_path):
    (tmp_path / "in").mkdir()
    result = run_cli([tmp_path / "in", tmp_path / "out", "--dry-run"])
    assert result.exit_code == 0 and "sim-mix" in result.output


def test_list_models_shows_shipped_and_cached(tmp_path, tiny_model):
    result = run_cli(["--list-models"])
    assert result.exit_code == 0 and "shipped models" in result.output and "cached Hub models" in result.output
    snapshot = tmp_path / "cache" / "models--org--sim-tiny" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    for name in ("config.json", "model.safetensors"):
        (snapshot / name).write_bytes((tiny_model / name).read_bytes())
    (tmp_path / "cache" / "models--org--sim-tiny" / "refs").mkdir()
    (tmp_path / "cache" / "models--org--sim-tiny" / "refs" / "main").write_text("a" * 40)
    assert any("org/sim-tiny  main (aaaaaaaaaaaa)" in line for line in model_list_lines(tmp_path / "cache"))


def test_python_m_entry_point_is_the_cli():
    import smooth_infomax.__main__ as entry

    assert entry.main is run_cli.__globals__["main"]


@pytest.mark.slow
def test_workers_bf16_and_empty_input(tmp_path, tiny_model):
    for i in range(3):
        write_audio(tmp_path / "in" / f"f{i}.wav", 0.2 + 0.1 * i, seed=i)
    base = [tmp_path / "in", "--model", tiny_model]
    assert run_cli([base[0], tmp_path / "w0", *base[1:], "--num-workers", 0]).exit_code == 0
    assert run_cli([base[0], tmp_path / "w1", *base[1:], "--num-workers", 1]).exit_code == 0
    assert_same_outputs(tmp_path / "w0", tmp_path / "w1", atol=0)
    bf16 = run_cli([base[0], tmp_path / "bf", *base[1:], "--num-workers", 0, "--bf16"])
    assert bf16.exit_code == 0
    a, meta = load_features(tmp_path / "bf" / "f2.wav.safetensors")
    b, _ = load_features(tmp_path / "w0" / "f2.wav.safetensors")
    assert meta["compute_dtype"] == "bfloat16"
    slow = slow_dtype_reason(torch.bfloat16, torch.device("cpu")) is not None
    assert ("warning: --bf16: this CPU has no native bfloat16" in bf16.stderr) == slow
    assert "SlowDtypeWarning" not in bf16.stderr  # said once, as a warning line
    np.testing.assert_allclose(a["module2.mean"], b["module2.mean"], atol=0.1, rtol=0.1)
    (tmp_path / "empty").mkdir()
    assert run_cli([tmp_path / "empty", tmp_path / "o", "--model", tiny_model]).exit_code == 0


def test_sample_rate_of_written_audio_is_irrelevant_to_paths(tmp_path, tiny_model):
    """Two files differing only by extension in one folder do not collide."""
    write_audio(tmp_path / "in" / "same.wav", 0.3, seed=1)
    write_audio(tmp_path / "in" / "same.flac", 0.3, seed=2)
    assert run_cli([tmp_path / "in", tmp_path / "out", "--model", tiny_model, "--num-workers", 0]).exit_code == 0
    assert sorted(output_files(tmp_path / "out")) == ["same.flac.safetensors", "same.wav.safetensors"]
    a, _ = load_features(tmp_path / "out" / "same.wav.safetensors")
    b, _ = load_features(tmp_path / "out" / "same.flac.safetensors")
    assert not np.allclose(a["module0.mean"], b["module0.mean"])
    assert sf.info(str(tmp_path / "in" / "same.flac")).samplerate == 16000
