"""Linear probes: accuracy over all items, label maps and probe files, frame pooling and MFCC alignment,
separable features, and the evaluation pipeline end to end on the tiny generated corpus."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from functools import partial

import numpy as np
import pytest
import torch

import data_fixtures as fx
from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.analysis import (
    SPEAKER_PROBE,
    Accuracy,
    EncoderFeatures,
    LabelledFeatures,
    LateFeatures,
    LinearProbe,
    MfccFeatures,
    ProbeConfig,
    accuracy,
    collect_frame_features,
    collect_pooled_features,
    evaluate_probe,
    fit_probe,
    load_label_map,
    load_probe,
    majority_baseline,
    module_feature_names,
    paired_bootstrap,
    pool_to_label_rate,
    predict,
    run_probe,
    save_label_map,
    save_probe,
    shift_frames,
    stack_context,
)
from training import compare_probes, evaluate_models
from training import evaluate as ev
from training.data.librispeech import align_labels, load_speaker_map


def separable(n_per_class: int, n_classes: int, dim: int, seed: int) -> LabelledFeatures:
    """Gaussian clusters around well-separated class centres: linearly separable with margin."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=torch.Generator().manual_seed(99)) * 4
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    return LabelledFeatures(centres[labels] + 0.3 * torch.randn(len(labels), dim, generator=g), labels)


# --- accuracy and baselines ---------------------------------------------------------------------------------------

def test_accuracy_counts_every_item_not_batch_means():
    predictions = torch.tensor([0, 1, 1, 0, 2, 2, 2])
    labels = torch.tensor([0, 1, 0, 0, 2, 1, 1])
    result = accuracy(predictions, labels)
    assert (result.correct, result.total) == (4, 7) and result.value == pytest.approx(4 / 7)
    # a mean of per-batch accuracies with batch 4 and drop_last would give 3/4; with the remainder 0.5 * (3/4 + 1/3)
    assert result.value != pytest.approx(0.75) and result.value != pytest.approx((0.75 + 1 / 3) / 2)
    assert Accuracy(0, 0).value == 0.0
    with pytest.raises(ValueError):
        accuracy(predictions, labels[:3])


def test_evaluation_is_independent_of_chunking_and_scores_the_remainder():
    data = separable(5, 3, 4, seed=0)
    data = LabelledFeatures(data.features[:13], data.labels[:13])  # 13 rows: never a whole number of chunks
    probe = LinearProbe(4, 3, generator=torch.Generator().manual_seed(1))
    full = predict(probe, data.features)
    for chunk in (1, 2, 5, 64):
        assert torch.equal(predict(probe, data.features, chunk=chunk), full)
    assert evaluate_probe(probe, data).total == 13


def test_majority_baseline():
    train = torch.tensor([3, 3, 1, 3, 0])
    test = torch.tensor([3, 1, 3, 2])
    assert majority_baseline(train, test) == Accuracy(2, 4)


# --- training -----------------------------------------------------------------------------------------------------

def test_separable_features_reach_full_accuracy():
    train, test = separable(40, 5, 16, seed=0), separable(20, 5, 16, seed=1)
    result = run_probe(train, test, 5, replace(SPEAKER_PROBE, epochs=100, standardize=True))
    assert result.test_accuracy.value >= 0.99 and result.train_accuracy.value >= 0.99
    assert result.epoch_losses[-1] < result.epoch_losses[0]
    assert result.test_accuracy.total == len(test)
    bias_free = run_probe(train, test, 5, replace(SPEAKER_PROBE, epochs=100, bias=False))
    assert bias_free.probe.linear.bias is None and bias_free.test_accuracy.value >= 0.99


def test_training_is_seeded_and_uses_the_last_partial_batch():
    data = separable(7, 3, 5, seed=2)  # 21 rows, batch 8: the last batch has 5
    config = ProbeConfig(learning_rate=1e-2, epochs=3, batch_size=8, seed=4)
    a, losses_a = fit_probe(data, 3, config)
    b, losses_b = fit_probe(data, 3, config)
    assert torch.equal(a.linear.weight, b.linear.weight) and losses_a == losses_b
    c, _ = fit_probe(data, 3, replace(config, seed=5))
    assert not torch.equal(a.linear.weight, c.linear.weight)
    with pytest.raises(ValueError):
        fit_probe(data, 2, config)  # label 2 does not fit 2 classes


def test_initialisation_is_xavier_normal_with_zero_bias():
    probe = LinearProbe(512, 41, generator=torch.Generator().manual_seed(0))
    expected_std = (2 / (512 + 41)) ** 0.5
    assert probe.linear.weight.std().item() == pytest.approx(expected_std, rel=0.05)
    assert torch.count_nonzero(probe.linear.bias) == 0


def test_raw_weight_folds_the_standardisation():
    data = separable(10, 3, 6, seed=3)
    data = LabelledFeatures(data.features * 50 + 7, data.labels)
    probe, _ = fit_probe(data, 3, ProbeConfig(learning_rate=1e-2, epochs=5, standardize=True))
    weight, bias = probe.raw_weight()
    with torch.no_grad():
        assert torch.allclose(data.features @ weight.T + bias, probe(data.features), atol=1e-3, rtol=1e-4)
    plain = LinearProbe(6, 3, bias=False)
    weight, bias = plain.raw_weight()
    assert bias is None and torch.equal(weight, plain.linear.weight)


# --- persistence --------------------------------------------------------------------------------------------------

def test_label_map_round_trip(tmp_path):
    classes = ["SIL", "AA", "AE", "speaker 1001"]
    save_label_map(classes, tmp_path / "labels.json", task="phone")
    assert load_label_map(tmp_path / "labels.json") == classes
    assert json.loads((tmp_path / "labels.json").read_text())["task"] == "phone"
    with pytest.raises(ValueError):
        save_label_map(["a", "a"], tmp_path / "bad.json")


def test_probe_file_round_trip(tmp_path):
    data = separable(5, 4, 8, seed=4)
    probe, _ = fit_probe(data, 4, ProbeConfig(epochs=2, standardize=True))
    save_probe(probe, tmp_path / "probe.safetensors", ["a", "b", "c", "d"], {"model": "sim", "task": "speaker"})
    loaded, classes, metadata = load_probe(tmp_path / "probe.safetensors")
    assert classes == ["a", "b", "c", "d"] and metadata["model"] == "sim"
    assert torch.equal(predict(loaded, data.features), predict(probe, data.features))
    for a, b in zip(loaded.raw_weight(), probe.raw_weight(), strict=True):
        assert torch.allclose(a, b)


# --- features -----------------------------------------------------------------------------------------------------

def test_pooling_to_label_rate_follows_frame_centres():
    encoder = SmoothInfoMaxEncoder.from_preset("sim")
    geometry = encoder.geometries[0]  # hop 20: frame j centred on sample 20 j + 10
    frames = torch.arange(80, dtype=torch.float32)[:, None].repeat(1, 3)  # 80 frames = 10 bins of 8
    pooled = pool_to_label_rate(frames, geometry, 10)
    assert pooled.shape == (10, 3)
    assert torch.allclose(pooled[:, 0], torch.arange(10) * 8 + 3.5)
    hop160 = encoder.geometries[2]
    frames = torch.randn(12, 4)
    assert torch.equal(pool_to_label_rate(frames, hop160, 12), frames)
    module1 = encoder.geometries[1]  # hop 80, centres 80 j - 20: frame 0 falls before the start -> bin 0
    pooled = pool_to_label_rate(torch.arange(21, dtype=torch.float32)[:, None], module1, 10)
    assert pooled[0, 0] == pytest.approx((0 + 1 + 2) / 3) and pooled[9, 0] == pytest.approx((19 + 20) / 2)


def test_encoder_frames_and_pooled_features():
    torch.manual_seed(0)
    encoder = SmoothInfoMaxEncoder.from_preset("sim")
    source = EncoderFeatures(encoder)
    assert source.feature_names == ["module 0", "module 1", "module 2", "GRU"] == module_feature_names(encoder)
    waves = [torch.randn(3200) * 0.1, torch.randn(4800) * 0.1]
    together = source.frames(waves)
    alone = source.frames(waves[1:])
    for name, dim in zip(source.feature_names, (512, 512, 512, 256), strict=True):
        assert together[0][name].shape == (20, dim) and together[1][name].shape == (30, dim)
        assert torch.allclose(together[1][name], alone[0][name], atol=1e-5)
    clips = torch.zeros(2, 4800)
    clips[0], clips[1, :3200] = waves[1], waves[0]
    pooled = source.pooled(clips, torch.tensor([4800, 3200]))
    reference = encoder.extract(waves[0], modules=[3])[3].mean[0].mean(0)
    assert torch.allclose(pooled["GRU"][1], reference, atol=1e-5)
    gim = SmoothInfoMaxEncoder.from_preset("gim")
    assert EncoderFeatures(gim, modules=[0, -1]).feature_names == ["module 0", "GRU"]


def test_late_features_pair_label_i_with_frame_i_plus_d():
    source = LateFeatures(EncoderFeatures(SmoothInfoMaxEncoder.from_preset("sim"), modules=[2, 3]), [1, -2])
    assert source.feature_names == ["module 2", "GRU", "module 2 +1", "module 2 -2", "GRU +1", "GRU -2"]
    frames = source.frames([torch.randn(3200) * 0.1])[0]
    gru = frames["GRU"]
    assert torch.equal(frames["GRU +1"][:-1], gru[1:]) and torch.equal(frames["GRU +1"][-1], gru[-1])
    assert torch.equal(frames["GRU -2"][2:], gru[:-2]) and all(torch.equal(row, gru[0]) for row in frames["GRU -2"][:2])
    pooled = source.pooled(torch.randn(1, 3200) * 0.1, torch.tensor([3200]))
    assert list(pooled) == ["module 2", "GRU"]  # a time shift changes nothing in a clip mean
    assert shift_frames(torch.arange(4.0), 3).tolist() == [3, 3, 3, 3]
    assert LateFeatures(MfccFeatures(context=1), [2]).settings()["frames_late"] == [2]
    for bad in ([], [0, 1]):
        with pytest.raises(ValueError, match="non-zero frame shifts"):
            LateFeatures(MfccFeatures(), bad)


def test_mfcc_frame_i_is_centred_on_label_i():
    mfcc = MfccFeatures(deltas=0)
    wave = torch.randn(16000, generator=torch.Generator().manual_seed(0)) * 0.1
    frames = mfcc.mfcc(wave)
    assert frames.shape == (100, 13) and MfccFeatures().mfcc(wave).shape == (100, 39)
    # frame 50 reads samples [160*50 - 120, 160*50 + 280): changing sample 160*50 + 300 leaves it alone
    changed = wave.clone()
    changed[160 * 50 + 300] += 1.0
    after = mfcc.mfcc(changed)
    assert torch.equal(after[50], frames[50]) and not torch.equal(after[51], frames[51])
    stacked = stack_context(torch.arange(5.0)[:, None], 1)
    assert stacked.tolist() == [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 4]]


def test_collect_frame_features_aligns_labels_like_the_reference():
    class Fake:  # one feature: the frame index
        feature_names, standardize = ["index"], False

        def frames(self, waves):
            return [{"index": torch.arange(w.numel() // 160, dtype=torch.float32)[:, None]} for w in waves]

    utterances = [(torch.zeros(1600), torch.arange(8)), (torch.zeros(800), torch.arange(5))]
    for align in (align_labels, partial(align_labels, anchor="end")):
        data = collect_frame_features(Fake(), utterances, align=align, batch_samples=1000)["index"]
        # 10 frames, 8 labels -> frames 2..9 (output[-T:]); 5 frames, 5 labels -> all
        assert data.features[:, 0].tolist() == [2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4]
        assert data.labels.tolist() == list(range(8)) + list(range(5))
        assert data.groups.tolist() == [0] * 8 + [1] * 5  # the utterance of each row


def test_paired_bootstrap_separates_a_real_difference_from_noise():
    totals = [100] * 30
    worse, better = ([60] * 30, totals), ([70] * 30, totals)
    stats = paired_bootstrap(worse, better, resamples=2000)
    assert stats["difference"] == pytest.approx(0.10) and stats["low"] == pytest.approx(0.10)  # no spread at all
    rng = np.random.default_rng(0)
    noisy_a = (rng.integers(40, 80, 30).tolist(), totals)
    noisy_b = ([c + int(rng.integers(-10, 11)) for c in noisy_a[0]], totals)  # no systematic change
    stats = paired_bootstrap(noisy_a, noisy_b, resamples=2000)
    assert stats["low"] < 0 < stats["high"] and 0.05 < stats["share_b_better"] < 0.95
    with pytest.raises(ValueError, match="same"):
        paired_bootstrap(([1, 2], [3, 3]), ([1], [3]))


def test_collect_pooled_features_keeps_every_clip():
    batches = [(torch.randn(3, 20480) * 0.1, torch.full((3,), 20480), torch.tensor([0, 1, 2])),
               (torch.randn(1, 20480) * 0.1, torch.tensor([20480]), torch.tensor([1]))]
    data = collect_pooled_features(MfccFeatures(), batches)["MFCC"]
    assert data.features.shape == (4, 39) and data.labels.tolist() == [0, 1, 2, 1]


@pytest.mark.slow
def test_importing_the_package_does_not_import_analysis():
    code = ("import sys, smooth_infomax; assert 'smooth_infomax.analysis' not in sys.modules; "
            "import smooth_infomax.analysis as a; assert 'smooth_infomax.analysis.probes' not in sys.modules; "
            "assert 'torchaudio' not in sys.modules; a.run_probe; "
            "assert 'smooth_infomax.analysis.probes' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    from smooth_infomax import analysis

    assert all(getattr(analysis, name) is not None for name in analysis.__all__)


# --- end to end ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus_root(tone_corpus):
    return tone_corpus


@pytest.mark.slow
def test_evaluate_end_to_end_on_the_tone_corpus(corpus_root, tmp_path):
    out = tmp_path / "results"
    code = ev.main(["--data", str(corpus_root), "--random-init", "sim", "--mfcc", "--mfcc-context", "2",
                    "--out", str(out), "--phone-epochs", "20", "--phone-lr", "3e-3", "--phone-batch", "256",
                    "--speaker-epochs", "300", "--speaker-crops", "4", "--threads", "1", "--quiet", "--save-probes"])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    corpus, chance = results["corpus"], results["chance"]
    assert corpus["speakers"] == 3 and corpus["train_crops"] == 4 * corpus["train_utterances"]
    names = [(m["name"], list(m["features"])) for m in results["models"]]
    assert names == [("random sim", ["module 0", "module 1", "module 2", "GRU"]), ("MFCC", ["MFCC", "MFCC ±2"])]
    for model in results["models"]:
        for name, entry in model["features"].items():
            assert entry["phone"]["test"]["total"] == corpus["test_frames"]  # every test frame is scored
            assert 0 <= entry["phone"]["test"]["accuracy"] <= 1
            if name != "MFCC ±2":
                assert entry["speaker"]["test"]["total"] == corpus["test_crops"]
    mfcc = results["models"][1]["features"]
    assert mfcc["MFCC ±2"]["phone"]["test"]["accuracy"] > chance["phone"]["majority"]["accuracy"] + 0.1
    assert mfcc["MFCC"]["phone"]["test"]["accuracy"] > chance["phone"]["majority"]["accuracy"] + 0.05
    assert mfcc["MFCC"]["speaker"]["test"]["accuracy"] >= 0.8  # 3 speakers, chance 1/3
    # label maps are saved with the results and agree with the corpus
    assert load_speaker_map(out / "speakers.json") == {s: i for i, s in enumerate(results["label_maps"]["speakers"])}
    assert load_label_map(out / "phones.json")[:2] == ["SIL", "AA"] and len(results["label_maps"]["phones"]) == 41
    table = (out / "results.md").read_text()
    assert "| random sim | GRU | 256 |" in table and "majority class" in table
    probe, classes, _ = load_probe(out / "probes" / "MFCC__MFCC__speaker.safetensors")
    assert classes == results["label_maps"]["speakers"] and probe.dim == 39
    assert results["settings"]["mfcc"]["n_mfcc"] == 13 and results["timings"]["total_s"] > 0
    per_item = mfcc["MFCC"]["phone"]["test"]["per_item"]
    assert len(per_item["total"]) == corpus["test_utterances"] and sum(per_item["total"]) == corpus["test_frames"]
    assert sum(per_item["correct"]) == mfcc["MFCC"]["phone"]["test"]["correct"]
    rows = compare_probes.main([str(out / "results.json"), "--reference", "MFCC:MFCC", "--resamples", "500"])
    assert {(r["model"], r["features"]) for r in rows} == {("MFCC", "MFCC ±2"), *(
        ("random sim", f) for f in ("module 0", "module 1", "module 2", "GRU"))}
    context = next(r for r in rows if r["features"] == "MFCC ±2")
    expected = context["accuracy"] - mfcc["MFCC"]["phone"]["test"]["accuracy"]
    assert context["difference"] == pytest.approx(expected) and context["low"] <= expected <= context["high"]


def test_speaker_crops_are_fixed_and_shared_between_models(corpus_root):
    corpus = ev.load_corpus(corpus_root, ev.EvalSettings())
    first = list(ev.crop_batches(corpus, corpus.train_ids, 2, seed=0, crop_samples=20480, batch_size=4))
    again = list(ev.crop_batches(corpus, corpus.train_ids, 2, seed=0, crop_samples=20480, batch_size=4))
    assert sum(len(b[2]) for b in first) == 2 * len(corpus.train_ids)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[2], b[2]) for a, b in zip(first, again, strict=True))
    other = next(ev.crop_batches(corpus, corpus.train_ids, 2, seed=1, crop_samples=20480, batch_size=4))
    assert not torch.equal(other[0], first[0][0])


def test_deboer_syllable_and_vowel_probes(tmp_path):
    words = ["babibu", "dadidu", "gagigu", "bidagu", "dubiga", "gubadi"]
    fx.write_deboer_fixture(tmp_path / "train", "syllables", words)
    fx.write_deboer_fixture(tmp_path / "test", "syllables", words[:3])
    settings = replace(ev.EvalSettings(), syllable_probe=replace(ev.EvalSettings().syllable_probe, epochs=300))
    result = ev.evaluate_deboer(MfccFeatures(), tmp_path, settings)["MFCC"]
    assert result["syllable"]["test"]["total"] == 9 and result["syllable"]["n_classes"] == 9
    assert result["vowel"]["classes"] == ["a", "i", "u"]
    assert result["vowel"]["test"]["accuracy"] == 1.0  # the fixture's vowels differ in pitch


def test_model_paths(tmp_path):
    torch.manual_seed(0)
    encoder = SmoothInfoMaxEncoder.from_preset("sim")
    encoder.save_pretrained(tmp_path / "model")
    loaded, description = evaluate_models.load_encoder(str(tmp_path / "model"))
    assert "pretrained folder" in description and not loaded.training
    from training.checkpoint import checkpoint_path, save_checkpoint

    save_checkpoint(checkpoint_path(tmp_path / "run", 7), {"encoder": encoder.state_dict(), "step": 7,
                                                          "encoder_config": encoder.config.to_json()})
    for spec in (tmp_path / "run", checkpoint_path(tmp_path / "run", 7)):
        from_run, description = evaluate_models.load_encoder(str(spec))
        assert "step 7" in description and not from_run.training
        assert all(torch.equal(x, y)
                   for x, y in zip(from_run.state_dict().values(), encoder.state_dict().values(), strict=True))
    a, b = evaluate_models.random_encoder("sim", 3), evaluate_models.random_encoder("sim", 3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    assert not torch.equal(next(a.parameters()), next(evaluate_models.random_encoder("sim", 4).parameters()))
    with pytest.raises(SystemExit):
        ev.main(["--data", str(tmp_path), "--out", str(tmp_path / "o")])  # nothing to evaluate


def test_split_names_are_taken_with_or_without_txt():
    args = ev.build_parser().parse_args(["--out", "x", "--train-split", "select_train_split.txt",
                                         "--test-split", "select_val_split"])
    settings = ev.settings_from_args(args)
    assert (settings.train_split, settings.test_split) == ("select_train_split", "select_val_split")


def test_frames_late_reaches_every_candidate(tmp_path):
    SmoothInfoMaxEncoder.from_preset("sim").save_pretrained(tmp_path / "model")
    args = ev.build_parser().parse_args(["--model", f"m={tmp_path / 'model'}", "--random-init", "sim", "--mfcc",
                                         "--mfcc-context", "2", "--frames-late", "3", "--out", str(tmp_path / "o")])
    candidates = evaluate_models.candidates_from_args(args, ev.settings_from_args(args))
    trained, random_init, mfcc = (c.make() for c in candidates)
    assert trained.feature_names[-1] == random_init.feature_names[-1] == "GRU +3"
    assert mfcc.feature_names == ["MFCC", "MFCC ±2", "MFCC +3", "MFCC ±2 +3"]
    args.frames_late = [0]
    with pytest.raises(SystemExit, match="non-zero"):
        evaluate_models.candidates_from_args(args, ev.settings_from_args(args))
