"""Extraction throughput against the authors' plain ``nn.Conv1d`` stack: utterances of 1-20 s, and one long file.

    python -m training.benchmarks.extraction [--model sim-mix] [--utterance-s 180] [--long-s 300] [--threads 2]
        [--repeats 3] [--dtypes float32,bfloat16] [--source DIR] [--out FILE.json]

Two corpora of FLAC files (``corpus.py``; seeded, so every run times the same durations), each reported in its own
rows: ``utterances``, clips of 1-20 s adding up to ``--utterance-s`` seconds, and ``long``, one file of ``--long-s``
seconds (0: none). Paths, on each corpus, all with the same weights:
- plain: ``plain.PlainStack``, stock ``nn.Conv1d`` / ``BatchNorm1d`` / ``ReLU`` / ``GRU`` modules, one clip at a time
  under ``no_grad`` (the authors' way), float32; its bfloat16 row runs it under ``torch.autocast``;
- extract: ``encoder.extract`` on length-sorted calls of at most ``--batch-seconds`` of padded audio (decoded
  beforehand); on the utterances also ``extract 1/call``, one clip per call, as the plain stack is called;
- sim-extract: the CLI end to end on the corpus's folder (decode, compute, write safetensors; means only); under
  bfloat16 also with ``--dtype float16`` files, half the bytes to write.
Every path takes turns ``--repeats`` times (a shared machine drifts by 10-20 % within minutes); ``x plain`` is the
median over rounds of the plain float32 time over the path's time in the same round, times are medians. Outputs
are compared with the plain float32 ones (valid frames of every module's mean). The ceiling analysis
(``ceiling.py``) counts each corpus's FLOPs from the config and gives each path's GFLOP/s as a share of the cores'
FMA peak and of the measured matmul rate. A whole-file pass of the plain stack over more than about 330 s of audio
falls off a cliff (oneDNN's reference convolution above 2 GiB of input; docs/performance.md), hence 300 s.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import soundfile as sf
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from training.benchmarks.ceiling import corpus_flops, corpus_lines, machine_lines, peaks_gflops
from training.benchmarks.common import SAMPLE_RATE, machine, matmul_rate_gflops, print_table, timed, write_json
from training.benchmarks.corpus import write_corpora
from training.benchmarks.plain import PlainStack
from training.benchmarks.runs import difference, read_cli, run_cli, run_extract, run_plain

REFERENCE = ("plain", "float32")
TARGETS = {"float32": 1.3, "bfloat16": 3.0}  # extract on the utterances, x plain: the targets set for the fast path


def naive_features(encoder: SmoothInfoMaxEncoder, wav: torch.Tensor) -> list[torch.Tensor]:
    """Per module ``(frames, dim)`` means of one waveform ``(samples,)``, the encoder's own layers called one by
    one (``gpu.py`` and ``attempts.py`` time it; ``PlainStack`` is the baseline here)."""
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sim-mix")
    parser.add_argument("--utterance-s", type=float, default=180.0, help="total audio of the 1-20 s utterances")
    parser.add_argument("--utterance-max-s", type=float, default=20.0, help="longest utterance (shortest: 1 s)")
    parser.add_argument("--long-s", type=float, default=300.0, help="duration of the one long file (0: none)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the corpus (durations and audio)")
    parser.add_argument("--source", type=Path, default=None,
                        help="folder of real speech to cut the clips from (default: the package's examples, tiled)")
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio per extract call")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--repeats", type=int, default=1, help="rounds of every path in turns; medians reported")
    parser.add_argument("--corpus", type=Path, default=None, help="folder for the FLAC files (default: temporary)")
    parser.add_argument("--dtypes", default="float32,bfloat16",
                        help="compute dtypes to time; float32 (the reference) always runs. On a CPU without native "
                             "bfloat16, the plain stack's bfloat16 runs about 50x slower than float32")
    parser.add_argument("--clock-ghz", type=float, default=None, help="the cores' clock for the peak (default: lscpu)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    wanted = set(args.dtypes.split(","))
    if wanted - {"float32", "bfloat16"}:
        parser.error(f"--dtypes: {args.dtypes!r}; choose from float32,bfloat16")
    args.bf16_flags = [False, True] if "bfloat16" in wanted else [False]
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.corpus or Path(scratch) / "corpus"
        corpora = write_corpora(folder, args.utterance_s, args.long_s, args.seed, args.source, args.utterance_max_s)
        result = benchmark(args, corpora, Path(scratch))
    write_json(args.out, result)
    return result


def benchmark(args, corpora: dict[str, list[Path]], scratch: Path) -> dict:
    encoder = SmoothInfoMaxEncoder.from_pretrained(args.model).float().eval()
    plain = PlainStack.from_encoder(encoder)
    wavs = {name: [torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in paths] for name, paths in corpora.items()}
    shortest = min(wavs["utterances"], key=len)
    for bf16 in args.bf16_flags:  # warm-up: oneDNN primitives, folded weights
        run_plain(plain, [shortest], bf16), run_extract(encoder, [shortest], bf16, args.batch_seconds)
    matmul = {_dtype_name(bf16): matmul_rate_gflops(torch.bfloat16 if bf16 else torch.float32)
              for bf16 in args.bf16_flags}
    peaks = peaks_gflops(torch.get_num_threads(), args.clock_ghz)
    jobs = _jobs(args, encoder, plain, wavs, corpora, scratch)
    times, ratios, diffs = _time_in_turns(jobs, args.repeats)
    rows, analysis = [], {}
    for name, corpus_wavs in wavs.items():
        lengths = [len(w) for w in corpus_wavs]
        audio_s = sum(lengths) / SAMPLE_RATE
        flops = {"all heads": corpus_flops(encoder.config, lengths), "means only": corpus_flops(encoder.config,
                                                                                              lengths, logvar=False)}
        for (corpus, path, dtype), seconds in times.items():
            if corpus == name:
                counted = flops["means only" if path.startswith("sim-extract") else "all heads"]["total"]
                rows.append(_row(corpus, path, dtype, seconds, ratios[corpus, path, dtype], audio_s, counted,
                                 peaks, matmul, diffs[corpus, path, dtype]))
        baseline = next(r for r in rows if (r["corpus"], r["path"], r["dtype"]) == (name, *REFERENCE))
        analysis[name] = {"audio_s": audio_s, "files": len(lengths), "flops": flops,
                          "lines": corpus_lines(peaks, flops["all heads"], audio_s, baseline["gflops"])}
    ceiling = machine_lines(peaks, matmul)
    _report(rows, analysis, ceiling)
    return {"machine": machine(), "model": args.model, "corpora": {k: {"audio_s": v["audio_s"], "files": v["files"],
            "flops": v["flops"]} for k, v in analysis.items()}, "peak_gflops": peaks, "matmul_gflops": matmul,
            "ceiling": ceiling + [f"{k}: {line}" for k, v in analysis.items() for line in v["lines"]], "paths": rows}


def _jobs(args, encoder, plain, wavs: dict, corpora: dict, scratch: Path) -> dict:
    """``(corpus, path, dtype) -> (run, read_back)``: ``run`` is timed and returns the means, or ``None`` when
    ``read_back`` (untimed) reads them from disk. The plain float32 job of each corpus comes first."""
    jobs = {}
    for corpus, corpus_wavs in wavs.items():
        for bf16 in args.bf16_flags:
            jobs[corpus, "plain", _dtype_name(bf16)] = (lambda w=corpus_wavs, b=bf16: run_plain(plain, w, b), None)
        for bf16 in args.bf16_flags:
            dtype, out_dir = _dtype_name(bf16), scratch / f"features_{corpus}_{_dtype_name(bf16)}"
            jobs[corpus, "extract", dtype] = (lambda w=corpus_wavs, b=bf16: run_extract(encoder, w, b,
                                                                                       args.batch_seconds), None)
            if len(corpus_wavs) > 1:
                jobs[corpus, "extract 1/call", dtype] = (lambda w=corpus_wavs, b=bf16: run_extract(encoder, w, b, None),
                                                         None)
            paths = corpora[corpus]
            jobs[corpus, "sim-extract", dtype] = (
                lambda p=paths, o=out_dir, b=bf16: run_cli(args.model, p[0].parent, o, b),
                lambda p=paths, o=out_dir: read_cli(o, p, encoder.num_modules))
            if bf16:  # the files' bytes: float16 halves what is written
                half_dir = scratch / f"features_{corpus}_{dtype}_float16_files"
                jobs[corpus, "sim-extract --dtype float16", dtype] = (
                    lambda p=paths, o=half_dir: run_cli(args.model, p[0].parent, o, True, ("--dtype", "float16")),
                    lambda p=paths, o=half_dir: read_cli(o, p, encoder.num_modules))
    return jobs


def _time_in_turns(jobs: dict, repeats: int) -> tuple[dict, dict, dict]:
    """Seconds of every run of every job (the jobs taking turns ``repeats`` times), each job's ratios to its corpus's
    plain float32 time in the same round, and its first run's ``difference`` from the plain float32 means."""
    times = {key: [] for key in jobs}
    diffs: dict = {}
    references: dict = {}
    for repeat in range(max(1, repeats)):
        for key, (run, read_back) in jobs.items():
            seconds, outputs = timed(run)
            times[key].append(seconds)
            if repeat == 0:
                outputs = read_back() if read_back else outputs
                if key[1:] == REFERENCE:
                    references[key[0]] = outputs
                diffs[key] = difference(outputs, references[key[0]])
            del outputs
        references.clear()
    ratios = {key: [ref / s for ref, s in zip(times[(key[0], *REFERENCE)], seconds, strict=True)]
              for key, seconds in times.items()}
    return times, ratios, diffs


def _dtype_name(bf16: bool) -> str:
    return "bfloat16" if bf16 else "float32"


def _row(corpus, path, dtype, seconds, ratios, audio_s, flops, peaks, matmul, diff) -> dict:
    median = statistics.median(seconds)
    gflops = flops / median / 1e9
    return {"corpus": corpus, "path": path, "dtype": dtype, "seconds": median, "seconds_each": seconds,
            "audio_s_per_s": audio_s / median, "x_plain": statistics.median(ratios), "x_plain_each": ratios,
            "gflops": gflops, "peak_share": gflops / peaks[dtype] if peaks[dtype] else None,
            "matmul_share": gflops / matmul[dtype] if dtype in matmul else None,
            "max_abs_diff": diff[0], "relative_error": diff[1]}


def _report(rows: list[dict], analysis: dict, ceiling: list[str]) -> None:
    print(f"{machine()}; " + "; ".join(f"{name}: {a['files']} files, {a['audio_s']:.0f} s of audio"
                                       for name, a in analysis.items()))
    print_table(["corpus", "path", "dtype", "audio-s/s", "x plain", "GFLOP/s", "% of peak", "% of matmul",
                 "max abs diff", "rel err"],
                [[r["corpus"], r["path"], r["dtype"], f"{r['audio_s_per_s']:.1f}", f"{r['x_plain']:.2f}",
                  f"{r['gflops']:.0f}", _percent(r["peak_share"]), _percent(r["matmul_share"]),
                  f"{r['max_abs_diff']:.1e}", f"{r['relative_error']:.1e}"] for r in rows])
    print("ceiling:")
    for line in ceiling + [f"{name}: {line}" for name, a in analysis.items() for line in a["lines"]]:
        print(f"  {line}")
    for r in rows:
        if r["corpus"] == "utterances" and r["path"] == "extract" and r["dtype"] in TARGETS:
            print(f"target: extract {r['dtype']} on the utterances {r['x_plain']:.2f}x the plain float32 stack "
                  f"(target: {TARGETS[r['dtype']]}x)")


def _percent(share: float | None) -> str:
    return "?" if share is None else f"{share * 100:.0f}"


if __name__ == "__main__":
    main()
