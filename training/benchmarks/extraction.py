"""Extraction throughput on a mixed-length corpus: a naive reference-style loop, ``extract`` and ``sim-extract``.

    python -m training.benchmarks.extraction [--files 24] [--long-s 600] [--threads N] [--repeats R]
        [--dtypes float32,bfloat16] [--out FILE.json]

Paths, all on the same FLAC files (1-30 s plus one long file) and in one run:
- naive: one file at a time, float32, the modules' layers called in Python under ``no_grad`` (as the authors'
  code extracts features), every head computed; also under bfloat16 autocast, for reference;
- extract: ``encoder.extract`` on length-sorted batches (files decoded beforehand), float32 and bfloat16 autocast;
- sim-extract: the CLI end to end (decode, compute, write safetensors), float32 and ``--bf16``.
Outputs of every path are compared with the naive float32 ones (valid frames of every module). Each path's FLOPs
per audio-second over the measured matmul rate of its dtype gives its share of the machine's ceiling.
``--repeats R`` times every path R times, the paths taking turns, and reports the median (a shared or noisy
machine drifts by 10-20 % within minutes; all times are in the JSON).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from pathlib import Path

import soundfile as sf
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.cli import main as sim_extract
from smooth_infomax.extraction import load_features
from smooth_infomax.inference import piece_groups
from training.benchmarks.common import (
    SAMPLE_RATE,
    machine,
    matmul_rate_gflops,
    mixed_durations_s,
    print_table,
    timed,
    write_corpus,
    write_json,
)
from training.benchmarks.flops import flops_per_audio_second


def naive_features(encoder: SmoothInfoMaxEncoder, wav: torch.Tensor) -> list[torch.Tensor]:
    """Per module ``(frames, dim)`` means of one waveform ``(samples,)``, computed layer by layer."""
    outputs = []
    with torch.no_grad():
        x = wav[None, None] * encoder.config.input_gain + encoder.config.input_offset
        for stage in encoder.stages:
            for block in stage.convs:
                x = block.conv(x)
                x = block.norm(x) if block.norm is not None else x
                x = torch.relu(x) if block.layer.relu else x
            if stage.head is not None:
                mean = stage.head.mean(x)
                _ = stage.head.logvar(x) if stage.head.logvar is not None else None
                x = mean
            if stage.gru is not None:
                x = stage.gru(x.transpose(1, 2).float())[0].transpose(1, 2)
            outputs.append(x[0].T)
    return outputs


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def run_naive(encoder, wavs, bf16: bool) -> list[list[torch.Tensor]]:
    with autocast(bf16):
        return [naive_features(encoder, wav) for wav in wavs]


def run_extract(encoder, wavs, bf16: bool, batch_seconds: float) -> list[list[torch.Tensor]]:
    outputs: list = [None] * len(wavs)
    batches = piece_groups([len(w) for w in wavs], int(batch_seconds * SAMPLE_RATE))
    for batch in batches:
        with autocast(bf16):
            extraction = encoder.extract([wavs[i] for i in batch], sample_rate=16000)
        for row, i in enumerate(batch):
            outputs[i] = [f.unpad(row) for f in extraction]
    return outputs


def run_cli(model: str, in_dir: Path, out_dir: Path, bf16: bool) -> None:
    args = [str(in_dir), str(out_dir), "--model", model, "--force", "--quiet"] + (["--bf16"] if bf16 else [])
    sim_extract(args, standalone_mode=False)


def read_cli(out_dir: Path, paths: list[Path], num_modules: int) -> list[list[torch.Tensor]]:
    outputs = []
    for path in paths:
        arrays, _ = load_features(out_dir / f"{path.name}.safetensors")
        outputs.append([torch.from_numpy(arrays[f"module{m}.mean"]) for m in range(num_modules)])
    return outputs


def difference(outputs, reference) -> tuple[float, float]:
    """Largest absolute difference, and the largest per-module relative error ``|a - b| / |b|`` (Frobenius)."""
    max_abs, max_rel = 0.0, 0.0
    for got_file, want_file in zip(outputs, reference, strict=True):
        for got, want in zip(got_file, want_file, strict=True):
            delta = got.float() - want.float()
            max_abs = max(max_abs, float(delta.abs().max()))
            max_rel = max(max_rel, float(delta.norm() / want.float().norm().clamp_min(1e-12)))
    return max_abs, max_rel


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sim-synth")
    parser.add_argument("--files", type=int, default=24, help="files of 1-30 s")
    parser.add_argument("--max-file-s", type=float, default=30.0, help="longest of the short files")
    parser.add_argument("--long-s", type=float, default=600.0, help="duration of the one long file (0: none)")
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio per extract call")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=1, help="times each path, taking turns; medians reported")
    parser.add_argument("--corpus", type=Path, default=None, help="folder for the FLAC files (default: temporary)")
    parser.add_argument("--dtypes", default="float32,bfloat16",
                        help="compute dtypes to time; float32 (the reference) always runs. On a CPU without native "
                             "bfloat16, its naive path runs about 50x slower than float32")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    wanted = set(args.dtypes.split(","))
    if wanted - {"float32", "bfloat16"}:
        parser.error(f"--dtypes: {args.dtypes!r}; choose from float32,bfloat16")
    args.bf16_flags = [False, True] if "bfloat16" in wanted else [False]
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = args.corpus or Path(scratch) / "corpus"
        durations_s = mixed_durations_s(args.files, args.long_s, max_s=args.max_file_s)
        result = benchmark(args, write_corpus(corpus, durations_s), Path(scratch))
    write_json(args.out, result)
    return result


def benchmark(args, paths: list[Path], scratch: Path) -> dict:
    encoder = SmoothInfoMaxEncoder.from_pretrained(args.model).float().eval()
    wavs = [torch.from_numpy(sf.read(path, dtype="float32")[0]) for path in paths]
    audio_s = sum(len(w) for w in wavs) / SAMPLE_RATE
    for bf16 in args.bf16_flags:  # warm-up: oneDNN primitives, folded weights
        run_naive(encoder, wavs[:1], bf16), run_extract(encoder, wavs[:1], bf16, args.batch_seconds)
    flops = {"all heads": flops_per_audio_second(encoder.config)["total"],
             "means only": flops_per_audio_second(encoder.config, logvar=False)["total"]}
    ceilings = {name: matmul_rate_gflops(getattr(torch, name)) for name in map(_dtype_name, args.bf16_flags)}
    print(f"{len(paths)} files, {audio_s / 60:.1f} min of audio; {machine()}")
    print("matmul GFLOP/s: " + ", ".join(f"{name} {rate:.0f}" for name, rate in ceilings.items()) + "; "
          f"SIM GFLOP per audio-second: {flops['all heads'] / 1e9:.2f} ({flops['means only'] / 1e9:.2f} means only)")
    times, diffs = _time_paths(_jobs(args, encoder, wavs, paths, scratch), args.repeats)
    rows = []
    for (path, dtype), seconds in times.items():
        flops_key = "means only" if path == "sim-extract" else "all heads"
        rows.append(_row(path, dtype, statistics.median(seconds), audio_s, flops[flops_key], ceilings,
                         diffs[path, dtype]))
        rows[-1]["seconds_each"] = seconds
    naive_rate = rows[0]["audio_s_per_s"]
    for row in rows:
        row["speedup_vs_naive"] = row["audio_s_per_s"] / naive_rate
    print_table(["path", "dtype", "audio-s/s", "x naive", "GFLOP/s", "% of matmul", "max abs diff", "rel err"],
                [[r["path"], r["dtype"], f"{r['audio_s_per_s']:.1f}", f"{r['speedup_vs_naive']:.2f}",
                  f"{r['gflops']:.0f}", f"{r['ceiling_share'] * 100:.0f}", f"{r['max_abs_diff']:.1e}",
                  f"{r['relative_error']:.1e}"] for r in rows])
    return {"machine": machine(), "files": len(paths), "audio_s": audio_s, "flops_per_audio_s": flops,
            "matmul_gflops": ceilings, "paths": rows}


def _jobs(args, encoder, wavs, paths: list[Path], scratch: Path) -> dict:
    """``(path, dtype) -> (run, read_back)``: ``run`` is timed and returns the outputs, or ``None`` when
    ``read_back`` (untimed) reads them from disk."""
    jobs = {}
    for bf16 in args.bf16_flags:
        dtype = _dtype_name(bf16)
        out_dir = scratch / f"features_{dtype}"
        jobs["naive", dtype] = (lambda bf16=bf16: run_naive(encoder, wavs, bf16), None)
        jobs["extract", dtype] = (lambda bf16=bf16: run_extract(encoder, wavs, bf16, args.batch_seconds), None)
        jobs["sim-extract", dtype] = (lambda bf16=bf16, out_dir=out_dir: run_cli(args.model, paths[0].parent,
                                                                                out_dir, bf16),
                                      lambda out_dir=out_dir: read_cli(out_dir, paths, encoder.num_modules))
    return jobs


def _time_paths(jobs: dict, repeats: int) -> tuple[dict, dict]:
    """Seconds of every run of every job (naive float32 first, then the jobs taking turns ``repeats`` times), and
    each job's ``difference`` from the naive float32 outputs (from its first run)."""
    reference_key = ("naive", "float32")
    seconds, reference = timed(jobs[reference_key][0])
    times, diffs = {key: [] for key in jobs}, {reference_key: (0.0, 0.0)}
    times[reference_key].append(seconds)
    for repeat in range(repeats):
        for key, (run, read_back) in jobs.items():
            if repeat == 0 and key == reference_key:
                continue
            seconds, outputs = timed(run)
            times[key].append(seconds)
            if key not in diffs:
                diffs[key] = difference(read_back() if read_back else outputs, reference)
            del outputs
    return times, diffs


def _dtype_name(bf16: bool) -> str:
    return "bfloat16" if bf16 else "float32"


def _row(path, dtype, seconds, audio_s, flops, ceilings, diff) -> dict:
    gflops = audio_s / seconds * flops / 1e9
    return {"path": path, "dtype": dtype, "seconds": seconds, "audio_s_per_s": audio_s / seconds, "gflops": gflops,
            "ceiling_share": gflops / ceilings[dtype], "max_abs_diff": diff[0], "relative_error": diff[1]}


if __name__ == "__main__":
    main()
