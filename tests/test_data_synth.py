"""The synthetic corpus generator: layout, labels, audio, determinism, clear refusals. The corpus tests need the
TTS engines and skip without them (see data_fixtures.require_engines)."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest
import soundfile as sf

import data_fixtures as fx
from smooth_infomax.audio import HOP_SAMPLES, SAMPLE_RATE
from training.data import engines, phones, synth, text
from training.data.librispeech import CorpusPaths, read_phone_labels, read_split, utterance_path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return CorpusPaths(fx.tiny_corpus(tmp_path_factory))


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_layout(corpus):
    root = corpus.root
    for name in ("phones.txt", "speakers.tsv", "utterances.tsv", "phone_segments.txt", "LICENSES.txt",
                 "manifest.json", "LibriSpeech/SPEAKERS.TXT"):
        assert (root / name).is_file(), name
    train, test = read_split(corpus.split("train_split")), read_split(corpus.split("test_split"))
    labels = read_phone_labels(corpus.phone_labels)
    assert len(labels) == 9 and sorted(train + test) == sorted(labels)
    assert not set(train) & set(test)
    assert {u.split("-")[0] for u in train} == {u.split("-")[0] for u in test} == {"1000", "1001", "1002"}
    val_train, val = read_split(corpus.split("train_val_train")), read_split(corpus.split("train_val_val"))
    assert sorted(val_train + val) == sorted(train)
    for utt_id in labels:
        path = utterance_path(corpus.audio_dir, utt_id)
        speaker, chapter, _ = utt_id.split("-")
        assert path == corpus.audio_dir / speaker / chapter / f"{utt_id}.flac"
        transcript = (path.parent / f"{speaker}-{chapter}.trans.txt").read_text()
        assert f"{utt_id} " in transcript
    engines_used = [line.split("\t")[2] for line in (root / "speakers.tsv").read_text().splitlines()[1:]]
    assert engines_used == ["espeak", "festival", "flite"]


@pytest.mark.slow
def test_labels_match_frames_and_table(corpus):
    table = phones.read_phone_table(corpus.phone_table)
    assert table == list(phones.PHONES) and len(table) == 41
    for utt_id, labels in read_phone_labels(corpus.phone_labels).items():
        n_samples = sf.info(str(utterance_path(corpus.audio_dir, utt_id))).frames
        assert abs(len(labels) - n_samples / HOP_SAMPLES) <= 1
        assert len(labels) == n_samples // HOP_SAMPLES
        assert labels.min() >= 0 and labels.max() < phones.SPN  # SPN is reserved, never emitted
        assert labels[0] == phones.SIL and labels[-1] == phones.SIL  # padding
        assert np.mean(labels != phones.SIL) > 0.5 and len(np.unique(labels)) > 10


@pytest.mark.slow
def test_audio_is_16k_mono_and_not_silent(corpus):
    for utt_id in read_phone_labels(corpus.phone_labels):
        path = utterance_path(corpus.audio_dir, utt_id)
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
        audio, _ = sf.read(path)
        rms_dbfs = 20 * np.log10(np.sqrt(np.mean(audio**2)))
        assert -35 < rms_dbfs < -12 and np.max(np.abs(audio)) < 1.0
        assert len(audio) > 20480 + 2 * HOP_SAMPLES  # every utterance can give a training crop


@pytest.mark.slow
def test_same_arguments_give_identical_bytes(corpus, tmp_path):
    second = fx.generate_corpus(tmp_path / "again", "--jobs", "1")
    assert _digests(second) == _digests(corpus.root)


def test_missing_engine_names_apt_packages(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert synth.main([str(tmp_path / "out"), "--engines", "festival,flite", "--quiet"]) == 2
    message = capsys.readouterr().err
    assert "program festival" in message and "program flite" in message
    assert "apt-get install -y" in message and " flite" in message and " festival" in message
    assert not (tmp_path / "out" / "manifest.json").exists()


@pytest.mark.slow
def test_refuses_to_overwrite_without_force(corpus, capsys):
    assert synth.main([str(corpus.root), *fx.TINY_ARGS]) == 2
    assert "--force" in capsys.readouterr().err


def test_phone_mapping_splits_two_phone_units():
    segments, unknown = phones.map_segments([(0.0, 1.0, "A@"), (1.0, 1.5, "zz")], phones.ESPEAK_MAP)
    assert unknown == 1
    assert segments == [(0.0, 0.6, phones.PHONE_INDEX["AA"]), (0.6, 1.0, phones.PHONE_INDEX["R"]),
                        (1.0, 1.5, phones.SPN)]
    radio, _ = phones.map_segments([(0.0, 0.1, "pau"), (0.1, 0.2, "ax"), (0.2, 0.3, "el")], phones.RADIO_MAP)
    assert [c for _, _, c in radio] == [phones.SIL, phones.PHONE_INDEX["AH"], phones.PHONE_INDEX["AH"],
                                        phones.PHONE_INDEX["L"]]


def test_frame_labels_use_frame_centres():
    hop_s = HOP_SAMPLES / SAMPLE_RATE
    labels = phones.frame_labels([(0.0, 2.4 * hop_s, 5), (2.4 * hop_s, 4 * hop_s, 7)], 5 * HOP_SAMPLES + 17)
    assert labels.tolist() == [5, 5, 7, 7, phones.SIL]  # centre of frame 2 is at 2.5 hops


def test_espeak_stop_starts_move_earlier():
    rate = 1000
    segments = engines.espeak_segments([(100, "a"), (200, "t"), (300, "_")], 400, rate)
    assert segments[0] == (0.0, 0.1, "_")
    (_, a_end, _), (t_start, _, name) = segments[1], segments[2]
    assert name == "t" and a_end == t_start == pytest.approx(0.2 - engines.ESPEAK_STOP_ADVANCE_S)
    short = engines.espeak_segments([(100, "a"), (110, "t")], 200, rate)
    assert short[2][0] == pytest.approx(0.105)  # at most half of the previous phone


@pytest.mark.requires_tts("wordnet")
def test_wordnet_sentences_are_in_the_lexicon():
    sentences = text.wordnet_sentences()
    assert len(sentences) > 20000
    lexicon = text.cmu_words()
    for sentence in sentences[::997]:
        words = sentence.lower().replace(",", " ").replace(";", " ").replace(".", " ").split()
        assert all(w in lexicon or w[:-2] in lexicon for w in words), sentence
