"""The benchmark scripts run end to end at toy sizes and their paths agree (speed is not asserted here).

They run a tiny SIM-shaped model and short training crops: on a CPU without native bfloat16 (AVX2 only), the
bfloat16 paths of the full-size preset run 10-50x slower than float32 and would take minutes here."""

import statistics

import pytest
import torch

from smooth_infomax.audio import SAMPLE_RATE
from test_cli_common import tiny_model_fixture  # noqa: F401 (fixture)
from training.benchmarks import extraction, gpu, memory, precision, training_step


@pytest.mark.slow
def test_extraction_paths_agree_with_the_naive_loop(tmp_path, tiny_model):
    result = extraction.main(["--model", str(tiny_model), "--files", "2", "--max-file-s", "2", "--long-s", "3",
                              "--repeats", "2", "--out", str(tmp_path / "e.json")])
    rows = {(r["path"], r["dtype"]): r for r in result["paths"]}
    assert set(rows) == {(p, d) for p in ("naive", "extract", "sim-extract") for d in ("float32", "bfloat16")}
    for path in ("extract", "sim-extract"):
        assert rows[path, "float32"]["max_abs_diff"] < 1e-4
        assert 0 < rows[path, "bfloat16"]["relative_error"] < 1e-2
    assert all(r["audio_s_per_s"] > 0 and len(r["seconds_each"]) == 2 for r in rows.values())
    assert (tmp_path / "e.json").exists()


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
