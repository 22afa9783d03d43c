"""The real-speech corpus from Debian packages, built from tiny local .deb fixtures (dpkg-deb, ffmpeg; no network)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import data_fixtures as fx
from training.data import debian_speech as ds
from training.data.librispeech import CorpusPaths, read_split, utterance_path

# ffmpeg decodes G.722 and dpkg-deb unpacks the .debs; building the fixture packages takes seconds
pytestmark = [pytest.mark.requires_program("ffmpeg", "dpkg-deb"), pytest.mark.slow]

ENGLISH = ds.VOICES[0]
TEXTS = {"vm-deleted": "Message deleted.", "agent-pass": "Please enter your password followed by the pound key.",
         "auth-thankyou": "Thank you.", "queue-thankyou": "Thank you for your patience.",
         "beep": "[this is a simple beep tone]", "dictate/paused": "paused", "digits/1": "one", "letters/a": "a",
         "phonetic/alpha_p": "alpha", "silence/1": "[1 second of silence]", "empty": "(an empty recording)"}
SPEECH = ("vm-deleted", "agent-pass", "auth-thankyou", "queue-thankyou", "dictate/paused")
RESERVED = ("digits/1", "letters/a", "phonetic/alpha_p")


def _g722(path: Path, seconds: float, seed: int) -> None:
    """Encode a voiced-like tone as headerless G.722, as the Asterisk packages ship it."""
    wav = path.with_suffix(".wav")
    sf.write(wav, 0.3 * fx.tone(int(seconds * 16000), 16000, 120.0 + 10 * seed, seed), 16000, subtype="PCM_16")
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-f", "g722", str(path)],
                   check=True)
    wav.unlink()


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("debs")
    texts = root / "texts" / ds.TRANSCRIPTS_FILE
    texts.parent.mkdir(parents=True)
    with gzip.open(texts, "wt") as out:
        out.write("; Core Asterisk Sounds in English\n\n" + "".join(f"{k}: {v}\n" for k, v in TEXTS.items()))
    fx.build_deb(root / "texts", ds.TRANSCRIPTS_PACKAGE, "1.6.1-1", root)
    sounds = root / "sounds" / ds.SOUNDS_DIR / ENGLISH.voice
    for seed, prompt in enumerate(TEXTS):
        path = sounds / f"{prompt}.g722"
        path.parent.mkdir(parents=True, exist_ok=True)
        if prompt == "empty":
            path.write_bytes(b"")
        else:
            _g722(path, 0.5 + 0.25 * seed, seed)
    doc = root / "sounds/usr/share/doc" / ENGLISH.package
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nCopyright: 2003-2010, Allison Smith\nLicense: CC-BY-SA-3.0\n")
    fx.build_deb(root / "sounds", ENGLISH.package, "1.6.1-1", root)
    return root


@pytest.fixture(scope="module")
def corpus(debs, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("real")
    manifest = ds.build_corpus(out, out / "cache", deb_dir=debs, voices=(ENGLISH,), eval_fraction=0.4)
    return out, manifest


def _rows(out: Path) -> list[dict]:
    header, *lines = (out / "utterances.tsv").read_text().splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


def test_speech_prompts_decoded_with_provenance(corpus):
    out, manifest = corpus
    rows = _rows(out)
    assert sorted(r["prompt"] for r in rows) == sorted(SPEECH)
    paths = CorpusPaths(out)
    for row in rows:
        audio, rate = sf.read(utterance_path(paths.audio_dir, row["id"]))
        assert rate == 16000 and audio.ndim == 1
        assert abs(len(audio) / 16000 - float(row["duration_s"])) < 1e-3
        seed = list(TEXTS).index(row["prompt"])
        assert abs(len(audio) / 16000 - (0.5 + 0.25 * seed)) < 0.02  # G.722 round trip keeps the duration
        source = 0.3 * fx.tone(len(audio), 16000, 120.0 + 10 * seed, seed)
        assert abs(np.std(audio) / np.std(source) - 1) < 0.25  # the recording's level, not silence or noise
        assert (row["package"], row["version"], row["licence"]) == (ENGLISH.package, "1.6.1-1", ENGLISH.licence)
        assert row["transcript"] == TEXTS[row["prompt"]]
    package = manifest["packages"][ENGLISH.package]
    assert package["files"] == len(SPEECH) and package["version"] == "1.6.1-1"
    assert (out / "LICENSES" / f"{ENGLISH.package}.copyright").read_text().startswith("Files: *")
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_reserved_tone_silence_and_empty_recordings_are_never_read(corpus):
    out, manifest = corpus
    prompts = {r["prompt"] for r in _rows(out)}
    assert not prompts & {*RESERVED, "beep", "silence/1", "empty"}
    assert manifest["excluded"]["reserved_folders"]["en"] == ["digits", "letters", "phonetic"]
    for prompt in RESERVED:
        assert ds.is_reserved("en", prompt)
    assert not ds.is_reserved("en", "dictate/paused") and not ds.is_reserved("en", "digits")
    with pytest.raises(ds.PackageError, match="pocketsphinx-testdata: reserved"):
        ds.fetch_deb("pocketsphinx-testdata", out / "cache")


def test_split_is_by_prompt_name_and_stable(corpus):
    out, _ = corpus
    paths = CorpusPaths(out)
    train, test = read_split(paths.split("train_split")), read_split(paths.split("test_split"))
    assert sorted(train + test) == sorted(r["id"] for r in _rows(out)) and not set(train) & set(test)
    for row in _rows(out):
        assert row["split"] == ds.prompt_split(row["prompt"], 0.4)
        assert (row["id"] in test) == (row["split"] == "test")
    shares = [ds.prompt_split(f"prompt-{i}", 0.25) == "test" for i in range(4000)]
    assert 0.22 < np.mean(shares) < 0.28


def test_missing_decoder_names_the_package(debs, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dpkg", "dpkg-deb", "tar", "gzip", "xz", "zstd", "rm", "sh"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bin_dir / tool)
    env_path = os.environ["PATH"]
    os.environ["PATH"] = str(bin_dir)
    try:
        with pytest.raises(ds.PackageError, match=rf"{ENGLISH.package}: cannot decode .*'ffmpeg' is not installed"):
            ds.build_corpus(tmp_path / "out", tmp_path / "cache", deb_dir=debs, voices=(ENGLISH,))
    finally:
        os.environ["PATH"] = env_path


def test_missing_package_file_and_failing_download_name_the_package(tmp_path):
    with pytest.raises(ds.PackageError, match=rf"{ENGLISH.package}: no {ENGLISH.package}_\*.deb in"):
        ds.fetch_deb(ENGLISH.package, tmp_path / "cache", deb_dir=tmp_path)
    if shutil.which("apt-get"):
        with pytest.raises(ds.PackageError, match="asterisk-core-sounds-xx-g722: cannot download"):
            ds.fetch_deb("asterisk-core-sounds-xx-g722", tmp_path / "cache")


@pytest.mark.parametrize("voice", ds.TELEPHONE_VOICES[1:], ids=lambda v: v.codec)
def test_telephone_voices_are_upsampled_to_16_khz(tmp_path, debs, voice):
    """An 8 kHz GSM or WAV voice package becomes 16 kHz FLAC with nothing above 4 kHz; --telephone builds them."""
    sounds = tmp_path / "staging" / ds.SOUNDS_DIR / voice.voice
    sounds.mkdir(parents=True)
    for seed, prompt in enumerate(("agent-pass", "vm-deleted", "auth-thankyou")):
        wav = sounds / f"{prompt}.wav"
        sf.write(wav, 0.3 * fx.tone(8000 + 2000 * seed, 8000, 150.0 + 10 * seed, seed), 8000, subtype="PCM_16")
        if voice.codec == "gsm":
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav), "-f", "gsm",
                            str(wav.with_suffix(".gsm"))], check=True)
            wav.unlink()
    (sounds / f"too-short.{voice.codec}").write_bytes(b"\0" * 100)
    shutil.copy(ds.fetch_deb(ds.TRANSCRIPTS_PACKAGE, tmp_path, debs), tmp_path)
    fx.build_deb(tmp_path / "staging", voice.package, "1.0-1", tmp_path)
    out = tmp_path / "corpus"
    ds.main([str(out), "--telephone", "--languages", voice.language, "--deb-dir", str(tmp_path),
             "--cache", str(tmp_path / "cache")])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["packages"][voice.package]["files"] == 3  # too-short left out
    assert manifest["packages"][voice.package]["codec"] == voice.codec
    paths = CorpusPaths(out)
    for utterance in read_split(paths.split("train_split")) + read_split(paths.split("test_split")):
        audio, rate = sf.read(utterance_path(paths.audio_dir, utterance))
        assert rate == 16000 and utterance.startswith(f"{voice.speaker_id}-{voice.chapter}-")
        spectrum = np.abs(np.fft.rfft(audio)) ** 2
        assert spectrum[len(spectrum) // 2 + 200:].sum() < 1e-3 * spectrum.sum()  # no energy above 4 kHz
    seconds = sum(len(sf.read(p)[0]) for p in paths.audio_dir.rglob("*.flac")) / 16000
    assert abs(seconds - (1 + 1.25 + 1.5)) < 0.05  # every recording whole, at its own duration
