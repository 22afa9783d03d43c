"""The de Boer (Artificial Speech Dataset) loader, on fixture files in the dataset's format."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch

import data_fixtures as fx
from training.data.audio_io import AudioFileError
from training.data.deboer import SYLLABLES, DeBoerDataset, parse_name, syllable_label

WORDS = ["bagubi", "dudida", "giguba"]


def test_syllables_are_resampled_and_labelled(tmp_path):
    fx.write_deboer_fixture(tmp_path, "syllables", WORDS)
    dataset = DeBoerDataset(tmp_path, kind="syllables", labels="syllables")
    assert len(dataset) == 9
    items = [dataset[i] for i in range(len(dataset))]
    assert all(item.audio.shape == (1, 8821) and item.audio.dtype == torch.float32 for item in items)
    by_name = {item.filename: item for item in items}
    assert by_name["bagubi_1_2_gu.wav"].label == SYLLABLES.index("gu") == 8
    assert by_name["dudida_1_1_du.wav"].word == "dudida"
    vowels = DeBoerDataset(tmp_path, kind="syllables", labels="vowels")
    assert {vowels[i].filename: vowels[i].label for i in range(9)}["dudida_1_3_da.wav"] == 0
    assert sorted({vowels[i].label for i in range(9)}) == [0, 1, 2]
    assert dataset.class_names() == SYLLABLES and vowels.class_names() == ("a", "i", "u")


def test_words_keep_the_first_10240_samples(tmp_path):
    fx.write_deboer_fixture(tmp_path, "words", WORDS)
    short = tmp_path / "dagadi_2.wav"
    sf.write(short, fx.tone(4410, 44100, 150, 0), 44100, subtype="PCM_16")  # 0.1 s: zero-padded
    dataset = DeBoerDataset(tmp_path, kind="words")
    items = [dataset[i] for i in range(len(dataset))]
    assert [item.audio.shape for item in items] == [(1, 10240)] * 4
    assert all(item.label == 0 for item in items)
    padded = next(item for item in items if item.filename == "dagadi_2.wav")
    assert torch.all(padded.audio[0, 1700:] == 0) and padded.audio[0, :1500].abs().max() > 0


def test_wrong_rate_is_reported_unless_allowed(tmp_path):
    fx.write_deboer_fixture(tmp_path, "syllables", WORDS[:1], rate=16000)
    with pytest.raises(AudioFileError, match="expected 22050 Hz") as error:
        DeBoerDataset(tmp_path)[0]
    assert str(tmp_path) in error.value.path
    assert DeBoerDataset(tmp_path, check_rate=False)[0].audio.shape == (1, 12156)


def test_bad_names_and_corrupt_files_are_reported_with_their_path(tmp_path):
    fx.write_deboer_fixture(tmp_path, "syllables", WORDS[:1])
    stray = tmp_path / "hello_1.wav"
    stray.write_bytes(b"")
    with pytest.raises(AudioFileError, match="not a de Boer syllable file name") as error:
        DeBoerDataset(tmp_path)
    assert error.value.path == str(stray)
    stray.unlink()
    corrupt = tmp_path / "bagubi_1_1_ba.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioFileError, match="cannot decode") as error:
        DeBoerDataset(tmp_path)[0]
    assert error.value.path == str(corrupt)


def test_name_parsing_and_labels():
    assert parse_name("bagubi_12.wav", "words") == {"word": "bagubi", "take": "12"}
    assert parse_name("bagubi_1_3_bi.wav", "syllables")["syl"] == "bi"
    with pytest.raises(ValueError):
        parse_name("bagubi_1.wav", "syllables")
    assert [syllable_label(s, "vowels") for s in ("ga", "di", "bu")] == [0, 1, 2]
    with pytest.raises(ValueError):
        syllable_label("ba", "consonants")
