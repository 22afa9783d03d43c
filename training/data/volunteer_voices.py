"""Words and short phrases recorded by volunteers for two Debian children's programs, in LibriSpeech layout.

    python -m training.data.volunteer_voices OUT [--cache data/debs] [--deb-dir DIR]

* ``tuxpaint-stamps-default``: Tux Paint's spoken stamp descriptions ("A frog.", "Un tabonero."), one volunteer
  per language as its changelog credits them (Bulgarian: Krasimir Petkov, Spanish: Estefanía Ortiz, ...), 12
  languages, about 3 h at 44.1 kHz.
* ``ktuberling-data``: KTuberling's spoken object names ("nose", "pineapple"), one voice per language.

Both packages are GPL-2+. Each (package, language) is one speaker id (:data:`SOURCES`): the packages do not say
who recorded every file, so a language may hide more than one person. Every English recording goes to the
``test`` split and everything else to ``train``: the English files are speakers that no model here was trained
on, the raw material of an unseen-speaker phone test (``training.data.real_eval --unseen``); the rest adds
languages and voices to training. Recordings below 16 kHz (Tux Paint ships a few at 8 kHz) are left out, so that
no band-limited audio slips in, and so is every byte-identical copy of an earlier file (Tux Paint reuses one
recording for several stamps, e.g. the outlined and filled letters).

The output has :mod:`training.data.debian_speech`'s layout and ``utterances.tsv`` columns; the English
transcripts are the stamp's English description (first line of its ``.txt``) or the object's name.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from smooth_infomax.audio import SAMPLE_RATE
from training.data.debian_speech import AUDIO_SUBDIR, MIN_SECONDS, PackageError, fetch_package, write_index

HELD_OUT_LANGUAGE = "en"
"""Its recordings go to the ``test`` split: never trained on."""
STAMPS_DIR = Path("usr/share/tuxpaint/stamps")
TUBERLING_DIR = Path("usr/share/ktuberling/sounds")
STAMP_FILE = re.compile(r"^(?P<stamp>.+)_desc(?:_(?P<language>[a-z]{2,3}(?:_[A-Z]{2})?))?\.ogg$")
TUBERLING_THEMES = ("egypt_", "moon_", "pizzeria_", "tv_")
TUBERLING_WORDS = {"palmtree": "palm tree", "fallingstar": "falling star", "moonwalker": "moon walker",
                   "sphynx": "sphinx", "broccolli": "broccoli", "ufo": "U F O"}
"""KTuberling file names that are not the spoken words as written."""


@dataclass(frozen=True)
class Source:
    package: str
    licence: str
    first_speaker_id: int  # (package, language) k gets first_speaker_id + k, languages sorted


SOURCES = (Source("tuxpaint-stamps-default", "GPL-2+ (Tux Paint stamps: Bill Kendrick and volunteers)", 9201),
           Source("ktuberling-data", "GPL-2+ (KDE KTuberling)", 9301))


def stamp_recordings(unpacked: Path) -> list[tuple[str, str, Path, str]]:
    """``(language, prompt, path, transcript)`` of every spoken stamp description, sorted by path."""
    found = []
    for path in sorted((unpacked / STAMPS_DIR).rglob("*_desc*.ogg")):
        match = STAMP_FILE.match(path.name)
        if match is None:
            continue
        language = match["language"] or HELD_OUT_LANGUAGE
        stamp = path.parent / match["stamp"]
        text_file = stamp.with_suffix(".txt")
        transcript = ""
        if language == HELD_OUT_LANGUAGE and text_file.is_file():
            transcript = text_file.read_text(encoding="utf-8", errors="replace").splitlines()[0].strip()
        found.append((language, stamp.relative_to(unpacked / STAMPS_DIR).as_posix(), path, transcript))
    return found


def tuberling_recordings(unpacked: Path) -> list[tuple[str, str, Path, str]]:
    """``(language, prompt, path, transcript)`` of every spoken object name, sorted by path."""
    found = []
    for path in sorted((unpacked / TUBERLING_DIR).glob("*/*.ogg")):
        language, name = path.parent.name, path.stem
        word = name
        for theme in TUBERLING_THEMES:
            word = word.removeprefix(theme)
        transcript = TUBERLING_WORDS.get(word, word) if language == HELD_OUT_LANGUAGE else ""
        found.append((language, name, path, transcript))
    return found


def decode_recording(source: Path, target: Path, package: str) -> float | None:
    """Ogg Vorbis at 16 kHz or more -> 16 kHz mono PCM16 FLAC; returns its duration in seconds, or ``None`` for a
    recording left out (below 16 kHz or shorter than ``MIN_SECONDS``)."""
    try:
        audio, rate = sf.read(str(source), dtype="float32", always_2d=True)
    except Exception as error:
        raise PackageError(f"{package}: cannot decode {source.name} ({error})") from error
    if rate < SAMPLE_RATE or len(audio) < MIN_SECONDS * rate:
        return None
    mono = torch.from_numpy(audio.mean(axis=1))
    if rate != SAMPLE_RATE:
        mono = AF.resample(mono, rate, SAMPLE_RATE)
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(target), np.clip(mono.numpy(), -1.0, 1.0), SAMPLE_RATE, subtype="PCM_16")
    return len(mono) / SAMPLE_RATE


def build_corpus(out: Path, cache: Path, deb_dir: Path | None = None, sources: tuple[Source, ...] = SOURCES) -> dict:
    """Fetch, unpack and decode every source into ``out``; returns the manifest (also out/manifest.json)."""
    rows: list[dict] = []
    packages, seen = {}, set()
    duplicates = 0
    for source in sources:
        unpacked, version = fetch_package(source.package, out, cache, deb_dir)
        recordings = listing(source, unpacked)
        new_rows, copies = decode_source(source, recordings, version, out, seen)
        rows += new_rows
        duplicates += copies
        packages[source.package] = {"version": version, "licence": source.licence,
                                    "languages": sorted({language for language, *_ in recordings}),
                                    "files": len(new_rows),
                                    "hours": round(sum(r["duration_s"] for r in new_rows) / 3600, 3)}
    excluded = {"held_out_language": HELD_OUT_LANGUAGE, "below_16_khz": True, "shorter_than_s": MIN_SECONDS,
                "byte_identical_copies": duplicates}
    return write_index(out, rows, packages, excluded)


def listing(source: Source, unpacked: Path) -> list[tuple[str, str, Path, str]]:
    """``(language, prompt, path, transcript)`` of the package's recordings."""
    return (stamp_recordings if source.package.startswith("tuxpaint") else tuberling_recordings)(unpacked)


def decode_source(source: Source, recordings: list[tuple[str, str, Path, str]], version: str, out: Path,
                  seen: set[bytes]) -> tuple[list[dict], int]:
    """Decode one package's ``recordings`` (:func:`listing`) into ``out``; returns their ``utterances.tsv`` rows and
    the number of byte-identical copies skipped (``seen`` holds the SHA-256 of every recording decoded so far)."""
    languages = sorted({language for language, *_ in recordings})
    counts = {language: 0 for language in languages}
    rows, duplicates = [], 0
    for language, prompt, path, transcript in recordings:
        digest = hashlib.sha256(path.read_bytes()).digest()
        if digest in seen:
            duplicates += 1
            continue
        seen.add(digest)
        speaker = source.first_speaker_id + languages.index(language)
        utterance_id = f"{speaker}-{speaker % 100}-{counts[language]:04d}"
        target = out / AUDIO_SUBDIR / str(speaker) / str(speaker % 100) / f"{utterance_id}.flac"
        duration_s = decode_recording(path, target, source.package)
        if duration_s is None:
            continue
        counts[language] += 1
        rows.append({"id": utterance_id, "package": source.package, "version": version, "licence": source.licence,
                     "language": language, "voice": f"{source.package}:{language}", "prompt": prompt,
                     "split": "test" if language == HELD_OUT_LANGUAGE else "train",
                     "duration_s": round(duration_s, 3), "transcript": transcript})
    return rows, duplicates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.data.volunteer_voices",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="corpus folder to write")
    parser.add_argument("--cache", type=Path, default=Path("data/debs"), help="downloaded and unpacked .deb files")
    parser.add_argument("--deb-dir", type=Path, default=None, help="take the .deb files from here (no download)")
    args = parser.parse_args(argv)
    try:
        manifest = build_corpus(args.out, args.cache.resolve(), args.deb_dir)
    except PackageError as error:
        raise SystemExit(f"error: {error}") from error
    print(json.dumps({"out": str(args.out), "hours": manifest["hours"], "utterances": manifest["utterances"],
                      "speakers": len(manifest["speakers"])}))


if __name__ == "__main__":
    main()
