"""Training on a mix of corpora (MixedCrops, TrainConfig.mix) and bfloat16 autocast on CPUs that have it."""

import shutil

import numpy as np
import pytest
import torch

from test_training import read_losses, small_config
from training.batches import MixedCrops
from training.checkpoint import latest_checkpoint, load_checkpoint
from training.config import TrainConfig
from training.data.librispeech import CorpusPaths, CropDataset, read_split
from training.train import build_datasets, cpu_has_native_bf16, train


@pytest.fixture(scope="module")
def corpora(tone_corpus, tmp_path_factory):
    first = tone_corpus
    second = tmp_path_factory.mktemp("second") / "corpus"
    shutil.copytree(first, second)
    return first, second


def _crops(root, n=None, seed=0):
    paths = CorpusPaths(root)
    ids = read_split(paths.split("train_split"))[:n]
    return CropDataset(paths.audio_dir, ids, crop_samples=4000, seed=seed)


def test_shares_repeat_the_smaller_corpus_with_new_crops(corpora):
    big, small = _crops(corpora[0]), _crops(corpora[1], n=2)
    mixed = MixedCrops([big, small], [0.5, 0.5])
    assert mixed.counts == [len(big), len(big)] and mixed.visits[1] == len(big) // 2 + len(big) % 2
    items = [mixed[i] for i in range(len(mixed))]
    first, second = items[:len(big)], items[len(big):]
    assert [i.utterance_id for i in first] == big.utterance_ids
    assert {i.utterance_id for i in second} == set(small.utterance_ids)
    same_utterance = [i for i in second if i.utterance_id == small.utterance_ids[0]]
    assert len({i.offset_samples for i in same_utterance}) > 1  # revisits take new crops
    mixed.set_epoch(1)
    again = [mixed[i].offset_samples for i in range(len(mixed))]
    mixed.set_epoch(0)
    assert [mixed[i].offset_samples for i in range(len(mixed))] == [i.offset_samples for i in items]
    assert again != [i.offset_samples for i in items]


def test_uneven_shares_and_bad_shares(corpora):
    big, small = _crops(corpora[0]), _crops(corpora[1], n=2)
    mixed = MixedCrops([big, small], [0.75, 0.25])
    assert abs(mixed.counts[1] / len(mixed) - 0.25) < 0.1 and mixed.counts[0] >= len(big)
    with pytest.raises(ValueError, match="summing to 1"):
        MixedCrops([big, small], [0.5, 0.6])
    with pytest.raises(ValueError, match="mix"):
        TrainConfig(mix={"data/real": 1.0})


@pytest.mark.slow
def test_training_on_a_mix_reads_both_corpora_and_resumes_exactly(corpora, tmp_path):
    config = small_config(corpora[0], tmp_path / "straight", steps=4, checkpoint_every=2, mix={str(corpora[1]): 0.5})
    crops, _ = build_datasets(config)
    assert isinstance(crops, MixedCrops) and len(crops.corpora) == 2
    assert {str(c.audio_dir) for c in crops.corpora} == {str(CorpusPaths(r).audio_dir) for r in corpora}
    straight = train(config)
    train(config.replace(out_dir=str(tmp_path / "halves"), steps=2))
    train(config.replace(out_dir=str(tmp_path / "halves")), resume=True)
    a, b = (load_checkpoint(latest_checkpoint(d)) for d in (straight, tmp_path / "halves"))
    for key in a["encoder"]:
        assert torch.equal(a["encoder"][key], b["encoder"][key]), key
    assert len(read_losses(straight)) == 4


@pytest.mark.slow
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bfloat16 (AVX-512 BF16 or AMX)")
def test_bf16_cpu_trains_under_autocast(corpora, tmp_path):
    run_dir = train(small_config(corpora[0], tmp_path / "bf16", steps=3, bf16_cpu=True))
    state = load_checkpoint(latest_checkpoint(run_dir))
    assert state["precision"] == "bfloat16"
    assert np.isfinite(read_losses(run_dir)).all()
    float32 = load_checkpoint(latest_checkpoint(train(small_config(corpora[0], tmp_path / "f32", steps=3))))
    assert float32["precision"] == "float32"


def _sine_corpus(folder, hz=500.0, seconds=3.0):
    import soundfile

    (folder / "1" / "2").mkdir(parents=True)
    t = np.arange(int(seconds * 16000)) / 16000
    soundfile.write(folder / "1" / "2" / "1-2-0000.flac", 0.5 * np.sin(2 * np.pi * hz * t), 16000)
    return folder


def _dominant_hz(crop):
    spectrum = np.abs(np.fft.rfft(crop.audio[0].numpy() * np.hanning(crop.audio.shape[-1])))
    return np.argmax(spectrum) * 16000 / crop.audio.shape[-1]


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_speed_perturbation_plays_a_crop_faster_or_slower(tmp_path, speed):
    audio_dir = _sine_corpus(tmp_path)
    plain = CropDataset(audio_dir, ["1-2-0000"], crop_samples=8000, seed=5)
    perturbed = CropDataset(audio_dir, ["1-2-0000"], crop_samples=8000, seed=5, speeds=(speed,))
    assert abs(_dominant_hz(plain[0]) - 500) <= 2
    assert abs(_dominant_hz(perturbed[0]) - 500 * speed) <= 2
    assert perturbed[0].audio.shape == (1, 8000) and torch.equal(perturbed[0].audio, perturbed[0].audio)
    unperturbed = CropDataset(audio_dir, ["1-2-0000"], crop_samples=8000, seed=5, speeds=(1.0,))
    assert torch.equal(unperturbed[0].audio, plain[0].audio)


def test_speed_factors_are_drawn_per_crop_and_checked(tmp_path):
    crops = CropDataset(_sine_corpus(tmp_path), ["1-2-0000"], crop_samples=8000, seed=5, speeds=(0.9, 1.0, 1.1))
    drawn = set()
    for epoch in range(12):
        crops.set_epoch(epoch)
        drawn.add(round(_dominant_hz(crops[0]) / 50) * 50)
    assert drawn == {450, 500, 550}
    with pytest.raises(ValueError, match="speeds"):
        CropDataset(tmp_path, ["1-2-0000"], speeds=(0.333,))
    with pytest.raises(ValueError, match="speeds"):
        TrainConfig(data_root="data/synth", speeds={"data/real": [0.9, 1.1]})
    assert TrainConfig(mix={"data/real": 0.5}, speeds={"data/real": [0.9, 1.1]}).speeds


def test_speeds_reach_only_the_named_corpus_training_crops(corpora, tmp_path):
    config = small_config(corpora[0], tmp_path, mix={str(corpora[1]): 0.5}, speeds={str(corpora[1]): [0.9, 1.1]})
    train_set, val_set = build_datasets(config)
    assert [c.speeds for c in train_set.corpora] == [(1.0,), (0.9, 1.1)]
    assert [c.speeds for c in val_set.corpora] == [(1.0,), (1.0,)]
