"""A corpus of recorded human speech from Debian packages, in LibriSpeech layout, without root.

    python -m training.data.debian_speech OUT [--cache data/debs] [--deb-dir DIR] [--eval-fraction 0.25]
    python -m training.data.debian_speech OUT --telephone      # the 8 kHz voices instead, upsampled to 16 kHz

The Asterisk telephony prompts ship as 16 kHz G.722 recordings of four professional voices in five languages
(:data:`VOICES`); three more voices ship only at telephone bandwidth, 8 kHz GSM or PCM (:data:`TELEPHONE_VOICES`:
Colombian Spanish, French, Italian), which ``--telephone`` builds into a separate corpus, upsampled to 16 kHz with
an empty band above 4 kHz.
Each package is fetched with ``apt-get download`` into ``--cache`` (or taken from ``--deb-dir``), unpacked with
``dpkg -x``, decoded with Debian's ``ffmpeg`` and written as 16 kHz FLAC::

    LibriSpeech/train-clean-100/<spk>/<chap>/<spk>-<chap>-<utt>.flac   <chap>: the language's number
    LibriSpeech100_labels_split/{train_split,test_split}.txt          split by prompt name (same in every language)
    utterances.tsv   id, package, version, licence, language, voice, prompt, split, duration_s, transcript
    LICENSES/<package>.copyright   manifest.json (packages, versions, licences, hours, exclusions)

A prompt's split is fixed by a hash of its name, so a prompt held out for evaluation is held out in every
language. Recordings reserved for an independent check of the model are never read (:data:`RESERVED`).
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import subprocess
import zlib
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from training.data.audio_io import AudioFileError

FORMAT_VERSION = 1
AUDIO_SUBDIR = Path("LibriSpeech") / "train-clean-100"
LABELS_SUBDIR = Path("LibriSpeech100_labels_split")
SOUNDS_DIR = Path("usr/share/asterisk/sounds")
TRANSCRIPTS_PACKAGE = "asterisk-core-sounds-en"
TRANSCRIPTS_FILE = Path("usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz")

RESERVED_PACKAGES = ("pocketsphinx-testdata", "alsa-utils", "klettres-data")
"""Held out for an independent check of the model: never downloaded, read or evaluated on here."""
RESERVED_FOLDERS = {"en": ("digits", "letters", "phonetic")}
"""Folders of a language's Asterisk sounds held out for the same check."""
NON_SPEECH_FOLDERS = ("silence",)
MIN_SECONDS = 0.2
"""Shorter files (the Russian voice ships some empty ones) are left out, judged by their size in bytes."""
CODECS = {"g722": (("-f", "g722"), 8000), "gsm": (("-f", "gsm"), 1650), "wav": ((), 16000)}
"""file extension: (ffmpeg's input options: headerless G.722 at 16 kHz, headerless GSM 06.10 at 8 kHz, WAV as its
header says; bytes per second)."""


@dataclass(frozen=True)
class Voice:
    package: str
    language: str  # ISO 639-1
    voice: str  # the folder name under usr/share/asterisk/sounds
    speaker_id: int  # numeric, so utterance ids follow LibriSpeech's spk-chapter-utt
    chapter: int
    licence: str
    codec: str = "g722"  # a key of CODECS: the recordings' file extension


VOICES = (
    Voice("asterisk-core-sounds-en-g722", "en", "en_US_f_Allison", 9101, 1, "CC-BY-SA-3.0 (Allison Smith)"),
    Voice("asterisk-core-sounds-es-g722", "es", "es_MX_f_Allison", 9101, 2, "CC-BY-SA-3.0 (Allison Smith)"),
    Voice("asterisk-core-sounds-fr-g722", "fr", "fr_CA_f_June", 9102, 3, "CC-BY-SA-3.0 (June Wallack)"),
    Voice("asterisk-core-sounds-it-g722", "it", "it_IT_m_Carlo", 9103, 4, "CC-BY-3.0 (Carlo Flora)"),
    Voice("asterisk-core-sounds-ru-g722", "ru", "ru_RU_f_IvrvoiceRU", 9104, 5, "CC-BY-3.0 (Maxim Topal)"),
)
TELEPHONE_VOICES = (
    Voice("asterisk-prompt-es-co", "es", "es", 9105, 6, "GPL-2.0-only (Avatar Ltda.; July E. Jiménez)", "gsm"),
    Voice("asterisk-prompt-fr-armelle", "fr", "fr", 9106, 7, "BSD-style (Michel Gutierrez; Armelle Desjardins)", "gsm"),
    Voice("asterisk-prompt-it-menardi-wav", "it", "it_IT_f_Menardi", 9107, 8,
          "CC-BY-SA-3.0 (Marco Menardi, Paola Dal Zot)", "wav"),
)
"""8 kHz voices: GSM 06.10 or 8 kHz PCM, telephone bandwidth only."""


class PackageError(RuntimeError):
    """A Debian package could not be fetched, unpacked or decoded; the message names it and says why."""


def prompt_split(prompt: str, eval_fraction: float) -> str:
    """``"test"`` for a stable ``eval_fraction`` of prompt names (hash of the name), else ``"train"``."""
    return "test" if zlib.crc32(prompt.encode()) % 10_000 < eval_fraction * 10_000 else "train"


def is_reserved(language: str, prompt: str) -> bool:
    """Whether a prompt (its path under the voice folder, without extension) is reserved for the independent check."""
    return prompt.split("/", 1)[0] in RESERVED_FOLDERS.get(language, ()) and "/" in prompt


def _run(command: list[str], package: str, what: str) -> subprocess.CompletedProcess:
    try:
        done = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError as error:
        raise PackageError(f"{package}: cannot {what}: '{command[0]}' is not installed") from error
    if done.returncode != 0:
        raise PackageError(f"{package}: cannot {what}: {' '.join(command)} failed: {done.stderr.strip()[-400:]}")
    return done


def fetch_deb(package: str, cache: Path, deb_dir: Path | None = None) -> Path:
    """The package's ``.deb``: from ``deb_dir`` when given (no network), else ``apt-get download`` into ``cache``."""
    if package in RESERVED_PACKAGES:
        raise PackageError(f"{package}: reserved for an independent check of the model; it is never used here")
    for folder in ([deb_dir] if deb_dir is not None else [cache]):
        found = sorted(folder.glob(f"{package}_*.deb")) if folder.is_dir() else []
        if found:
            return found[-1]
    if deb_dir is not None:
        raise PackageError(f"{package}: no {package}_*.deb in {deb_dir}")
    cache.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", package], package, "download (apt-get download; run `apt-get update` first?)")
    for name in Path.cwd().glob(f"{package}_*.deb"):
        shutil.move(str(name), cache / name.name)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if not found:
        raise PackageError(f"{package}: apt-get download finished but left no .deb")
    return found[-1]


def unpack_deb(deb: Path, package: str, cache: Path) -> tuple[Path, str]:
    """``dpkg -x`` into ``cache/unpacked/<package>``; returns that folder and the package version."""
    version = _run(["dpkg-deb", "-f", str(deb), "Version"], package, "read the version").stdout.strip()
    target = cache / "unpacked" / f"{package}_{version}"
    if not (target / ".complete").is_file():
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        _run(["dpkg", "-x", str(deb), str(target)], package, "unpack (dpkg -x)")
        (target / ".complete").write_text(version)
    return target, version


def fetch_package(package: str, out: Path, cache: Path, deb_dir: Path | None = None) -> tuple[Path, str]:
    """Fetch and unpack ``package`` (:func:`fetch_deb`, :func:`unpack_deb`) and copy its copyright file to
    ``out/LICENSES/<package>.copyright``; returns the unpacked folder and the version."""
    unpacked, version = unpack_deb(fetch_deb(package, cache, deb_dir), package, cache)
    copyright_file = unpacked / "usr/share/doc" / package / "copyright"
    if copyright_file.is_file():
        (out / "LICENSES").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(copyright_file, out / "LICENSES" / f"{package}.copyright")
    return unpacked, version


def read_transcripts(unpacked: Path) -> dict[str, str]:
    """``{prompt: text}`` from ``core-sounds-en.txt.gz``; bracketed texts (``[beep tone]``) mark non-speech."""
    texts = {}
    with gzip.open(unpacked / TRANSCRIPTS_FILE, "rt", encoding="utf-8", errors="replace") as lines:
        for line in lines:
            name, sep, text = line.partition(":")
            if sep and not line.startswith(";"):
                texts[name.strip()] = text.strip()
    return texts


def decode_prompt(source: Path, target: Path, package: str, codec: str = "g722") -> float:
    """Decode a recording (headerless 16 kHz G.722, headerless 8 kHz GSM, or WAV) to 16 kHz mono PCM16 FLAC, resampled
    by ffmpeg where needed; returns its duration in seconds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", *CODECS[codec][0], "-i", str(source), "-ac", "1",
          "-ar", "16000", "-sample_fmt", "s16", str(target)], package, f"decode {source.name} (Debian's ffmpeg)")
    try:
        n_samples = len(sf.read(str(target), dtype="int16")[0])
    except Exception as error:
        raise AudioFileError(target, f"decoded from {package} but unreadable ({error})") from error
    if n_samples == 0:
        raise AudioFileError(source, f"{package}: decodes to no samples")
    return n_samples / 16000


def voice_prompts(unpacked: Path, voice: Voice, transcripts: dict[str, str]) -> list[tuple[str, Path]]:
    """``(prompt, path)`` of the voice's speech recordings, sorted; reserved, silent and tone prompts left out."""
    root = unpacked / SOUNDS_DIR / voice.voice
    if not root.is_dir():
        raise PackageError(f"{voice.package}: no {SOUNDS_DIR / voice.voice} in the package")
    prompts = []
    min_bytes = MIN_SECONDS * CODECS[voice.codec][1]
    for path in sorted(root.rglob(f"*.{voice.codec}")):
        prompt = path.relative_to(root).with_suffix("").as_posix()
        if is_reserved(voice.language, prompt) or prompt.split("/")[0] in NON_SPEECH_FOLDERS:
            continue
        if transcripts.get(prompt, "").startswith("[") or path.stat().st_size < min_bytes:
            continue
        prompts.append((prompt, path))
    return prompts


def build_corpus(out: Path, cache: Path, deb_dir: Path | None = None, voices: tuple[Voice, ...] = VOICES,
                 eval_fraction: float = 0.25) -> dict:
    """Fetch, unpack and decode every voice into ``out``; returns the manifest (also written to out/manifest.json)."""
    transcripts_deb = fetch_deb(TRANSCRIPTS_PACKAGE, cache, deb_dir)
    transcripts = read_transcripts(unpack_deb(transcripts_deb, TRANSCRIPTS_PACKAGE, cache)[0])
    rows, packages = [], {}
    for voice in voices:
        unpacked, version = fetch_package(voice.package, out, cache, deb_dir)
        prompts = voice_prompts(unpacked, voice, transcripts)
        for index, (prompt, source) in enumerate(prompts):
            utterance_id = f"{voice.speaker_id}-{voice.chapter}-{index:04d}"
            target = out / AUDIO_SUBDIR / str(voice.speaker_id) / str(voice.chapter) / f"{utterance_id}.flac"
            duration_s = decode_prompt(source, target, voice.package, voice.codec)
            rows.append({"id": utterance_id, "package": voice.package, "version": version, "licence": voice.licence,
                         "language": voice.language, "voice": voice.voice, "prompt": prompt,
                         "split": prompt_split(prompt, eval_fraction), "duration_s": round(duration_s, 3),
                         "transcript": transcripts.get(prompt, "") if voice.language == "en" else ""})
        seconds = sum(r["duration_s"] for r in rows if r["package"] == voice.package)
        packages[voice.package] = {"version": version, "licence": voice.licence, "language": voice.language,
                                   "voice": voice.voice, "files": len(prompts), "hours": round(seconds / 3600, 3),
                                   "codec": voice.codec}
    excluded = {"reserved_packages": list(RESERVED_PACKAGES),
                "reserved_folders": {k: list(v) for k, v in RESERVED_FOLDERS.items()},
                "non_speech_folders": list(NON_SPEECH_FOLDERS),
                "non_speech_prompts": "prompts whose English transcript is in [brackets] (tones)",
                "shorter_than_s": MIN_SECONDS}
    return write_index(out, rows, packages, excluded, eval_fraction=eval_fraction)


def write_index(out: Path, rows: list[dict], packages: dict, excluded: dict, **fields) -> dict:
    """The split files, ``utterances.tsv`` and ``manifest.json`` (with ``excluded`` and any other ``fields``) of a
    corpus whose ``rows`` have an ``id``, a ``split`` and a ``duration_s``; returns the manifest."""
    labels = out / LABELS_SUBDIR
    labels.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        (labels / f"{split}_split.txt").write_text("".join(f"{r['id']}\n" for r in rows if r["split"] == split))
    columns = list(rows[0]) if rows else []
    lines = ["\t".join(columns)] + ["\t".join(str(r[c]).replace("\t", " ") for c in columns) for r in rows]
    (out / "utterances.tsv").write_text("\n".join(lines) + "\n")
    hours = {split: round(sum(r["duration_s"] for r in rows if r["split"] == split) / 3600, 3)
             for split in ("train", "test")}
    manifest = {"format_version": FORMAT_VERSION, **fields, "packages": packages,
                "utterances": {s: sum(r["split"] == s for r in rows) for s in ("train", "test")}, "hours": hours,
                "speakers": sorted({r["id"].split("-")[0] for r in rows}), "excluded": excluded}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.data.debian_speech", description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="corpus folder to write")
    parser.add_argument("--cache", type=Path, default=Path("data/debs"), help="downloaded and unpacked .deb files")
    parser.add_argument("--deb-dir", type=Path, default=None, help="take the .deb files from here (no download)")
    parser.add_argument("--eval-fraction", type=float, default=0.25, help="share of prompt names held out as test")
    parser.add_argument("--telephone", action="store_true",
                        help="build the 8 kHz voices (TELEPHONE_VOICES), upsampled to 16 kHz, not the 16 kHz ones")
    parser.add_argument("--languages", default=None, help="comma-separated (default: every voice's)")
    args = parser.parse_args(argv)
    voices = TELEPHONE_VOICES if args.telephone else VOICES
    wanted = set(args.languages.split(",")) if args.languages else {v.language for v in voices}
    unknown = wanted - {v.language for v in voices}
    if unknown:
        parser.error(f"unknown language(s) {sorted(unknown)}; known: {sorted({v.language for v in voices})}")
    try:
        manifest = build_corpus(args.out, args.cache.resolve(), args.deb_dir,
                                tuple(v for v in voices if v.language in wanted), args.eval_fraction)
    except PackageError as error:
        raise SystemExit(f"error: {error}") from error
    print(json.dumps({"out": str(args.out), "hours": manifest["hours"], "utterances": manifest["utterances"]}))


if __name__ == "__main__":
    main()
