"""An evaluation corpus of real human speech for the linear probes, built from the held-out ``test`` split of the
Debian Asterisk-prompt corpus (:mod:`training.data.debian_speech`) only.

    python -m training.data.real_eval data/real data/real_eval [--check-agreement 20] [--force]
                                      [--unseen data/voices]
    python -m training.evaluate --data data/real_eval --mfcc --model sim=runs/sim --out results/real

* Phone labels for the English utterances come from forced alignment with PocketSphinx 5
  (:mod:`training.data.forced_align`); utterances with a word missing from its dictionary, or whose alignment
  fails, get none and are counted. Other languages have no transcripts and get no phone labels.
* The probe splits (``train_split`` / ``test_split``, about 70 / 30 %) are drawn by prompt name (30 % of the
  distinct names, ranked by a salted hash), over all four speakers: every speaker is in both probe splits, and one
  prompt's recordings in different languages stay together.
* ``--unseen ROOT`` adds the ``test`` split of a second corpus whose speakers are not in the first
  (:mod:`training.data.volunteer_voices`) as a third probe split, ``unseen_split``: train the phone probe on
  ``train_split`` and test it there to measure phones on speakers that neither the encoders nor the probe heard.
  ``train_split`` and ``test_split`` are the same with or without it.
* ``--check-agreement N`` compares the PocketSphinx labels of N English utterances with a second, independent
  method (:mod:`training.data.alignment_check`) and writes ``alignment_check.json``.

Written to OUT, in the LibriSpeech layout ``training.evaluate --data`` reads::

    LibriSpeech/train-clean-100/<spk>/<chap>/<id>.flac      copies of the test-split recordings
    LibriSpeech100_labels_split/{train_split,test_split}.txt  the probe splits [and unseen_split.txt]
    LibriSpeech100_labels_split/converted_aligned_phones.txt  labels of the aligned English utterances
    phones.txt   utterances.tsv   manifest.json   [alignment_check.json]   [alignment_check_unseen.json]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smooth_infomax.audio import HOP_SAMPLES, SAMPLE_RATE
from training.data.alignment_check import AgreementCheck, non_silence, to_pcm16
from training.data.audio_io import audio_info, read_audio
from training.data.engines import EngineMissing
from training.data.forced_align import MIN_SCORE_PER_FRAME, AlignmentError, PocketsphinxAligner, normalise_text
from training.data.librispeech import CorpusPaths, clear_previous_build, read_split, utterance_path
from training.data.phones import PHONES, write_phone_table

FORMAT_VERSION = 1
SOURCE_SPLIT = "test"
"""The only split of the source corpus read here: it is held out of model training."""
TRANSCRIBED_LANGUAGE = "en"
PROBE_TEST_FRACTION = 0.3
PROBE_SPLIT_SALT = "smooth-infomax real_eval probe split v1"
"""Salts the prompt hash, so the probe split is independent of the source corpus's own hash split."""
PROBE_SPLIT_RULE = (f"distinct prompt names ranked by sha256('{PROBE_SPLIT_SALT}\\0' + prompt); the first "
                    f"round({PROBE_TEST_FRACTION} * n) (at least 1 of 2 or more) are probe-test, the rest probe-train")
REQUIRED_COLUMNS = ("id", "language", "prompt", "split", "duration_s", "transcript")
UNSEEN_SPLIT = "unseen"
GENERATED = ("LibriSpeech", "LibriSpeech100_labels_split", "phones.txt", "utterances.tsv", "manifest.json",
             "alignment_check.json", "alignment_check_unseen.json")


@dataclass(frozen=True)
class SourceUtterance:
    """One row of the source corpus's ``utterances.tsv``."""

    id: str
    language: str
    prompt: str
    duration_s: float
    transcript: str
    root: Path = Path()  # the corpus it comes from

    @property
    def speaker(self) -> str:
        return self.id.split("-", 1)[0]


@dataclass
class Labelled:
    """What became of one utterance: its probe split, frame count and phone labels (``None``: no labels)."""

    source: SourceUtterance
    probe_split: str
    n_frames: int
    labels: np.ndarray | None
    status: str  # "aligned", "no transcript (<language>)" or "skipped: <reason>"
    words: list[str]
    score_per_frame: float | None = None


# --- reading the source corpus --------------------------------------------------------------------------------------

def read_source(root: Path) -> list[SourceUtterance]:
    """The ``test``-split rows of ``root/utterances.tsv``, checked against ``root``'s ``test_split.txt``."""
    table = root / "utterances.tsv"
    if not table.is_file():
        raise FileNotFoundError(f"{table}: not found (build the corpus with python -m training.data.debian_speech)")
    with open(table, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{table}: missing column(s) {', '.join(missing)}")
        rows = [SourceUtterance(r["id"], r["language"], r["prompt"], float(r["duration_s"]), r["transcript"], root)
                for r in reader if r["split"] == SOURCE_SPLIT]
    listed = set(read_split(CorpusPaths(root).split(f"{SOURCE_SPLIT}_split")))
    if {r.id for r in rows} != listed:
        raise ValueError(f"{table}: the '{SOURCE_SPLIT}' rows differ from {SOURCE_SPLIT}_split.txt "
                         f"({len(rows)} rows, {len(listed)} listed)")
    return rows


def check_unseen(sources: list[SourceUtterance], unseen: list[SourceUtterance]) -> None:
    """Refuse an ``--unseen`` corpus that shares a speaker (and so possibly utterance ids) with the main one."""
    shared = sorted({s.speaker for s in sources} & {s.speaker for s in unseen})
    if shared:
        raise ValueError(f"{unseen[0].root}: speaker(s) {', '.join(shared)} are also in {sources[0].root}; "
                         "the unseen split must hold other speakers")


def probe_splits(prompts: Iterable[str], test_fraction: float = PROBE_TEST_FRACTION) -> dict[str, str]:
    """``{prompt: "train" | "test"}``: the distinct prompts ranked by a salted SHA-256 of the name, the first
    ``round(test_fraction * n)`` (at least one of two or more) are ``"test"``.

    Ranking, not a threshold on each hash, makes the share exact: a threshold put 79 % of the 159 prompts of
    data/real's test split into probe-train. The split depends only on the set of names, not on their order.
    """
    distinct = sorted(set(prompts), key=lambda p: hashlib.sha256(f"{PROBE_SPLIT_SALT}\0{p}".encode()).digest())
    n_test = max(1, round(test_fraction * len(distinct))) if len(distinct) >= 2 else 0
    return {prompt: "test" if rank < n_test else "train" for rank, prompt in enumerate(distinct)}


def write_selection_splits(out: Path, rows: Iterable[tuple[str, str, str]]) -> None:
    """Split probe-train once more, by prompt and the same ranking, into ``select_train_split.txt`` and
    ``select_val_split.txt`` (30 % of its prompts), so that models and settings can be compared and chosen without
    looking at probe-test: ``training.evaluate --train-split select_train_split.txt --test-split
    select_val_split.txt``. ``rows`` are ``(utterance id, prompt, probe split)``."""
    train_rows = [(utterance, prompt) for utterance, prompt, split in rows if split == "train"]
    again = probe_splits(prompt for _, prompt in train_rows)
    paths = CorpusPaths(out)
    for name, part in (("select_train", "train"), ("select_val", "test")):
        ids = [utterance for utterance, prompt in train_rows if again[prompt] == part]
        paths.split(f"{name}_split").write_text("".join(f"{i}\n" for i in ids))


# --- labelling ------------------------------------------------------------------------------------------------------

def label_utterance(aligner: PocketsphinxAligner, source: SourceUtterance, audio: np.ndarray,
                    split: str) -> Labelled:
    """Phone labels ``(n_samples // 160,)`` for an English utterance's ``audio (n_samples,)`` float; other
    languages and failed alignments get ``labels=None`` and a status that says why."""
    n_frames = len(audio) // HOP_SAMPLES
    if source.language != TRANSCRIBED_LANGUAGE or not source.transcript:
        return Labelled(source, split, n_frames, None, f"no transcript ({source.language})", [])
    words = normalise_text(source.transcript, aligner.knows)
    try:
        alignment = aligner.align(to_pcm16(audio), words)
        labels = alignment.frame_labels(len(audio))
    except AlignmentError as error:
        return Labelled(source, split, n_frames, None, f"skipped: {error}", words)
    if abs(alignment.n_frames - len(audio) / HOP_SAMPLES) > 1:
        raise AlignmentError(f"{source.id}: PocketSphinx saw {alignment.n_frames} frames in {len(audio)} samples")
    return Labelled(source, split, n_frames, labels, "aligned", words, round(alignment.score_per_frame, 2))


def source_path(source: SourceUtterance) -> Path:
    return utterance_path(CorpusPaths(source.root).audio_dir, source.id)


def label_all(sources: list[SourceUtterance], splits: dict[str, str], aligner: PocketsphinxAligner,
              quiet: bool = False) -> list[Labelled]:
    """:func:`label_utterance` for every source utterance (16 kHz audio required), with its probe split
    (``splits[prompt]``)."""
    results = []
    for index, source in enumerate(sources):
        audio = read_audio(source_path(source), expected_rate=SAMPLE_RATE)
        results.append(label_utterance(aligner, source, audio, splits[source.prompt]))
        if not quiet and (index + 1) % 100 == 0:
            print(f"labelled {index + 1}/{len(sources)}", file=sys.stderr)
    return results


# --- the agreement check --------------------------------------------------------------------------------------------

def check_sample(items: list[Labelled], n_utterances: int) -> list[Labelled]:
    """``n_utterances`` aligned utterances spread evenly over the list (all when there are fewer)."""
    aligned = [item for item in items if item.labels is not None]
    if n_utterances >= len(aligned):
        return aligned
    return [aligned[i] for i in np.linspace(0, len(aligned) - 1, n_utterances).round().astype(int)]


def check_agreement(items: list[Labelled], aligner: PocketsphinxAligner, n_utterances: int,
                    projector: str = "flite", reference: str | None = "espeak") -> dict:
    """The ``alignment_check.json`` dictionary: totals per comparison and every checked utterance's numbers."""
    check = AgreementCheck(aligner, projector, reference)
    per_utterance, started = {}, time.perf_counter()
    for item in check_sample(items, n_utterances):
        audio = read_audio(source_path(item.source), expected_rate=SAMPLE_RATE)
        per_utterance[item.source.id] = check.add(audio[: item.n_frames * HOP_SAMPLES], item.words, item.labels)
    return {"utterances": len(per_utterance), "projector": f"{projector} ({check.projector.voice})",
            "reference": f"{reference} ({check.reference.voice})" if check.reference else None,
            "method": ("Labels of TTS speech of the same words are carried onto the other recording along a DTW "
                       "path (symmetric steps, cosine distance) over per-utterance-normalised MFCC 1-12 + deltas; "
                       "phone starts are matched on a minimal-edit alignment of the two phone sequences."),
            "totals": check.summary(), "seconds": round(time.perf_counter() - started, 1),
            "per_utterance": per_utterance}


# --- writing --------------------------------------------------------------------------------------------------------

def prepare_output(out: Path, force: bool) -> None:
    """Refuse to mix with an earlier build unless ``force``; then remove what an earlier build wrote."""
    clear_previous_build(out, GENERATED, force, "an evaluation corpus")


def write_corpus(out: Path, items: list[Labelled]) -> None:
    """Audio copies, probe splits, labels, ``phones.txt`` and ``utterances.tsv`` under ``out``."""
    target = CorpusPaths(out)
    for item in items:
        source = source_path(item.source)
        destination = target.audio_dir / source.relative_to(CorpusPaths(item.source.root).audio_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
        n_samples, _ = audio_info(destination)
        if item.labels is not None and len(item.labels) != n_samples // HOP_SAMPLES:
            raise ValueError(f"{destination}: {len(item.labels)} phone labels for {n_samples} samples "
                             f"(expected {n_samples // HOP_SAMPLES})")
    target.labels_dir.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test", UNSEEN_SPLIT):
        ids = [item.source.id for item in items if item.probe_split == split]
        if ids or split != UNSEEN_SPLIT:
            target.split(f"{split}_split").write_text("".join(f"{i}\n" for i in ids))
    write_selection_splits(out, [(item.source.id, item.source.prompt, item.probe_split) for item in items])
    target.phone_labels.write_text("".join(f"{item.source.id} {' '.join(map(str, item.labels.tolist()))}\n"
                                           for item in items if item.labels is not None))
    write_phone_table(target.phone_table)
    (out / "utterances.tsv").write_text(_utterance_table(items), encoding="utf-8")


def _utterance_table(items: list[Labelled]) -> str:
    columns = ("id", "speaker", "language", "prompt", "probe_split", "duration_s", "frames", "non_sil_share",
               "score_per_frame", "status", "words")
    lines = ["\t".join(columns)]
    for item in items:
        share = "" if item.labels is None else f"{non_silence(item.labels):.3f}"
        score = "" if item.score_per_frame is None else str(item.score_per_frame)
        lines.append("\t".join((item.source.id, item.source.speaker, item.source.language, item.source.prompt,
                                item.probe_split, str(item.source.duration_s), str(item.n_frames), share, score,
                                item.status.replace("\t", " "), " ".join(item.words))))
    return "\n".join(lines) + "\n"


def _counts(items: list[Labelled]) -> dict:
    return {"utterances": len(items), "hours": round(sum(i.source.duration_s for i in items) / 3600, 4),
            "frames": sum(i.n_frames for i in items),
            "labelled_utterances": sum(i.labels is not None for i in items),
            "labelled_frames": sum(i.n_frames for i in items if i.labels is not None)}


def _label_counts(items: list[Labelled]) -> dict[str, int]:
    """Frames per class name over all labelled utterances, most frequent first."""
    labelled = [i.labels for i in items if i.labels is not None]
    counts = np.bincount(np.concatenate(labelled), minlength=len(PHONES)) if labelled else np.zeros(len(PHONES))
    return {PHONES[k]: int(counts[k]) for k in np.argsort(-counts, kind="stable") if counts[k]}


def _alignment_summary(items: list[Labelled]) -> dict:
    from importlib.metadata import version

    english = [i for i in items if i.source.language == TRANSCRIBED_LANGUAGE]
    skipped = [i for i in english if i.labels is None]
    return {"english_utterances": len(english), "aligned": len(english) - len(skipped), "skipped": len(skipped),
            "skipped_utterances": {i.source.id: i.status for i in skipped},
            "aligner": f"pocketsphinx {version('pocketsphinx')} (en-us, CMU dictionary, bestpath off, two passes)",
            "min_score_per_frame": MIN_SCORE_PER_FRAME,
            "labels_per_utterance": "n_samples // 160, checked against every copied FLAC",
            "label_counts": _label_counts(items)}


def _source_packages(root: Path) -> dict[str, str]:
    """``{package: version}`` from the source corpus's manifest.json (empty when it has none)."""
    path = root / "manifest.json"
    packages = json.loads(path.read_text()).get("packages", {}) if path.is_file() else {}
    return {name: entry.get("version", "") for name, entry in packages.items()}


def manifest(root: Path, items: list[Labelled], check: dict | None, unseen: Path | None = None,
             unseen_check: dict | None = None) -> dict:
    """Counts per speaker, language and probe split, alignment outcomes, versions and agreement figures."""
    keys = {"speakers": lambda i: i.source.speaker, "languages": lambda i: i.source.language,
            "probe_splits": lambda i: i.probe_split}
    data = {"format_version": FORMAT_VERSION, "source": str(root), "source_split": SOURCE_SPLIT,
            "source_packages": _source_packages(root), "probe_split_rule": PROBE_SPLIT_RULE,
            "probe_split_prompts": dict(Counter({i.source.prompt: i.probe_split for i in items}.values())),
            "total": _counts(items)}
    for name, key in keys.items():
        values = sorted({key(i) for i in items})
        data[name] = {value: _counts([i for i in items if key(i) == value]) for value in values}
    data["alignment"] = _alignment_summary(items)
    data["agreement"] = None if check is None else {"utterances": check["utterances"], **check["totals"]}
    if unseen is not None:
        data["unseen_source"] = str(unseen)
        data["unseen_source_packages"] = _source_packages(unseen)
        data["unseen_agreement"] = (None if unseen_check is None
                                    else {"utterances": unseen_check["utterances"], **unseen_check["totals"]})
    return data


def build(root: Path, out: Path, check_utterances: int = 0, force: bool = False, quiet: bool = False,
          projector: str = "flite", reference: str | None = "espeak", unseen: Path | None = None) -> dict:
    """Label, split and write the evaluation corpus (and the agreement checks); returns the manifest."""
    sources = read_source(root)
    unseen_sources = read_source(unseen) if unseen is not None else []
    if unseen_sources:
        check_unseen(sources, unseen_sources)
    prepare_output(out, force)
    aligner = PocketsphinxAligner()
    items = label_all(sources, probe_splits(source.prompt for source in sources), aligner, quiet)
    unseen_items = label_all(unseen_sources, {s.prompt: UNSEEN_SPLIT for s in unseen_sources}, aligner, quiet)
    write_corpus(out, items + unseen_items)
    checks: dict[str, dict | None] = {"alignment_check": None, "alignment_check_unseen": None}
    for name, group in (("alignment_check", items), ("alignment_check_unseen", unseen_items)):
        if check_utterances and group:
            checks[name] = check_agreement(group, aligner, check_utterances, projector, reference)
            (out / f"{name}.json").write_text(json.dumps(checks[name], indent=1) + "\n")
    data = manifest(root, items + unseen_items, checks["alignment_check"], unseen, checks["alignment_check_unseen"])
    (out / "manifest.json").write_text(json.dumps(data, indent=1) + "\n")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.data.real_eval", description=__doc__.split("\n")[0])
    parser.add_argument("root", type=Path, help="corpus of training.data.debian_speech (e.g. data/real)")
    parser.add_argument("out", type=Path, nargs="?", default=Path("data/real_eval"), help="folder to write")
    parser.add_argument("--unseen", type=Path, default=None, metavar="ROOT",
                        help="also label ROOT's test split (other speakers) as the unseen_split probe test")
    parser.add_argument("--check-agreement", type=int, default=0, metavar="N",
                        help="compare the labels of N English utterances with DTW-projected TTS labels")
    parser.add_argument("--projector", choices=("flite", "espeak"), default="flite",
                        help="TTS engine whose labels are projected onto the recordings in the check")
    parser.add_argument("--no-calibration", action="store_true",
                        help="skip the check's calibration on espeak-ng speech with known timings")
    parser.add_argument("--force", action="store_true", help="replace an evaluation corpus already in OUT")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")
    args = parser.parse_args(argv)
    reference = None if args.no_calibration else "espeak"
    try:
        data = build(args.root, args.out, args.check_agreement, args.force, args.quiet, args.projector, reference,
                     args.unseen)
    except (FileNotFoundError, FileExistsError, ValueError, AlignmentError, EngineMissing) as error:
        raise SystemExit(f"error: {error}") from error
    alignment = {k: v for k, v in data["alignment"].items() if k not in ("skipped_utterances", "label_counts")}
    print(json.dumps({"out": str(args.out), "total": data["total"], "probe_splits": data["probe_splits"],
                      "alignment": alignment, "agreement": data["agreement"],
                      "unseen_agreement": data.get("unseen_agreement")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
