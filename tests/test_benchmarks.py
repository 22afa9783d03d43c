"""The benchmark scripts run end to end at toy sizes and their paths agree (speed is not asserted here).

They run a tiny SIM-shaped model and short training crops: on a CPU without native bfloat16 (AVX2 only), the
bfloat16 paths of the full-size preset run 10-50x slower than float32 and would take minutes here."""

import statistics

import pytest
import soundfile as sf
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.audio import SAMPLE_RATE
from smooth_infomax.config import preset
from test_cli_common import randomise_batch_norm, tiny_model_fixture  # noqa: F401 (fixture)
from training.benchmarks import ceiling, corpus, extraction, gpu, memory, precision, profile, training_step, tricks
from training.benchmarks.flops import flops_per_audio_second
from training.benchmarks.plain import PlainStack


def test_the_plain_stack_loads_the_encoders_weights_and_matches_its_modules():
    """The baseline is honest: stock nn.Conv1d / BatchNorm1d / GRU modules with the encoder's weights compute the
    encoder's features (its modules' own pass, and extract's folded one)."""
    torch.manual_seed(0)
    encoder = randomise_batch_norm(SmoothInfoMaxEncoder.from_preset("sim").eval())
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, torch.nn.BatchNorm1d):  # not the identity affine of a fresh BatchNorm
                module.weight.uniform_(0.5, 1.5), module.bias.uniform_(-0.2, 0.2)
    plain = PlainStack.from_encoder(encoder)
    assert all(isinstance(m, torch.nn.Conv1d) for m in plain.stages[0].encoder[::3])
    wav = 0.1 * torch.randn(SAMPLE_RATE + 1234)
    outputs = plain.features(wav, logvar=True)
    extracted = encoder.extract(wav, sample_rate=SAMPLE_RATE)
    modules_own = encoder.forward_features(wav[None])
    assert len(outputs) == encoder.num_modules
    for m, (mean, logvar) in enumerate(outputs):
        frames = int(extracted[m].lengths[0])
        assert mean.shape == (frames, extracted[m].mean.shape[-1])
        assert (mean - extracted[m].unpad(0)).abs().max() < 1e-4
        assert (mean - modules_own[m].mean[0, :frames]).abs().max() < 1e-4
        assert (logvar is None) == (extracted[m].logvar is None)
        if logvar is not None:
            assert (logvar - extracted[m].unpad(0, "logvar")).abs().max() < 1e-4


def test_the_utterance_corpus_is_seeded_and_spread_over_1_to_20_s(tmp_path):
    durations = corpus.utterance_durations_s(180.0, seed=0)
    assert durations == corpus.utterance_durations_s(180.0, seed=0) != corpus.utterance_durations_s(180.0, seed=1)
    assert all(1.0 <= d <= 20.0 for d in durations) and abs(sum(durations) - 180.0) < 1.0
    assert min(durations) < 5 and max(durations) > 15
    paths = corpus.write_corpora(tmp_path, 4.0, 2.5, max_s=2.0)
    assert [sf.info(p).duration for p in paths["long"]] == [2.5]
    assert all(1.0 <= sf.info(p).duration <= 2.0 for p in paths["utterances"]) and len(paths["utterances"]) >= 2
    (tmp_path / "utterances" / "other.flac").write_bytes(b"")
    with pytest.raises(FileExistsError, match="another corpus"):
        corpus.write_corpora(tmp_path, 4.0, 2.5, max_s=2.0)


def test_the_flops_of_a_clip_are_counted_from_the_config():
    config = preset("sim")
    one_second = ceiling.clip_flops(config, SAMPLE_RATE)
    per_second = flops_per_audio_second(config)  # the same count from frame rates instead of frame counts
    assert abs(one_second["total"] / per_second["total"] - 1) < 0.01
    assert ceiling.clip_flops(config, SAMPLE_RATE, logvar=False)["logvar heads"] == 0
    assert one_second["convs"] > one_second["mean heads"] == one_second["logvar heads"] > one_second["gru"] > 0
    zen4 = "Vendor ID: AuthenticAMD\nFlags: fpu avx2 avx512f avx512_bf16\n"
    peaks = ceiling.peaks_gflops(threads=1, clock_ghz=3.0, lscpu=zen4)
    assert peaks["float32"] == 96 and peaks["bfloat16"] == 192
    sapphire_rapids = "Vendor ID: GenuineIntel\nFlags: fpu avx2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
    assert ceiling.flop_per_cycle(sapphire_rapids)[:2] == (64, 2048)
    assert ceiling.flop_per_cycle("Vendor ID: AuthenticAMD\nFlags: fpu avx2 fma\n")[:2] == (32, 0)


@pytest.mark.slow
def test_extraction_paths_agree_with_the_plain_stack(tmp_path, tiny_model):
    result = extraction.main(["--model", str(tiny_model), "--utterance-s", "4", "--utterance-max-s", "2",
                              "--long-s", "3", "--repeats", "2", "--out", str(tmp_path / "e.json")])
    rows = {(r["corpus"], r["path"], r["dtype"]): r for r in result["paths"]}
    paths = {"utterances": ("plain", "extract", "extract 1/call", "sim-extract"),
             "long": ("plain", "extract", "sim-extract")}
    assert set(rows) == {(c, p, d) for c, ps in paths.items() for p in ps for d in ("float32", "bfloat16")} | {
        (c, "sim-extract --dtype float16", "bfloat16") for c in paths}
    for (_, path, dtype), row in rows.items():
        assert row["audio_s_per_s"] > 0 and len(row["seconds_each"]) == len(row["x_plain_each"]) == 2
        assert row["gflops"] > 0 and row["peak_share"] > 0
        if path != "plain" and dtype == "float32":
            assert row["max_abs_diff"] < 1e-4
        if path != "plain" and dtype == "bfloat16":
            assert 0 < row["relative_error"] < 1e-2
    assert all(rows[c, "plain", "float32"]["x_plain"] == 1 for c in paths)
    assert set(result["corpora"]) == {"utterances", "long"} and result["corpora"]["long"]["audio_s"] == 3
    assert result["ceiling"] and (tmp_path / "e.json").exists()


def test_the_profile_groups_the_cpu_time_of_extract(tmp_path, tiny_model):
    result = profile.main(["--model", str(tiny_model), "--utterance-s", "4", "--utterance-max-s", "2",
                           "--out", str(tmp_path / "p.json")])
    for totals in result["dtypes"].values():
        assert set(totals) == {"gru", "matmul", "casts", "other"}
        assert totals["gru"] > 0 and totals["matmul"] > 0  # the tiny model has a GRU module and convs
    assert set(result["dtypes"]) == {"bfloat16", "float32"} and (tmp_path / "p.json").exists()


@pytest.mark.slow
def test_the_profile_groups_the_cpu_time_of_a_training_step(tmp_path):
    result = profile.main(["--training", "gim", "--batch", "1", "--threads", "1", "--out", str(tmp_path / "p.json")])
    for found in result["dtypes"].values():
        assert set(found["groups"]) == {"convs", "matmul", "casts", "other"} and found["groups"]["convs"] > 0
        assert len(found["top"]) == 10 and "aten::convolution_backward" in found["top"]


@pytest.mark.slow
def test_the_trick_ablation_switches_each_trick_without_changing_the_features(tmp_path, tiny_model):
    result = tricks.main(["--model", str(tiny_model), "--utterance-s", "3", "--utterance-max-s", "1.5",
                          "--rounds", "2", "--out", str(tmp_path / "t.json")])
    seen = {(r["trick"], r["dtype"]) for r in result["tricks"]} | {(r["trick"], r["dtype"]) for r in result["inactive"]}
    assert seen == {(t.key, d) for t in tricks.TRICKS for d in ("float32", "bfloat16")}
    measured = {(r["trick"], r["dtype"]): r for r in result["tricks"]}
    assert {"bn-fold", "relu-inplace", "winograd", "first-winograd", "logvar-skip",
            "batched"} <= {key for key, dtype in measured if dtype == "float32"}
    for (key, dtype), row in measured.items():
        assert len(row["gain_each"]) == 2 and row["on_s"] > 0 and row["off_s"] > 0
        assert row["relative_error"] < (1e-5 if dtype == "float32" else 5e-2), (key, dtype)
    assert result["plain_float32_s"] > 0 and set(result["shipped_s"]) == {"float32", "bfloat16"}


@pytest.mark.slow
def test_training_step_losses_of_both_infonce_formulations_agree():
    args = ["--presets", "gim", "--batch", "2", "--steps", "2", "--crop-samples", "8000"]
    [row] = training_step.main(args)["presets"]
    assert abs(row["loss"] - row["loop_loss"]) < 1e-4 * abs(row["loss"])
    each = row["seconds_each"]
    assert all(len(seconds) == 2 and min(seconds) > 0 for seconds in each.values())
    # ratios are taken within a round (the formulations take turns), then their median
    assert row["max_step_speedup"] == statistics.median(s / f for s, f in zip(each["loop"], each["floor"], strict=True))
    assert row["floor_step_s"] == statistics.median(each["floor"])


@pytest.mark.slow
def test_memory_of_a_long_file_is_bounded_by_its_chunk_not_its_length(monkeypatch):
    """sim-extract computes and writes a long file chunk by chunk. From a file of 4.5 s to one of 40 s (2 to 10 chunks
    of 4 s) its peak resident memory may grow by the longer decoded audio and one chunk's features, not by the file's
    features, which a whole-file pass or collecting the chunks before writing would hold (about 130-150 MB more)."""
    # glibc keeps freed buffers in its heap, so the peak drifts by about 50 MB from run to run; blocks over 64 KiB
    # served by mmap go back to the system when freed, so the peak follows the memory actually in use
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(64 * 1024))
    chunk_s, short_s, long_s = 4.0, 4.5, 40.0
    options = ["--chunk-seconds", str(chunk_s), "--what", "mean,logvar"]
    short, long = (memory.main(["--seconds", str(seconds), *options]) for seconds in (short_s, long_s))
    for result in (short, long):
        assert result["peak_process_rss_bytes"] > 100 * 2**20
        assert result["peak_tree_pss_bytes"] > 0 and result["output_bytes"] > 0
    feature_bytes_per_s = long["output_bytes"] / long_s  # float32, as computed; the headers are a few kB
    one_chunk = feature_bytes_per_s * chunk_s + 4 * 4 * SAMPLE_RATE * (long_s - short_s)  # + 4 float32 audio copies
    whole_file = feature_bytes_per_s * (long_s - short_s)
    assert one_chunk < whole_file / 4  # about 27 MB against 156 MB: the bound tells the two apart
    growth = long["peak_process_rss_bytes"] - short["peak_process_rss_bytes"]
    assert growth < one_chunk, f"peak memory grew by {growth / 2**20:.0f} MiB from {short_s} s to {long_s} s"


@pytest.mark.slow
def test_the_prepared_gpu_script_runs_on_the_cpu(tmp_path, tiny_model):
    # bfloat16 training steps only where the CPU computes bfloat16 natively (elsewhere they take minutes)
    training_dtype = "bfloat16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"
    result = gpu.main(["--device", "cpu", "--model", str(tiny_model), "--files", "2", "--max-file-s", "2",
                       "--long-s", "3", "--dtypes", "float32,bfloat16", "--matmul-size", "256", "--presets", "gim",
                       "--batch", "2", "--steps", "1", "--crop-samples", "8000", "--training-dtype", training_dtype,
                       "--out", str(tmp_path / "g.json")])
    rows = {(r["path"], r["dtype"]): r for r in result["extraction"]}
    assert set(rows) == {("naive", "float32"), ("extract", "float32"), ("extract", "bfloat16")}
    assert rows["extract", "float32"]["max_abs_diff"] < 1e-4
    assert 0 < rows["extract", "bfloat16"]["relative_error"] < 1e-2
    [step] = result["training"]
    assert result["training_dtype"] == training_dtype
    assert abs(step["loss"] - step["loop_loss"]) < 1e-2 * abs(step["loss"])
    assert set(result["matmul_gflops"]) == {"float32", "bfloat16"} and (tmp_path / "g.json").exists()


@pytest.mark.slow
def test_precision_benchmark_times_both_dtypes_on_the_same_step():
    result = precision.main(["--presets", "gim_sim_repo", "--batch", "2", "--steps", "2", "--crop-samples", "4000"])
    row = result["presets"]["gim_sim_repo"]
    assert all(len(each) == 2 and min(each) > 0 for each in row["seconds_each"].values())
    float32, bfloat16 = row["first_loss"]["float32"], row["first_loss"]["bfloat16"]
    assert float32 != bfloat16 and abs(float32 - bfloat16) < 0.05 * abs(float32)  # same step, other precision
