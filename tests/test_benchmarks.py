"""The benchmark scripts run end to end at toy sizes and their paths agree (speed is not asserted here).

They run a tiny SIM-shaped model and short training crops: on a CPU without native bfloat16 (AVX2 only), the
bfloat16 paths of the full-size preset run 10-50x slower than float32 and would take minutes here."""

import statistics

import torch
from test_cli_common import tiny_model_fixture  # noqa: F401 (fixture)

from training.benchmarks import extraction, gpu, memory, precision, training_step


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


def test_training_step_losses_of_both_infonce_formulations_agree():
    args = ["--presets", "gim", "--batch", "2", "--steps", "2", "--crop-samples", "8000"]
    [row] = training_step.main(args)["presets"]
    assert abs(row["loss"] - row["loop_loss"]) < 1e-4 * abs(row["loss"])
    each = row["seconds_each"]
    assert all(len(seconds) == 2 and min(seconds) > 0 for seconds in each.values())
    # ratios are taken within a round (the formulations take turns), then their median
    assert row["max_step_speedup"] == statistics.median(s / f for s, f in zip(each["loop"], each["floor"]))
    assert row["floor_step_s"] == statistics.median(each["floor"])


def test_memory_benchmark_measures_a_real_run():
    result = memory.main(["--hours", "0.002"])
    assert 100 * 2**20 < result["peak_process_rss_bytes"]
    assert result["peak_tree_pss_bytes"] > 0 and result["output_bytes"] > 0


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


def test_precision_benchmark_times_both_dtypes_on_the_same_step():
    result = precision.main(["--presets", "gim_sim_repo", "--batch", "2", "--steps", "2", "--crop-samples", "4000"])
    row = result["presets"]["gim_sim_repo"]
    assert all(len(each) == 2 and min(each) > 0 for each in row["seconds_each"].values())
    float32, bfloat16 = row["first_loss"]["float32"], row["first_loss"]["bfloat16"]
    assert float32 != bfloat16 and abs(float32 - bfloat16) < 0.05 * abs(float32)  # same step, other precision
