"""Each trick of the fast extraction path switched off in turn, on the utterance corpus: what each one gains.

    python -m training.benchmarks.tricks [--model sim-mix] [--utterance-s 180] [--threads 2] [--rounds 5]
        [--dtypes float32,bfloat16] [--tricks bn-fold,winograd,...] [--source DIR] [--out FILE.json]

The corpus is ``extraction``'s utterances (1-20 s, seeded). Every setup (``switches.Setup``: the library as it ships,
and each trick switched off, or for a few the pair a trick is measured between) runs ``encoder.extract`` over the
whole corpus, on length-sorted calls of at most ``--batch-seconds`` of padded audio as ``extraction`` does
(``sim-extract`` on the corpus's folder for the CLI's tricks), together with the plain float32 stack
(``plain.PlainStack``, one clip at a time). The setups take turns: each round runs every setup once, in an order
rotated from round to round, so that the machine's drift reaches them alike. A trick's gain is the median over rounds
of ``t(off) / t(on) - 1`` within the round (the spread over rounds is printed beside it); ``>= 5 %`` is the bar a
trick must clear to stay. A trick that does nothing on this machine, dtype or corpus (e.g. chunks when no clip is
longer than a chunk) is listed as inactive. Each setup's means are compared with the shipped setup's (first round),
so a switch that changed the features would show; some change them within rounding, and in bfloat16 not always by
little (BatchNorm unfolded rounds each conv's output to bfloat16 before its affine map).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf
import torch

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.extraction.settings import DEFAULT_NUM_WORKERS
from smooth_infomax.inference import Sizes, piece_groups
from training.benchmarks.common import SAMPLE_RATE, machine, print_table, timed, write_json
from training.benchmarks.corpus import write_corpora
from training.benchmarks.plain import PlainStack
from training.benchmarks.runs import autocast, difference, read_cli, run_cli, run_extract, run_plain
from training.benchmarks.switches import Setup, patched, variant_model

SHIPPED, CLI = Setup(), Setup(path="sim-extract")
THRESHOLD = 0.05


@dataclass(frozen=True)
class Trick:
    """A trick, measured between setup ``on`` and setup ``off`` (by default the shipped setup and ``off``)."""

    key: str
    name: str
    off: Setup
    on: Setup = field(default=SHIPPED)


TRICKS = [
    Trick("bn-fold", "BatchNorm folded into the conv weights", Setup(bn_folded=False)),
    Trick("relu-inplace", "ReLU in place", Setup(relu_in_place=False)),
    Trick("winograd", "Winograd F(2, 2) over blocks (off: conv1d)", Setup(winograd=False)),
    Trick("first-winograd", "the first layer as Winograd too (off: conv1d)", Setup(first_layer_winograd=False)),
    Trick("gru-no-autocast", "GRU outside autocast", Setup(gru_outside_autocast=False)),
    Trick("chunks", "clips over 4 s (8 s in 16 bits) in cache-sized chunks", Setup(chunks=False)),
    Trick("pieces", "calls over 8 s (16 s) of audio in cache-sized pieces", Setup(pieces=False)),
    Trick("mkldnn-check", "private mkldnn check of native 16-bit support", Setup(mkldnn_check=False)),
    Trick("logvar-skip", "log-variance heads skipped (means only)", SHIPPED, Setup(logvar=False)),
    Trick("batched", "clips batched into calls (the caller's choice)", Setup(batched=False)),
    Trick("no-worker", "sim-extract: no decoding worker below 4 cores", Setup(path="sim-extract", num_workers=1), CLI),
]


def inactive_reason(trick: Trick, taps: list[list[bool]], dtype: torch.dtype, lengths: list[int],
                    batch_seconds: float) -> str:
    """Why ``trick`` changes nothing here (``""`` if it does something): ``taps[m][i]`` says whether the shipped
    setup runs conv ``i`` of module ``m`` as Winograd on this machine and dtype."""
    sizes = Sizes.resolve("cpu", dtype, SAMPLE_RATE)
    sixteen_bits = dtype != torch.float32
    calls = piece_groups(lengths, int(batch_seconds * SAMPLE_RATE))
    largest_call = max(len(call) * max(lengths[i] for i in call) for call in calls)
    has_taps = any(any(module) for module in taps)
    reasons = {
        "winograd": "" if has_taps else "no conv's kernel is twice its stride",
        "first-winograd": "" if taps[0][:1] == [True] else "the first layer's kernel is not twice its stride",
        "gru-no-autocast": "" if sixteen_bits else "no autocast in float32",
        "chunks": "" if max(lengths) > sizes.chunk_samples else "no clip is longer than a chunk",
        "pieces": "" if largest_call > sizes.piece_samples else "no call is larger than a piece",
        "mkldnn-check": "" if sixteen_bits else "not called in float32",
        "no-worker": "" if DEFAULT_NUM_WORKERS == 0 else f"the default is {DEFAULT_NUM_WORKERS} workers here",
    }
    return reasons.get(trick.key, "")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sim-mix")
    parser.add_argument("--utterance-s", type=float, default=180.0, help="total audio of the 1-20 s utterances")
    parser.add_argument("--utterance-max-s", type=float, default=20.0, help="longest utterance (shortest: 1 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--source", type=Path, default=None, help="folder of real speech (default: the examples)")
    parser.add_argument("--corpus", type=Path, default=None, help="folder for the FLAC files (default: temporary)")
    parser.add_argument("--batch-seconds", type=float, default=60.0, help="padded audio per extract call")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5, help="rounds of every setup in turns")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--tricks", default=",".join(t.key for t in TRICKS),
                        help="comma-separated keys: " + ", ".join(t.key for t in TRICKS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    known = {t.key: t for t in TRICKS}
    if unknown := set(args.tricks.split(",")) - set(known):
        parser.error(f"--tricks: unknown {sorted(unknown)}")
    if unknown := set(args.dtypes.split(",")) - {"float32", "bfloat16"}:
        parser.error(f"--dtypes: unknown {sorted(unknown)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.corpus or Path(scratch) / "corpus"
        paths = write_corpora(folder, args.utterance_s, 0, args.seed, args.source, args.utterance_max_s)["utterances"]
        tricks = [known[key] for key in args.tricks.split(",")]
        result = ablation(args, tricks, paths, Path(scratch))
    write_json(args.out, result)
    return result


def ablation(args, tricks: list[Trick], paths: list[Path], scratch: Path) -> dict:
    encoder = SmoothInfoMaxEncoder.from_pretrained(args.model).float().eval()
    plain = PlainStack.from_encoder(encoder)
    wavs = [torch.from_numpy(sf.read(p, dtype="float32")[0]) for p in paths]
    lengths = [len(w) for w in wavs]
    measured, skipped = [], []
    runs = {("plain", "float32"): lambda wavs=wavs: run_plain(plain, wavs, False)}
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        taps = [[conv.taps is not None for conv, _ in module.convs]
                for module in variant_model(encoder, SHIPPED, dtype).modules]
        runs[SHIPPED, dtype_name] = _runner(args, encoder, SHIPPED, dtype, wavs, paths, scratch)  # the reference
        for trick in tricks:
            if reason := inactive_reason(trick, taps, dtype, lengths, args.batch_seconds):
                skipped.append({"trick": trick.key, "name": trick.name, "dtype": dtype_name, "inactive": reason})
                continue
            measured.append((trick, dtype_name))
            for setup in (trick.on, trick.off):
                if (setup, dtype_name) not in runs:
                    runs[setup, dtype_name] = _runner(args, encoder, setup, dtype, wavs, paths, scratch)
    seconds, diffs = _in_turns(runs, args.rounds, shortest=min(wavs, key=len))
    rows = [_trick_row(trick, dtype, seconds, diffs) for trick, dtype in measured]
    audio_s = sum(lengths) / SAMPLE_RATE
    _report(rows, skipped, seconds, audio_s, len(paths))
    shipped = {d: statistics.median(s) for (setup, d), s in seconds.items() if setup == SHIPPED}
    return {"machine": machine(), "model": args.model, "files": len(paths), "audio_s": audio_s,
            "plain_float32_s": statistics.median(seconds["plain", "float32"]), "shipped_s": shipped,
            "tricks": rows, "inactive": skipped}


def _runner(args, encoder, setup: Setup, dtype: torch.dtype, wavs: list, paths: list[Path], scratch: Path):
    """A call that runs ``setup`` over ``wavs`` and returns the means (``wavs`` given: over those, for a warm-up;
    ``sim-extract`` then does nothing, its first round is its warm-up)."""
    bf16 = dtype != torch.float32
    if setup.path == "sim-extract":
        out_dir = scratch / f"cli_{abs(hash(setup))}_{dtype}"

        def cli(wavs=None):
            if wavs is not None:
                return None
            with patched(encoder, setup):
                run_cli(args.model, paths[0].parent, out_dir, bf16, setup.cli_options())
            return read_cli(out_dir, paths, encoder.num_modules)

        return cli

    def extract(wavs=wavs):
        with autocast(bf16), patched(encoder, setup):
            return run_extract(encoder, wavs, bf16, args.batch_seconds if setup.batched else None,
                               **setup.extract_kwargs())

    return extract


def _in_turns(runs: dict, rounds: int, shortest: torch.Tensor) -> tuple[dict, dict]:
    """Seconds of each run per round, the order rotated each round, after one untimed warm-up run of each on
    ``shortest``; and each setup's ``difference`` from the shipped setup of its dtype, from the first round (which
    runs the shipped setups before the rest; ``sim-extract``'s reading back is not timed)."""
    for run in runs.values():
        run(wavs=[shortest])
    keys = list(runs)
    seconds: dict = {key: [] for key in keys}
    references, diffs = {}, {}
    for r in range(max(1, rounds)):
        for key in keys[r % len(keys):] + keys[: r % len(keys)]:
            elapsed, outputs = timed(runs[key])
            seconds[key].append(elapsed)
            setup, dtype = key
            if r == 0 and setup == SHIPPED:
                references[dtype] = outputs
            elif r == 0 and setup != "plain":
                diffs[key] = difference(outputs, references[dtype])
            del outputs
        references.clear()
    return seconds, diffs


def _trick_row(trick: Trick, dtype: str, seconds: dict, diffs: dict) -> dict:
    on, off = seconds[trick.on, dtype], seconds[trick.off, dtype]
    gains = [t_off / t_on - 1 for t_on, t_off in zip(on, off, strict=True)]
    gain = statistics.median(gains)
    return {"trick": trick.key, "name": trick.name, "dtype": dtype, "on_s": statistics.median(on),
            "off_s": statistics.median(off), "gain": gain, "gain_each": gains, "at_least_5_percent": gain >= THRESHOLD,
            "max_abs_diff": max(diffs.get((setup, dtype), (0.0, 0.0))[0] for setup in (trick.on, trick.off)),
            "relative_error": max(diffs.get((setup, dtype), (0.0, 0.0))[1] for setup in (trick.on, trick.off)),
            "on_each_s": on, "off_each_s": off}


def _report(rows: list[dict], skipped: list[dict], seconds: dict, audio_s: float, files: int) -> None:
    plain = statistics.median(seconds["plain", "float32"])
    print(f"{files} utterances, {audio_s:.0f} s of audio; {machine()}")
    print(f"plain float32 stack: {plain:.2f} s ({audio_s / plain:.1f} audio-s/s); shipped extract: " + ", ".join(
        f"{d} {statistics.median(s):.2f} s ({plain / statistics.median(s):.2f}x plain)"
        for (setup, d), s in seconds.items() if setup == SHIPPED))
    print_table(["trick", "dtype", "on s", "off s", "gain", "gain per round", ">= 5 %", "max abs diff", "rel err"],
                [[r["name"], r["dtype"], f"{r['on_s']:.2f}", f"{r['off_s']:.2f}", f"{r['gain'] * 100:+.1f} %",
                  " ".join(f"{g * 100:+.0f}" for g in r["gain_each"]), "yes" if r["at_least_5_percent"] else "no",
                  f"{r['max_abs_diff']:.1e}", f"{r['relative_error']:.1e}"] for r in rows])
    for s in skipped:
        print(f"inactive, {s['dtype']}: {s['name']}: {s['inactive']}")


if __name__ == "__main__":
    main()
