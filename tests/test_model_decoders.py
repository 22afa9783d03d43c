"""Decoders shipped inside a model folder: the encoder pin, finding them without ``--decoder`` (locally
and on the Hub), the resumable training recipe, the held-out evaluation, the decoding subcommands with shifts in
posterior standard deviations, and the shipped model's own decoders when it has them."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
import soundfile as sf
import torch
from click.testing import CliRunner

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax import hub as sim_hub
from smooth_infomax.analysis.cli import main as analyze
from smooth_infomax.analysis.decoder import decoder_subfolder
from smooth_infomax.analysis.latents import posterior_sd, shift_grid_sd
from smooth_infomax.analysis.logmel import LogMelDecoder, LogMelSettings, log_mel, logmel_config_for
from smooth_infomax.analysis.model_decoders import (
    PinMismatchError,
    encoder_pin,
    find_decoders,
    load_decoder,
    load_model_decoder,
)
from test_analysis_report import save_tiny, write_corpus
from training import decoder_eval, train_decoders
from training.checkpoint import checkpoint_path

TINY = ["--steps", "3", "--batch-size", "2", "--crop-samples", "3200", "--logmel-hidden", "8",
        "--waveform-hidden", "4", "--checkpoint-every", "2", "--log-every", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model folder with log-mel decoders for modules 0-2 and a waveform decoder for module 2, trained for 3
    steps by the recipe on a generated corpus."""
    root = tmp_path_factory.mktemp("shipped")
    corpus = write_corpus(root / "corpus")
    model = save_tiny(root / "model", "gaussian", 0)
    train_decoders.main(["--model", str(model), "--data", str(corpus), "--out", str(model / "decoders"),
                         "--run-dir", str(root / "run"), *TINY])
    return corpus, model, root


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return {f"{p.parent.parent.name}/{p.parent.name}/{k}": v for p in sorted(folder.glob("*/*/model.safetensors"))
            for k, v in load_file(str(p)).items()}


def test_recipe_writes_pinned_decoders_with_a_record(trained):
    _, model, _ = trained
    found, commit = find_decoders(model)
    assert commit is None
    assert [(f.module, f.kind) for f in found] == [(0, "logmel"), (1, "logmel"), (2, "logmel"), (2, "waveform")]
    config = json.loads((model / decoder_subfolder(2, "logmel") / "config.json").read_text())
    assert config["encoder_sha256"] == sim_hub.file_weights_sha256(model / "model.safetensors")
    assert config["training"]["steps_done"] == 3 and config["training"]["train_seconds"] > 0
    assert config["training"]["held_out"] == "test_split"
    assert all(v.dtype == torch.float16 for v in _weights(model / "decoders").values())


def test_pin_matches_float16_files_and_refuses_other_weights(trained, tmp_path):
    _, model, _ = trained
    encoder = SmoothInfoMaxEncoder.from_pretrained(model)
    encoder.save_pretrained(tmp_path / "half", weights_dtype=torch.float16)
    half = SmoothInfoMaxEncoder.from_pretrained(tmp_path / "half")
    assert encoder_pin(half) == sim_hub.file_weights_sha256(tmp_path / "half" / "model.safetensors")
    decoder = load_model_decoder(model, encoder, "logmel", 2)
    assert isinstance(decoder, LogMelDecoder) and decoder.module == 2
    other = save_tiny(tmp_path / "other", "gaussian", 7)
    other_encoder = SmoothInfoMaxEncoder.from_pretrained(other)
    with pytest.raises(PinMismatchError) as refused:
        load_decoder(model, decoder_subfolder(2, "logmel"), encoder_sha256=encoder_pin(other_encoder))
    assert encoder_pin(encoder) in str(refused.value) and encoder_pin(other_encoder) in str(refused.value)
    result = CliRunner().invoke(analyze, ["traverse", str(other), str(next(trained[0].rglob("*.flac"))),
                                          str(tmp_path / "t"), "--dims", "0", "--decoder",
                                          str(model / decoder_subfolder(2, "logmel"))])
    assert result.exit_code != 0 and "sha256" in result.output


def test_training_resumes_exactly(trained, tmp_path):
    corpus, model, _ = trained
    common = ["--model", str(model), "--data", str(corpus), *TINY[2:], "--logmel-modules", "2",
              "--weights-dtype", "float32"]
    train_decoders.main([*common, "--steps", "4", "--out", str(tmp_path / "a"), "--run-dir", str(tmp_path / "ra")])
    train_decoders.main([*common, "--steps", "2", "--out", str(tmp_path / "b"), "--run-dir", str(tmp_path / "rb")])
    with pytest.raises(SystemExit, match="--resume"):
        train_decoders.main([*common, "--steps", "4", "--out", str(tmp_path / "b"), "--run-dir", str(tmp_path / "rb")])
    train_decoders.main([*common, "--steps", "4", "--out", str(tmp_path / "b"), "--run-dir", str(tmp_path / "rb"),
                         "--resume"])
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 4
    assert all(torch.equal(a[k], b[k]) for k in a)
    record = json.loads((tmp_path / "b" / "module-2" / "logmel" / "config.json").read_text())["training"]
    assert record["steps_done"] == 4


def test_cli_finds_the_model_decoders_and_writes_png_and_wav(trained, tmp_path):
    corpus, model, _ = trained
    audio = sorted(corpus.rglob("*.flac"))
    runner = CliRunner()
    for kind in ("logmel", "waveform"):
        out = tmp_path / f"trav-{kind}"
        result = runner.invoke(analyze, ["traverse", str(model), str(audio[0]), str(out), "--dims", "0,5",
                                         "--shift-sd", "-2,0,2", "--decoder-kind", kind], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert (out / "traversal.png").read_bytes()[:4] == b"\x89PNG" and len(list(out.glob("*.wav"))) == 6
        assert sf.info(str(next(out.glob("*.wav")))).frames == sf.info(str(audio[0])).frames
        record = json.loads((out / "traversal.json").read_text())
        assert record["module"] == 2 and record["unit"] == "sd" and record["shift_sd"] == [-2, 0, 2]
    result = runner.invoke(analyze, ["reconstruct", str(model), str(audio[0]), str(tmp_path / "rec")],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "rec" / "reconstruction.png").is_file() and len(list((tmp_path / "rec").glob("*.wav"))) == 4
    result = runner.invoke(analyze, ["interpolate", str(model), str(audio[0]), str(audio[5]), str(tmp_path / "mix"),
                                     "--steps", "3", "--top-k", "2", "--module", "1"], catch_exceptions=False)
    assert result.exit_code == 0 and len(list((tmp_path / "mix").glob("*.wav"))) == 6
    result = runner.invoke(analyze, ["prior", str(model), str(tmp_path / "prior"), "-n", "2", "--seconds", "0.2"],
                           catch_exceptions=False)
    assert result.exit_code == 0 and len(list((tmp_path / "prior").glob("*.wav"))) == 2
    missing = runner.invoke(analyze, ["traverse", str(save_tiny(tmp_path / "bare", "gaussian", 0)), str(audio[0]),
                                      str(tmp_path / "x"), "--dims", "0"])
    assert missing.exit_code != 0 and "training.train_decoders" in missing.output


def test_shifts_are_in_posterior_standard_deviations():
    mean, logvar = torch.randn(6, 4), torch.randn(6, 4)
    sd = posterior_sd(mean, logvar)
    assert torch.allclose(sd, torch.exp(logvar / 2).mean(0))
    grid = shift_grid_sd(mean, sd, [1, 3], [-2.0, 0.0, 2.0])
    assert grid.shape == (2, 3, 6, 4)
    assert torch.allclose(grid[0, 2, :, 1] - mean[:, 1], 2 * sd[1].expand(6))
    assert torch.equal(grid[0, 2][:, [0, 2, 3]], mean[:, [0, 2, 3]]) and torch.equal(grid[1, 1], mean)
    assert torch.allclose(posterior_sd(mean, None), mean.std(0))


def test_held_out_evaluation_against_the_per_clip_mean(trained):
    corpus, model, _ = trained
    encoder = SmoothInfoMaxEncoder.from_pretrained(model)
    decoders = decoder_eval.model_decoders(str(model), encoder)
    audio = decoder_eval.held_out_audio(corpus, max_utterances=3)
    results = decoder_eval.evaluate(encoder, decoders, audio)
    assert set(results) == {"module-0/logmel", "module-1/logmel", "module-2/logmel", "module-2/waveform"}
    for r in results.values():
        assert r["baseline_mae"] > 0 and r["ratio"] == pytest.approx(r["logmel_mae"] / r["baseline_mae"])
    # the baseline is the mean absolute deviation of each clip's log-mel from its own mean spectrum
    wave = torch.from_numpy(audio[0][: len(audio[0]) // 160 * 160])
    target = log_mel(wave[None], LogMelSettings(), frames=len(wave) // 160)
    assert float((target - target.mean(1, keepdim=True)).abs().mean()) > 0


def test_float16_decoders_compared_with_their_float32_checkpoint(trained, tmp_path, capsys):
    corpus, model, root = trained
    out = tmp_path / "eval.json"
    decoder_eval.main(["--model", str(model), "--data", str(corpus), "--max-utterances", "2", "--out", str(out),
                       "--compare-float32", str(root / "run")])
    record = json.loads(out.read_text())
    assert set(record["results"]) == {"module-0/logmel", "module-1/logmel", "module-2/logmel", "module-2/waveform"}
    pairs = record["float16_vs_float32"]["decoders"]
    assert set(pairs) == set(record["results"])
    for name, p in pairs.items():
        assert p["logmel_mae_float16"] == record["results"][name]["logmel_mae"]
        assert p["relative_difference"] == pytest.approx(
            (p["logmel_mae_float16"] - p["logmel_mae_float32"]) / p["logmel_mae_float32"])
    assert "float16 vs float32" in capsys.readouterr().out
    # the float32 twins hold the checkpoint's unrounded weights, which the float16 files round
    encoder = SmoothInfoMaxEncoder.from_pretrained(model)
    decoders = decoder_eval.model_decoders(str(model), encoder)
    twins = decoder_eval.float32_twins(decoders, checkpoint_path(root / "run", 3), encoder_pin(encoder))
    assert set(twins) == {f"{name} float32" for name in decoders}
    for name, decoder in decoders.items():
        half, full = decoder.state_dict(), twins[f"{name} float32"].state_dict()
        assert all(torch.equal(full[k].half().float(), half[k]) for k in half)
        assert any(not torch.equal(full[k], half[k]) for k in half)
    # a checkpoint of another step, or of another encoder, is refused
    with pytest.raises(SystemExit, match="step 2"):
        decoder_eval.float32_twins(decoders, checkpoint_path(root / "run", 2), encoder_pin(encoder))
    with pytest.raises(SystemExit, match="sha256"):
        decoder_eval.float32_twins(decoders, checkpoint_path(root / "run", 3), "0" * 64)


def test_decoders_found_in_a_hub_repo(trained, hub, tmp_path):
    _, model, _ = trained
    repo_id = f"sim-team/shipped-{uuid.uuid4().hex[:8]}"
    sim_hub.upload_folder(model, repo_id)
    encoder = SmoothInfoMaxEncoder.from_pretrained(repo_id, cache_dir=tmp_path)
    found, commit = find_decoders(repo_id, encoder.revision, cache_dir=tmp_path)
    assert commit == encoder.revision and {(f.module, f.kind) for f in found} >= {(2, "logmel"), (2, "waveform")}
    decoder = load_decoder(repo_id, decoder_subfolder(2, "logmel"), commit, encoder_pin(encoder), cache_dir=tmp_path)
    assert decoder.revision == commit and decoder.config == LogMelDecoder.from_pretrained(
        model / decoder_subfolder(2, "logmel")).config


def test_logmel_decoder_shapes():
    from test_cli_common import tiny_config

    config = logmel_config_for(tiny_config(channels=8), 1, hidden_channels=8)
    assert config.hop_samples == 80 and config.n_mels == 80
    decoder = LogMelDecoder(config)
    assert decoder(torch.randn(2, 7, 8)).shape == (2, 7, 80)


def _shipped_decoders() -> Path | None:
    folder = sim_hub.shipped_models().get(sim_hub.DEFAULT_MODEL)
    return folder if folder is not None and (folder / "decoders").is_dir() else None


@pytest.mark.skipif(_shipped_decoders() is None, reason="the default model ships no decoders yet "
                    "(python -m training.train_decoders)")
def test_shipped_decoders_are_pinned_and_traverse_fast(tmp_path):
    from smooth_infomax.examples import example_files

    encoder = SmoothInfoMaxEncoder.from_pretrained(sim_hub.DEFAULT_MODEL)
    found, _ = find_decoders(sim_hub.DEFAULT_MODEL)
    assert any(f.kind == "logmel" and f.module == 2 for f in found)
    for f in found:
        load_decoder(sim_hub.DEFAULT_MODEL, f.subfolder, encoder_sha256=encoder_pin(encoder))
    start = time.perf_counter()
    result = CliRunner().invoke(analyze, ["traverse", sim_hub.DEFAULT_MODEL, str(example_files()[0]), str(tmp_path),
                                          "--dims", "3,17"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert time.perf_counter() - start < 30 and (tmp_path / "traversal.png").is_file()
