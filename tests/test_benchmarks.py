"""The benchmark scripts run end to end at toy sizes and their paths agree (speed is not asserted here)."""

from training.benchmarks import extraction, memory, training_step


def test_extraction_paths_agree_with_the_naive_loop(tmp_path):
    result = extraction.main(["--files", "2", "--max-file-s", "2", "--long-s", "3", "--out", str(tmp_path / "e.json")])
    rows = {(r["path"], r["dtype"]): r for r in result["paths"]}
    assert set(rows) == {(p, d) for p in ("naive", "extract", "sim-extract") for d in ("float32", "bfloat16")}
    for path in ("extract", "sim-extract"):
        assert rows[path, "float32"]["max_abs_diff"] < 1e-4
        assert 0 < rows[path, "bfloat16"]["relative_error"] < 1e-2
    assert all(r["audio_s_per_s"] > 0 for r in rows.values())
    assert (tmp_path / "e.json").exists()


def test_training_step_losses_of_both_infonce_formulations_agree():
    [row] = training_step.main(["--presets", "gim", "--batch", "2", "--steps", "1"])["presets"]
    assert abs(row["loss"] - row["loop_loss"]) < 1e-4 * abs(row["loss"])


def test_memory_benchmark_measures_a_real_run():
    result = memory.main(["--hours", "0.002"])
    assert 100 * 2**20 < result["peak_process_rss_bytes"]
    assert result["peak_tree_pss_bytes"] > 0 and result["output_bytes"] > 0
