"""Generate a labelled synthetic English speech corpus in LibriSpeech layout, offline.

    python -m training.data.synth OUT --speakers 40 --utterances 50 [--seed 0] [--jobs 2] [--format flac]

Layout under OUT (the same as a prepared LibriSpeech, see :mod:`training.data.download`)::

    LibriSpeech/train-clean-100/<spk>/<chap>/<spk>-<chap>-<utt>.flac   16 kHz mono PCM16
    LibriSpeech/train-clean-100/<spk>/<chap>/<spk>-<chap>.trans.txt
    LibriSpeech/SPEAKERS.TXT
    LibriSpeech100_labels_split/converted_aligned_phones.txt             one label per 160 samples
    LibriSpeech100_labels_split/{train_split,test_split,train_val_train,train_val_val}.txt
    phones.txt  speakers.tsv  utterances.tsv  phone_segments.txt  LICENSES.txt  manifest.json

The same arguments give byte-identical output on the same package versions (recorded in manifest.json),
whatever ``--jobs`` is; the manifest deliberately leaves out ``--jobs``, OUT and wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from smooth_infomax.audio import HOP_SAMPLES, SAMPLE_RATE
from training.data import engines, text
from training.data.librispeech import clear_previous_build
from training.data.phones import write_phone_table
from training.data.render import synthesize_speaker
from training.data.speakers import ENGINES, make_roster, plan_utterance

FORMAT_VERSION = 1
AUDIO_SUBDIR = Path("LibriSpeech") / "train-clean-100"
LABELS_SUBDIR = Path("LibriSpeech100_labels_split")
GENERATED = ("LibriSpeech", str(LABELS_SUBDIR), "phones.txt", "speakers.tsv", "utterances.tsv",
             "phone_segments.txt", "LICENSES.txt", "manifest.json")
APT_VERSIONED = (*sorted({p for ps in engines.APT_PACKAGES.values() for p in ps}), "espeak-ng-data", "wordnet-base")


def check_requirements(engine_names: tuple[str, ...]) -> None:
    """Raise :class:`engines.EngineMissing` naming the apt packages for anything not installed."""
    missing = engines.missing_requirements(list(engine_names)) + text.missing_files()
    if missing:
        raise engines.EngineMissing(missing)


def _prepare_output(out: Path, force: bool) -> None:
    clear_previous_build(out, GENERATED, force, "a corpus")
    (out / AUDIO_SUBDIR).mkdir(parents=True, exist_ok=True)
    (out / LABELS_SUBDIR).mkdir(parents=True, exist_ok=True)


def _split(n_utterances: int, fraction: float, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Indices ``(kept, held_out)``; at least one held out when there are two or more."""
    n_out = max(1, round(fraction * n_utterances)) if n_utterances >= 2 else 0
    order = rng.permutation(n_utterances).tolist()
    return sorted(order[n_out:]), sorted(order[:n_out])


def _pool_context():
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["torch", "torchaudio.functional", "soundfile", "training.data.render"])
        return context
    return multiprocessing.get_context("spawn")


def _run_workers(tasks: list[dict], jobs: int, quiet: bool) -> list[list[dict]]:
    results: dict[int, list[dict]] = {}
    with _pool_context().Pool(jobs, maxtasksperchild=1) as pool:
        progress = tqdm(total=sum(len(t["texts"]) for t in tasks), unit="utt", disable=quiet, desc="synthesizing")
        for rows in pool.imap_unordered(synthesize_speaker, tasks):
            results[rows[0]["speaker_index"]] = rows
            progress.update(len(rows))
        progress.close()
    return [results[i] for i in sorted(results)]


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _write_tables(out: Path, roster, rows_by_speaker: list[list[dict]], args) -> dict:
    rows = [row for rows in rows_by_speaker for row in rows]
    labels_dir = out / LABELS_SUBDIR
    _write_lines(labels_dir / "converted_aligned_phones.txt", [f"{r['utterance_id']} {r['labels']}" for r in rows])
    splits = {"train_split": [], "test_split": [], "train_val_train": [], "train_val_val": []}
    for speaker, speaker_rows in zip(roster, rows_by_speaker, strict=True):
        ids = [r["utterance_id"] for r in speaker_rows]
        train, test = _split(len(ids), args.test_fraction, np.random.default_rng([args.seed, speaker.index, 4]))
        val_train, val = _split(len(train), 0.1, np.random.default_rng([args.seed, speaker.index, 5]))
        splits["train_split"] += [ids[i] for i in train]
        splits["test_split"] += [ids[i] for i in test]
        splits["train_val_train"] += [ids[train[i]] for i in val_train]
        splits["train_val_val"] += [ids[train[i]] for i in val]
    for name, ids in splits.items():
        _write_lines(labels_dir / f"{name}.txt", ids)
    write_phone_table(out / "phones.txt")
    _write_lines(out / "speakers.tsv", ["speaker_id\tchapter_id\tengine\tvoice\tsex\tsettings"] + [
        f"{s.speaker_id}\t{s.chapter_id}\t{s.engine}\t{s.voice}\t{s.sex}\t{json.dumps(s.settings, sort_keys=True)}"
        for s in roster])
    minutes = [sum(r["n_samples"] for r in rs) / SAMPLE_RATE / 60 for rs in rows_by_speaker]
    _write_lines(out / "LibriSpeech" / "SPEAKERS.TXT", ["; ID | SEX | SUBSET | MINUTES | NAME"] + [
        f"{s.speaker_id} | {s.sex} | train-clean-100 | {m:.2f} | {s.engine} {s.voice}"
        for s, m in zip(roster, minutes, strict=True)])
    _write_lines(out / "utterances.tsv", ["utterance_id\tn_samples\tn_labels\trms_dbfs\tpeak\ttext"] + [
        "\t".join(map(str, (r["utterance_id"], r["n_samples"], r["n_samples"] // HOP_SAMPLES, r["rms_dbfs"],
                            r["peak"], r["text"]))) for r in rows])
    _write_lines(out / "phone_segments.txt", ["# utterance_id start_s end_s class_index"] + [
        f"{r['utterance_id']} {s:.4f} {e:.4f} {c}" for r in rows for s, e, c in r["segments"]])
    (out / "LICENSES.txt").write_text(
        f"Transcripts: {text.TEXT_SOURCE['name']} (Debian package wordnet-base).\n\n{text.WORDNET_NOTICE}\n"
        "Audio: output of espeak-ng (GPL-3+), festival with festvox voices and the CMU lexicon (X11-style "
        "permissive) and flite (BSD-style); see docs/data.md.\n", encoding="utf-8")
    return {"utterances": len(rows), "speakers": len(roster), "splits": {k: len(v) for k, v in splits.items()},
            "samples": sum(r["n_samples"] for r in rows),
            "hours": round(sum(r["n_samples"] for r in rows) / SAMPLE_RATE / 3600, 4),
            "unknown_phones": sum(r["n_unknown"] for r in rows)}


def _command_version(command: list[str], max_chars: int = 200) -> str:
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return " ".join((run.stdout or run.stderr).split())[:max_chars]


def versions() -> dict:
    """Versions of everything that shapes the output (recorded in the manifest)."""
    import soundfile
    import torch
    import torchaudio

    listing = _command_version(["dpkg-query", "-W", "-f", "${Package}=${Version} ", *APT_VERSIONED], 2000)
    apt = dict(item.split("=", 1) for item in listing.split() if "=" in item)
    return {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "torchaudio": torchaudio.__version__, "soundfile": soundfile.__version__,
            "libsndfile": soundfile.__libsndfile_version__, "apt": apt,
            "festival": _command_version(["festival", "--version"]), "flite": _command_version(["flite", "--version"])}


def generate(args: argparse.Namespace) -> dict:
    """Generate the corpus described by parsed CLI ``args``; returns the manifest."""
    engine_names = tuple(args.engines.split(","))
    check_requirements(engine_names)
    out = Path(args.out)
    _prepare_output(out, args.force)
    roster = make_roster(args.speakers, args.seed, engine_names)
    sentences = text.wordnet_sentences()
    tasks = []
    for speaker in roster:
        rngs = [np.random.default_rng([args.seed, speaker.index, u, 0]) for u in range(args.utterances)]
        tasks.append({"speaker": speaker.to_dict(), "seed": args.seed, "audio_format": args.format,
                      "audio_dir": str(out / AUDIO_SUBDIR),
                      "texts": [text.make_utterance_text(sentences, r, args.min_words, args.max_words) for r in rngs],
                      "plans": [plan_utterance(speaker, u, args.seed) for u in range(args.utterances)]})
    rows_by_speaker = _run_workers(tasks, args.jobs, args.quiet)
    counts = _write_tables(out, roster, rows_by_speaker, args)
    manifest = {
        "generator": "training.data.synth", "format_version": FORMAT_VERSION,
        "arguments": {k: getattr(args, k) for k in ("speakers", "utterances", "seed", "format", "engines",
                                                    "test_fraction", "min_words", "max_words")},
        "not_recorded": ["--jobs", "output path", "wall-clock times"],
        "sample_rate": SAMPLE_RATE, "hop_samples": HOP_SAMPLES, "phone_table": "phones.txt",
        "label_convention": "center: n_samples // 160 labels; label i is the phone at sample 160*i + 80",
        "timing_corrections_s": {"festival_delay": engines.FESTIVAL_DELAY_S,
                                 "espeak_stop_advance": engines.ESPEAK_STOP_ADVANCE_S},
        "text_source": text.TEXT_SOURCE, "n_sentences_available": len(sentences),
        "counts": counts, "versions": versions(),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.data.synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="output directory")
    parser.add_argument("--speakers", type=int, default=40)
    parser.add_argument("--utterances", type=int, default=50, help="utterances per speaker")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument("--format", choices=("flac", "wav"), default="flac")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset of espeak,festival,flite")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="held-out utterances per speaker")
    parser.add_argument("--min-words", type=int, default=10)
    parser.add_argument("--max-words", type=int, default=26)
    parser.add_argument("--force", action="store_true", help="replace an existing corpus in OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.speakers < 1 or args.utterances < 1 or args.jobs < 1 or args.seed < 0:
        parser.error("--speakers, --utterances and --jobs must be >= 1 and --seed >= 0")
    if not set(args.engines.split(",")) <= set(ENGINES):
        parser.error(f"--engines must be a comma-separated subset of {','.join(ENGINES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    try:
        manifest = generate(args)
    except (engines.EngineMissing, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    counts = manifest["counts"]
    print(f"wrote {counts['utterances']} utterances from {counts['speakers']} speakers "
          f"({counts['hours']:.2f} h) to {args.out} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
