"""LibriSpeech-layout loaders on the tone corpus (tests/tone_corpus.py): crops, seeds, labels, maps, bad files."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from smooth_infomax.audio import HOP_SAMPLES, SAMPLE_RATE
from training.data import phones
from training.data.audio_io import AudioFileError, read_audio
from training.data.librispeech import (
    CROP_SAMPLES,
    CorpusPaths,
    CropDataset,
    UtteranceDataset,
    align_labels,
    build_speaker_map,
    crop_offset,
    load_speaker_map,
    make_loader,
    read_phone_labels,
    read_split,
    save_speaker_map,
    utterance_path,
)


@pytest.fixture(scope="module")
def corpus(tone_corpus):
    return CorpusPaths(tone_corpus)


@pytest.fixture(scope="module")
def splits(corpus):
    return read_split(corpus.split("train_split")), read_split(corpus.split("test_split"))


def test_crops_have_shape_alignment_and_content(corpus, splits):
    train, test = splits
    dataset = CropDataset(corpus.audio_dir, train, build_speaker_map(train, test), seed=3)
    for index in range(len(dataset)):
        item = dataset[index]
        assert item.audio.shape == (1, CROP_SAMPLES) and item.audio.dtype == torch.float32
        assert item.offset_samples % HOP_SAMPLES == 0 and item.offset_samples >= HOP_SAMPLES
        full = read_audio(utterance_path(corpus.audio_dir, item.utterance_id))
        assert item.offset_samples < len(full) // HOP_SAMPLES * HOP_SAMPLES - CROP_SAMPLES
        expected = full[item.offset_samples:item.offset_samples + CROP_SAMPLES]
        np.testing.assert_array_equal(item.audio[0].numpy(), expected)
        assert item.speaker == dataset.speaker_map[item.utterance_id.split("-")[0]]


def test_seeds_reproduce_crops(corpus, splits):
    train, _ = splits

    def offsets(seed, epoch):
        dataset = CropDataset(corpus.audio_dir, train, seed=seed)
        dataset.set_epoch(epoch)
        return [dataset[i].offset_samples for i in range(len(dataset))]

    assert offsets(0, 0) == offsets(0, 0)
    assert offsets(0, 0) != offsets(0, 1) and offsets(0, 0) != offsets(1, 0)
    preloaded = CropDataset(corpus.audio_dir, train, seed=0, preload=True)
    assert [preloaded[i].offset_samples for i in range(len(train))] == offsets(0, 0)


def test_loader_batches_do_not_depend_on_worker_count(corpus, splits):
    train, _ = splits
    dataset = CropDataset(corpus.audio_dir, train, seed=5)
    batches = {}
    for workers in (0, 2):
        loader = make_loader(dataset, batch_size=2, shuffle=True, seed=11, num_workers=workers)
        batches[workers] = [(b.utterance_id, b.offset_samples.tolist(), b.audio) for b in loader]
    assert len(batches[0]) == len(train) // 2
    for (ids0, off0, audio0), (ids2, off2, audio2) in zip(batches[0], batches[2], strict=True):
        assert ids0 == ids2 and off0 == off2 and torch.equal(audio0, audio2)
        assert audio0.shape == (2, 1, CROP_SAMPLES)


def test_crop_offset_edge_cases():
    rng = np.random.default_rng(0)
    assert crop_offset(CROP_SAMPLES + 100, CROP_SAMPLES, rng) == 0  # too short for offsets >= 160
    offsets = {crop_offset(CROP_SAMPLES + 3 * HOP_SAMPLES + 5, CROP_SAMPLES, rng) for _ in range(50)}
    assert offsets == {HOP_SAMPLES, 2 * HOP_SAMPLES}  # as np.arange(160, max_len - crop, 160)


def test_utterances_with_frame_labels(corpus, splits):
    _, test = splits
    labels = read_phone_labels(corpus.phone_labels, test)
    assert sorted(labels) == sorted(test)
    dataset = UtteranceDataset(corpus.audio_dir, test, labels)
    for item in dataset:
        n_samples = item.audio.shape[1]
        assert item.audio.shape[0] == 1 and n_samples % HOP_SAMPLES == 0
        assert len(item.labels) == n_samples // HOP_SAMPLES and item.labels.dtype == torch.int64
        frames, paired = align_labels(item.labels, n_samples // HOP_SAMPLES)
        assert frames == slice(0, len(item.labels)) and torch.equal(paired, item.labels)
    with pytest.raises(ValueError, match="no phone labels"):
        UtteranceDataset(corpus.audio_dir, test, {})


def test_align_labels_like_the_reference():
    labels = np.arange(5)
    frames, paired = align_labels(labels, 7)  # CPC labels are a few frames short: output[-T:]
    assert frames == slice(2, 7) and paired.tolist() == [0, 1, 2, 3, 4]
    frames, paired = align_labels(labels, 7, anchor="start")
    assert frames == slice(0, 5)
    frames, paired = align_labels(labels, 3)
    assert frames == slice(0, 3) and paired.tolist() == [2, 3, 4]


def test_speaker_and_phone_maps_round_trip(corpus, splits, tmp_path):
    train, test = splits
    mapping = build_speaker_map(train, test)
    assert sorted(mapping.values()) == list(range(3))
    save_speaker_map(mapping, tmp_path / "speakers.json")
    assert load_speaker_map(tmp_path / "speakers.json") == mapping
    dataset = CropDataset(corpus.audio_dir, test, load_speaker_map(tmp_path / "speakers.json"))
    assert [dataset[i].speaker for i in range(len(test))] == [mapping[u.split("-")[0]] for u in test]
    with pytest.raises(ValueError, match="missing from the speaker map: 1002"):
        UtteranceDataset(corpus.audio_dir, test, speaker_map={"1000": 0, "1001": 1})
    phones.write_phone_table(tmp_path / "phones.txt")
    assert phones.read_phone_table(tmp_path / "phones.txt") == phones.read_phone_table(corpus.phone_table)


def _copy_utterance(corpus, utt_id, audio_dir):
    source = utterance_path(corpus.audio_dir, utt_id)
    target = audio_dir / source.relative_to(corpus.audio_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def test_corrupt_and_missing_files_are_reported_with_their_path(corpus, splits, tmp_path):
    train, _ = splits
    audio_dir = tmp_path / "train-clean-100"
    good, bad = _copy_utterance(corpus, train[0], audio_dir), _copy_utterance(corpus, train[1], audio_dir)
    bad.write_bytes(b"fLaC" + bytes(range(256)) * 8)
    dataset = CropDataset(audio_dir, train[:3])
    assert dataset[0].audio.shape == (1, CROP_SAMPLES)
    with pytest.raises(AudioFileError, match="cannot decode") as error:
        dataset[1]
    assert error.value.path == str(bad) and str(bad) in str(error.value)
    with pytest.raises(AudioFileError, match="not found") as error:
        dataset[2]
    assert train[2] in error.value.path
    with pytest.raises(AudioFileError, match="cannot decode"):
        UtteranceDataset(audio_dir, train[1:2])[0]
    assert good.exists()


def test_other_rates_are_resampled(corpus, splits, tmp_path):
    train, _ = splits
    audio = read_audio(utterance_path(corpus.audio_dir, train[0]))
    speaker, chapter, _ = train[0].split("-")
    wav = tmp_path / speaker / chapter / f"{train[0]}.wav"
    wav.parent.mkdir(parents=True)
    sf.write(wav, audio[::2], SAMPLE_RATE // 2, subtype="PCM_16")  # an 8 kHz wav
    resampled = read_audio(utterance_path(tmp_path, train[0]))
    assert abs(len(resampled) - 2 * len(audio[::2])) <= 1
    item = CropDataset(tmp_path, train[:1])[0]
    assert item.audio.shape == (1, CROP_SAMPLES)


def test_split_files_are_validated(tmp_path):
    path = tmp_path / "split.txt"
    path.write_text("19-198-0001\nnot-an-id\n")
    with pytest.raises(ValueError, match="split.txt:2"):
        read_split(path)


def test_training_reader_opens_names_that_are_not_utf8(tmp_path):
    from training.data.audio_io import audio_info

    name = os.fsdecode(b"caf\xe9.wav")  # Latin-1 bytes: not valid UTF-8
    path = tmp_path / name
    sf.write(os.fsencode(path), np.full(1600, 0.25, np.float32), 16000)
    assert audio_info(path) == (1600, 16000)
    assert np.allclose(read_audio(path), 0.25, atol=1e-4)
