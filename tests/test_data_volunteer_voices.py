"""The volunteer-voice corpus (Tux Paint stamp descriptions, KTuberling words), built from tiny local .deb fixtures
(dpkg-deb; no network): English held out as the unseen-speaker test split, the rest for training."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import data_fixtures as fx
from training.data import volunteer_voices as vv
from training.data.debian_speech import PackageError
from training.data.librispeech import CorpusPaths, read_split

pytestmark = pytest.mark.requires_program("dpkg-deb")

STAMPS = vv.SOURCES[0]
TUBERLING = vv.SOURCES[1]


def _ogg(path: Path, seconds: float, rate: int = 44100, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mono = 0.3 * fx.tone(int(seconds * rate), rate, 140.0 + 15 * seed, seed)
    sf.write(path, np.stack([mono, 0.5 * mono], axis=1), rate, format="OGG", subtype="VORBIS")


@pytest.fixture(scope="module")
def debs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("debs")
    stamps = root / "stamps" / vv.STAMPS_DIR / "animals" / "birds"
    stamps.mkdir(parents=True)
    (stamps / "owl.txt").write_text("An owl.\nes.utf8=Un búho.\n")
    _ogg(stamps / "owl_desc.ogg", 0.6, seed=1)
    _ogg(stamps / "owl_desc_es.ogg", 0.7, seed=2)
    _ogg(stamps / "owl_desc_ro.ogg", 0.8, seed=3)
    _ogg(stamps / "owl_desc_fr.ogg", 0.8, rate=8000, seed=4)  # below 16 kHz: left out
    _ogg(stamps / "owl_desc_bg.ogg", 0.05, seed=5)  # shorter than MIN_SECONDS: left out
    _ogg(stamps / "owl.ogg", 0.5, seed=6)  # the stamp's sound effect, not speech
    (stamps.parent / "owls").mkdir()
    (stamps.parent / "owls" / "owl_desc_ro.ogg").write_bytes((stamps / "owl_desc_ro.ogg").read_bytes())  # a copy
    (root / "stamps/usr/share/doc" / STAMPS.package).mkdir(parents=True)
    (root / "stamps/usr/share/doc" / STAMPS.package / "copyright").write_text("License: GPL-2\n")
    fx.build_deb(root / "stamps", STAMPS.package, "2022.06.04-1", root)
    sounds = root / "tuberling" / vv.TUBERLING_DIR
    _ogg(sounds / "en" / "egypt_palmtree.ogg", 0.9, seed=7)
    _ogg(sounds / "en" / "nose.ogg", 0.5, seed=8)
    _ogg(sounds / "fr" / "nose.ogg", 0.5, seed=9)
    fx.build_deb(root / "tuberling", TUBERLING.package, "4:22.12.3-1", root)
    return root


@pytest.fixture(scope="module")
def corpus(debs, tmp_path_factory) -> tuple[Path, dict, list[dict]]:
    out = tmp_path_factory.mktemp("voices")
    manifest = vv.build_corpus(out, out / "cache", deb_dir=debs)
    with open(out / "utterances.tsv", newline="", encoding="utf-8") as table:
        rows = list(csv.DictReader(table, delimiter="\t", quoting=csv.QUOTE_NONE))
    return out, manifest, rows


def test_english_is_the_test_split_with_transcripts_and_the_rest_trains(corpus):
    out, manifest, rows = corpus
    assert sorted((r["package"], r["language"]) for r in rows) == sorted(
        [(TUBERLING.package, "en"), (TUBERLING.package, "en"), (TUBERLING.package, "fr"),
         (STAMPS.package, "en"), (STAMPS.package, "es"), (STAMPS.package, "ro")])
    assert {r["split"] for r in rows if r["language"] == "en"} == {"test"}
    assert {r["split"] for r in rows if r["language"] != "en"} == {"train"}
    transcripts = sorted(r["transcript"] for r in rows if r["language"] == "en")
    assert transcripts == ["An owl.", "nose", "palm tree"]
    assert all(r["transcript"] == "" for r in rows if r["language"] != "en")
    paths = CorpusPaths(out)
    assert sorted(read_split(paths.split("test_split"))) == sorted(r["id"] for r in rows if r["split"] == "test")
    assert sorted(read_split(paths.split("train_split"))) == sorted(r["id"] for r in rows if r["split"] == "train")
    assert manifest["utterances"] == {"train": 3, "test": 3}
    assert manifest["excluded"]["byte_identical_copies"] == 1
    assert manifest["packages"][STAMPS.package]["languages"] == ["bg", "en", "es", "fr", "ro"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert (out / "LICENSES" / f"{STAMPS.package}.copyright").read_text() == "License: GPL-2\n"


def test_audio_is_16_khz_mono_and_short_or_narrowband_files_are_left_out(corpus):
    out, _, rows = corpus
    for row in rows:
        speaker, chapter, _ = row["id"].split("-")
        path = CorpusPaths(out).audio_dir / speaker / chapter / f"{row['id']}.flac"
        info = sf.info(str(path))
        assert (info.samplerate, info.channels) == (16000, 1)
        assert info.duration == pytest.approx(float(row["duration_s"]), abs=1e-3)
    stamp_languages = {r["language"] for r in rows if r["package"] == STAMPS.package}
    assert stamp_languages == {"en", "es", "ro"}  # fr (8 kHz) and bg (0.05 s) are out


def test_each_package_and_language_is_its_own_speaker(corpus):
    _, _, rows = corpus
    speakers = {(r["package"], r["language"]): r["id"].split("-")[0] for r in rows}
    assert len(set(speakers.values())) == len(speakers) == 5
    assert all(int(s) // 100 == 92 for (p, _), s in speakers.items() if p == STAMPS.package)
    assert all(int(s) // 100 == 93 for (p, _), s in speakers.items() if p == TUBERLING.package)


def test_a_missing_package_is_named(tmp_path):
    with pytest.raises(PackageError, match=STAMPS.package):
        vv.build_corpus(tmp_path / "out", tmp_path / "cache", deb_dir=tmp_path)


def test_no_source_is_reserved_for_the_independent_check(tmp_path):
    from training.data.debian_speech import RESERVED_PACKAGES

    assert not {source.package for source in vv.SOURCES} & set(RESERVED_PACKAGES)
    reserved = vv.Source(RESERVED_PACKAGES[0], "any", 9901)
    with pytest.raises(PackageError, match="reserved for an independent check"):
        vv.build_corpus(tmp_path / "out", tmp_path / "cache", deb_dir=tmp_path, sources=(reserved,))
