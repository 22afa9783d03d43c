"""One prepared run for a GPU: matmul ceilings, extraction throughput and training steps, in one process.

    python -m training.benchmarks.gpu [--device cuda] [--files 24] [--long-s 600] [--out results/benchmarks/gpu.json]

Everything is timed on the device (synchronised), in one run:
- the ceilings: an ``n x n x n`` matmul in float32 (TF32 as torch's default leaves it: off), bfloat16 and float16;
- extraction of the benchmark corpus's durations (speech-like audio held in memory, 24 clips of 1-30 s and one
  long one): the naive reference-style loop (float32, one clip at a time), then ``extract`` on length-sorted
  batches in float32 and under bfloat16 and float16 autocast; audio-s/s, share of the dtype's ceiling, errors of
  the means against the naive loop, peak device memory;
- one Adam step of each preset under bfloat16 autocast (what training does on a GPU; ``--training-dtype``), the
  vectorised InfoNCE against the loop formulation.
``--device cpu`` runs the same script on the CPU (how it is tested without a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import time
from pathlib import Path

import numpy as np
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.inference import piece_groups
from training.benchmarks.common import SAMPLE_RATE, mixed_durations_s, print_table, speech_like, write_json
from training.benchmarks.extraction import difference, naive_features
from training.benchmarks.flops import flops_per_audio_second
from training.benchmarks.training_step import CROP_SAMPLES, compare_formulations

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_seconds(device: torch.device, fn) -> tuple[float, object]:
    """Wall seconds of ``fn()`` with the device drained before and after, and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return time.perf_counter() - start, result


def matmul_gflops(device: torch.device, dtype: torch.dtype, n: int, repeats: int = 5) -> float:
    a, b = torch.randn(n, n, device=device).to(dtype), torch.randn(n, n, device=device).to(dtype)
    a @ b
    best = min(device_seconds(device, lambda: a @ b)[0] for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def run_extract(encoder, wavs, dtype: torch.dtype, batch_seconds: float) -> list[list[torch.Tensor]]:
    """Per clip, per module ``(frames, dim)`` means on the CPU."""
    outputs: list = [None] * len(wavs)
    device = next(encoder.parameters()).device
    for batch in piece_groups([len(w) for w in wavs], int(batch_seconds * SAMPLE_RATE)):
        with autocast(device, dtype):
            extraction = encoder.extract([wavs[i] for i in batch], sample_rate=16000)
        for row, i in enumerate(batch):
            outputs[i] = [f.unpad(row).float().cpu() for f in extraction]
    return outputs


def extraction_rows(args, device: torch.device, ceilings: dict[str, float]) -> list[dict]:
    encoder = SmoothInfoMaxEncoder.from_pretrained(args.model, device=device).float().eval()
    rng = np.random.default_rng(0)
    durations = mixed_durations_s(args.files, args.long_s, max_s=args.max_file_s)
    wavs = [torch.from_numpy(speech_like(d, rng)).to(device) for d in durations]
    audio_s = sum(len(w) for w in wavs) / SAMPLE_RATE
    flops = flops_per_audio_second(encoder.config)["total"]
    naive = lambda: [[m.float().cpu() for m in naive_features(encoder, w)] for w in wavs]
    naive()
    seconds, reference = device_seconds(device, naive)
    rows = [_row("naive", "float32", seconds, audio_s, flops, ceilings, (0.0, 0.0), None)]
    for name in args.dtypes.split(","):
        run = functools.partial(run_extract, encoder, wavs, DTYPES[name], args.batch_seconds)
        run()
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds, outputs = device_seconds(device, run)
        peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        rows.append(_row("extract", name, seconds, audio_s, flops, ceilings, difference(outputs, reference), peak))
    return rows


def _row(path, dtype, seconds, audio_s, flops, ceilings, diff, peak_bytes) -> dict:
    gflops = audio_s / seconds * flops / 1e9
    return {"path": path, "dtype": dtype, "seconds": seconds, "audio_s": audio_s, "audio_s_per_s": audio_s / seconds,
            "gflops": gflops, "ceiling_share": gflops / ceilings[dtype], "max_abs_diff": diff[0],
            "relative_error": diff[1], "peak_device_bytes": peak_bytes}


def training_rows(args, device: torch.device) -> list[dict]:
    waveform = 0.1 * torch.randn(args.batch, 1, args.crop_samples, generator=torch.Generator().manual_seed(0))
    bf16 = args.training_dtype == "bfloat16"
    return [compare_formulations(name, waveform.to(device), args.steps, bf16, loss_only=False)
            for name in args.presets.split(",")]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="sim-mix")
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--max-file-s", type=float, default=30.0)
    parser.add_argument("--long-s", type=float, default=600.0)
    parser.add_argument("--batch-seconds", type=float, default=600.0, help="padded audio per extract call")
    parser.add_argument("--dtypes", default="float32,bfloat16,float16")
    parser.add_argument("--matmul-size", type=int, default=8192)
    parser.add_argument("--presets", default="sim,gim_sim_repo,gim,cpc")
    parser.add_argument("--batch", type=int, default=8, help="training crops per step")
    parser.add_argument("--crop-samples", type=int, default=CROP_SAMPLES, help="samples per training crop")
    parser.add_argument("--training-dtype", choices=["bfloat16", "float32"], default="bfloat16",
                        help="bfloat16: every step under autocast, as training on a GPU")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    measured = dict.fromkeys(["float32", *args.dtypes.split(",")])
    ceilings = {d: matmul_gflops(device, DTYPES[d], args.matmul_size) for d in measured}
    print(f"{name}; torch {torch.__version__}; matmul GFLOP/s: "
          + ", ".join(f"{d} {v:.0f}" for d, v in ceilings.items()))
    extraction = extraction_rows(args, device, ceilings)
    naive_rate = extraction[0]["audio_s_per_s"]
    print_table(["path", "dtype", "audio-s/s", "x naive", "GFLOP/s", "% of matmul", "max abs diff", "rel err",
                 "peak GiB"],
                [[r["path"], r["dtype"], f"{r['audio_s_per_s']:.0f}", f"{r['audio_s_per_s'] / naive_rate:.2f}",
                  f"{r['gflops']:.0f}", f"{100 * r['ceiling_share']:.1f}", f"{r['max_abs_diff']:.1e}",
                  f"{r['relative_error']:.1e}",
                  "-" if r["peak_device_bytes"] is None else f"{r['peak_device_bytes'] / 2**30:.2f}"]
                 for r in extraction])
    training = training_rows(args, device)
    print_table([f"preset ({args.training_dtype})", "steps/s", "audio-s/s", "loop steps/s", "step x", "max step x",
                 "loss", "loop loss"],
                [[r["preset"], f"{r['steps_per_s']:.2f}", f"{r['audio_s_per_s']:.0f}", f"{r['loop_steps_per_s']:.2f}",
                  f"{r['step_speedup']:.2f}", f"{r['max_step_speedup']:.2f}", f"{r['loss']:.4f}",
                  f"{r['loop_loss']:.4f}"] for r in training])
    result = {"device": name, "torch": torch.__version__, "matmul_gflops": ceilings, "extraction": extraction,
              "training_dtype": args.training_dtype, "training": training}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
