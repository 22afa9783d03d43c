"""The real-speech evaluation corpus (training.data.real_eval): forced-alignment labels, probe splits, the
agreement check, and training.evaluate on a corpus whose phone labels cover only some utterances.

The fake source corpus has the layout of training.data.debian_speech: English prompts spoken by espeak-ng (so
PocketSphinx has real speech to align), an English prompt with a word missing from the CMU dictionary, tones for
the other languages, and one English prompt in the source's train split that must never be read."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
import soundfile as sf

import data_fixtures as fx
from training import evaluate as ev
from training.data import alignment_check as ac
from training.data import real_eval
from training.data.forced_align import PocketsphinxAligner, normalise_text, number_words
from training.data.librispeech import CorpusPaths, read_phone_labels, read_split
from training.data.phones import PHONE_INDEX, SIL, read_phone_table

ENGLISH = ["Please enter your password followed by the pound key.", "Press 1 to call this number.",
           "You have 3 new messages in your mailbox."]
OOV_TEXT = "Press the zorblax key now."
COLUMNS = ["id", "package", "version", "licence", "language", "voice", "prompt", "split", "duration_s", "transcript"]


def _espeak_or_skip() -> ac.Synthesiser:
    """espeak-ng speaks the English fixtures; flite is the agreement check's projector."""
    fx.require_engines("espeak", "flite")
    return ac.Synthesiser("espeak")


def _prompt_names() -> tuple[list[str], list[str]]:
    """Ten prompt names as the builder will split them: (7 probe-train, 3 probe-test)."""
    splits = real_eval.probe_splits(f"prompt-{i:03d}" for i in range(10))
    return sorted(p for p, s in splits.items() if s == "train"), sorted(p for p, s in splits.items() if s == "test")


def _write_source(root, specs) -> dict:
    """Write FLACs, split files and utterances.tsv; ``specs``: (id, language, prompt, split, audio, text)."""
    rows, splits = [], {"train": [], "test": []}
    for utt_id, language, prompt, split, audio, text in specs:
        speaker, chapter, _ = utt_id.split("-")
        path = CorpusPaths(root).audio_dir / speaker / chapter / f"{utt_id}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, audio, 16000, subtype="PCM_16")
        splits[split].append(utt_id)
        rows.append([utt_id, "pkg", "1", "CC0", language, "voice", prompt, split, f"{len(audio) / 16000:.3f}", text])
    CorpusPaths(root).labels_dir.mkdir(parents=True)
    for split, ids in splits.items():
        CorpusPaths(root).split(f"{split}_split").write_text("".join(f"{i}\n" for i in ids))
    (root / "utterances.tsv").write_text("\n".join("\t".join(r) for r in [COLUMNS] + rows) + "\n")
    return {row[0]: row for row in rows}


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A fake debian_speech corpus and the espeak-ng labels of its English utterances."""
    speaker = _espeak_or_skip()
    root, (train, test) = tmp_path_factory.mktemp("real_source"), _prompt_names()
    english = [speaker.speak(" ".join(normalise_text(text))) for text in ENGLISH]
    names = [train[0], train[1], test[0]]
    specs = [(f"9101-1-{i:04d}", "en", names[i], "test", s.audio, t)
             for i, (s, t) in enumerate(zip(english, ENGLISH, strict=True))]
    specs.append(("9101-1-0003", "en", train[2], "test", speaker.speak("press the key now").audio, OOV_TEXT))
    specs.append(("9101-1-0004", "en", "held-out-of-eval", "train", english[0].audio, ENGLISH[0]))
    others = [("9101", 2, "es", 210.0, [train[3], test[1]]), ("9102", 3, "fr", 150.0, [train[4], test[2]]),
              ("9104", 5, "ru", 110.0, [train[5], test[1], train[6]])]  # test[1]: one prompt in two languages
    for number, (speaker_id, chapter, language, f0_hz, prompts) in enumerate(others):
        for k, prompt in enumerate(prompts):
            audio = fx.tone(32000, 16000, f0_hz * (1 + 0.05 * k), seed=10 * number + k)
            specs.append((f"{speaker_id}-{chapter}-{k:04d}", language, prompt, "test", audio, ""))
    rows = _write_source(root, specs)
    return root, rows, {f"9101-1-{i:04d}": s.labels for i, s in enumerate(english)}


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    root, _, _ = source
    out = tmp_path_factory.mktemp("real_eval") / "corpus"
    manifest = real_eval.build(root, out, check_utterances=2, quiet=True)
    return out, manifest


# --- text, splits, DTW ----------------------------------------------------------------------------------------------

def test_text_normalisation_reads_digits_and_keys_and_spells_unknown_acronyms():
    knows = PocketsphinxAligner().knows
    assert normalise_text("Press 1 for help, * to cancel, # to exit.", knows) == \
        "press one for help star to cancel pound to exit".split()
    assert normalise_text("3D audio: I'm On-line...", knows) == "three d audio i'm on line".split()
    assert normalise_text("MGCP and USB", knows) == ["m", "g", "c", "p", "and", "usb"]  # usb is in the dictionary
    assert number_words(0) == ["zero"] and number_words(40) == ["forty"]
    assert number_words(2105) == "two thousand one hundred five".split()


def test_probe_split_is_stable_salted_and_30_percent_of_the_prompts():
    names = [f"vm-prompt-{i}" for i in range(4000)]
    splits = real_eval.probe_splits(names)
    assert splits == real_eval.probe_splits(reversed(names + names[:10]))  # order and repeats do not matter
    assert list(splits.values()).count("test") == 1200
    # independent of the source corpus's own hash split (crc32 < 25 % -> its test split)
    held_out = [splits[n] for n in names if zlib.crc32(n.encode()) % 10_000 < 2500]
    assert 0.25 < held_out.count("test") / len(held_out) < 0.35
    assert real_eval.probe_splits(["a"]) == {"a": "train"} and sorted(real_eval.probe_splits("ab").values()) == [
        "test", "train"]


def test_dtw_projection_recovers_a_known_time_warp():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 5)  # 40 source frames, 8 "phones"
    source = np.repeat(rng.standard_normal((8, 6)), 5, axis=0) + 0.01 * rng.standard_normal((40, 6))
    warp = np.repeat(np.arange(40), np.where(np.arange(40) < 20, 2, 1))  # first half twice as slow
    assert np.array_equal(ac.project_labels(source[warp], source, labels), labels[warp])


def test_phone_start_offsets_match_shared_phones():
    ref = ac.label_segments(np.array([0, 0, 3, 3, 3, 7, 7, 0]))
    hyp = ac.label_segments(np.array([0, 0, 0, 3, 3, 9, 7, 0]))
    assert [round(o, 3) for o in ac.start_offsets_s(ref, hyp)] == [0.01, 0.01, 0.0]  # 3, 7 and the final SIL
    assert ac.frame_agreement(np.array([PHONE_INDEX["AO"], 1]), np.array([PHONE_INDEX["AA"], 1]), fold=True) == (2, 2)


# --- the built corpus -----------------------------------------------------------------------------------------------

def test_english_labels_follow_the_speech(source, built):
    root, _, truth = source
    out, manifest = built
    labels = read_phone_labels(CorpusPaths(out).phone_labels)
    assert sorted(labels) == sorted(truth)
    for utt_id, frames in labels.items():
        n_samples = sf.info(str(CorpusPaths(out).audio_dir / "9101" / "1" / f"{utt_id}.flac")).frames
        assert len(frames) == n_samples // 160
        assert np.mean(frames != SIL) > 0.6
        assert set(frames.tolist()) <= set(range(41))
        equal, total = ac.frame_agreement(truth[utt_id], frames.astype(np.int64))
        assert equal / total > 0.6, f"{utt_id}: PocketSphinx agrees with espeak's own timings on {equal}/{total}"
    alignment = manifest["alignment"]
    assert (alignment["english_utterances"], alignment["aligned"], alignment["skipped"]) == (4, 3, 1)
    assert alignment["skipped_utterances"] == {"9101-1-0003": "skipped: not in the dictionary: zorblax"}


def test_probe_splits_cover_every_speaker_and_only_the_source_test_split(source, built):
    _, rows, _ = source
    out, manifest = built
    paths = CorpusPaths(out)
    train, test = read_split(paths.split("train_split")), read_split(paths.split("test_split"))
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(i for i, r in rows.items() if r[7] == "test")
    for split in (train, test):
        assert {i.split("-")[0] for i in split} == {"9101", "9102", "9104"}
    assert "9101-1-0004" not in train + test and not (paths.audio_dir / "9101/1/9101-1-0004.flac").exists()
    assert {rows[i][6] for i in train}.isdisjoint(rows[i][6] for i in test)  # a prompt stays in one split
    labelled = read_phone_labels(paths.phone_labels)
    assert all(i.startswith("9101-1-") for i in labelled)  # non-English: in the splits, never labelled
    assert read_phone_table(paths.phone_table)[0] == "SIL" and len(read_phone_table(paths.phone_table)) == 41
    assert manifest["speakers"]["9102"]["utterances"] == 2 and manifest["speakers"]["9102"]["labelled_frames"] == 0
    assert manifest["languages"]["en"]["labelled_utterances"] == 3 and manifest["total"]["utterances"] == 11
    assert manifest["probe_split_prompts"] == {"train": 7, "test": 3}
    select_train = read_split(paths.split("select_train_split"))
    select_val = read_split(paths.split("select_val_split"))
    assert sorted(select_train + select_val) == sorted(train) and select_val and select_train  # probe-test untouched
    assert {rows[i][6] for i in select_train}.isdisjoint(rows[i][6] for i in select_val)


def test_rebuilding_gives_the_same_corpus_and_refuses_to_mix(source, built, tmp_path):
    root, _, _ = source
    out, _ = built
    again = tmp_path / "again"
    real_eval.build(root, again, quiet=True)
    for name in ("train_split.txt", "test_split.txt", "converted_aligned_phones.txt"):
        assert (again / "LibriSpeech100_labels_split" / name).read_text() == \
            (out / "LibriSpeech100_labels_split" / name).read_text()
    with pytest.raises(FileExistsError, match="--force"):
        real_eval.build(root, again, quiet=True)
    with pytest.raises(SystemExit, match="utterances.tsv: not found"):
        real_eval.main([str(tmp_path / "nowhere"), str(tmp_path / "o"), "--quiet"])


def test_agreement_check_is_written_with_its_calibration(built):
    out, manifest = built
    check = json.loads((out / "alignment_check.json").read_text())
    assert check["utterances"] == 2 and len(check["per_utterance"]) == 2
    totals = check["totals"]
    for name in ("pocketsphinx_vs_dtw", "calibration_pocketsphinx", "calibration_dtw"):
        assert 0.3 < totals[name]["frame_agreement"] <= totals[name]["frame_agreement_folded"] <= 1
        assert totals[name]["matched_phone_starts"] > 10
    assert totals["calibration_pocketsphinx"]["median_abs_start_offset_ms"] <= 20
    assert manifest["agreement"]["pocketsphinx_vs_dtw"] == totals["pocketsphinx_vs_dtw"]


# --- training.evaluate on a partially labelled corpus -------------------------------------------------------------

@pytest.mark.slow
def test_evaluate_uses_labelled_utterances_for_phones_and_all_for_speakers(built, tmp_path):
    out, _ = built
    corpus = ev.load_corpus(out, ev.EvalSettings())
    assert not corpus.fully_labelled and len(corpus.phone_train_ids) == 2 and len(corpus.phone_test_ids) == 1
    code = ev.main(["--data", str(out), "--random-init", "sim", "--mfcc", "--out", str(tmp_path / "r"),
                    "--phone-epochs", "2", "--speaker-epochs", "20", "--speaker-crops", "1", "--threads", "1",
                    "--quiet"])
    assert code == 0
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    probes = results["corpus"]["probes"]
    labels = read_phone_labels(CorpusPaths(out).phone_labels)
    test_frames = sum(len(labels[i]) for i in corpus.phone_test_ids)
    assert probes["phone"] == {"train_utterances": 2, "test_utterances": 1, "test_frames": test_frames,
                               "train_frames": sum(len(labels[i]) for i in corpus.phone_train_ids)}
    assert probes["speaker"]["train_utterances"] == len(corpus.train_ids) == probes["speaker"]["train_crops"]
    assert probes["speaker"]["test_crops"] == len(corpus.test_ids)
    for model in results["models"]:
        for entry in model["features"].values():
            assert entry["phone"]["test"]["total"] == test_frames
            assert entry["speaker"]["test"]["total"] == len(corpus.test_ids)
    assert "Phone labels cover 2 of the" in (tmp_path / "r" / "results.md").read_text()


def test_evaluate_refuses_a_split_without_any_phone_labels(built, tmp_path):
    out, _ = built
    paths = CorpusPaths(out)
    empty = tmp_path / "corpus"
    empty.mkdir()
    (empty / "LibriSpeech").symlink_to(out / "LibriSpeech")
    (empty / "LibriSpeech100_labels_split").mkdir()
    for name in ("train_split", "test_split"):
        (empty / "LibriSpeech100_labels_split" / f"{name}.txt").write_text(paths.split(name).read_text())
    (empty / "LibriSpeech100_labels_split" / "converted_aligned_phones.txt").write_text("")
    with pytest.raises(ValueError, match="no phone labels for any"):
        ev.load_corpus(empty, ev.EvalSettings())


# --- an unseen-speaker split from a second corpus ------------------------------------------------------------------

@pytest.fixture(scope="module")
def unseen_built(source, tmp_path_factory):
    """``built`` again, with a second corpus of other speakers (9201: two English test utterances, one train)."""
    root = source[0]
    speaker = _espeak_or_skip()
    other = tmp_path_factory.mktemp("voices")
    words = ["A brown owl.", "nose", "palm tree"]
    audio = [speaker.speak(" ".join(normalise_text(text))).audio for text in words]
    rows = _write_source(other, [("9201-1-0000", "en", "animals/owl", "test", audio[0], words[0]),
                                 ("9201-1-0001", "en", "nose", "test", audio[1], words[1]),
                                 ("9202-2-0000", "es", "animals/owl", "train", audio[2], "")])
    out = tmp_path_factory.mktemp("real_eval_unseen") / "corpus"
    manifest = real_eval.build(root, out, check_utterances=1, quiet=True, unseen=other)
    return other, rows, out, manifest


def test_unseen_split_holds_the_second_corpus_and_leaves_the_probe_splits_alone(built, unseen_built):
    out, _ = built
    other, rows, out_unseen, manifest = unseen_built
    paths = CorpusPaths(out_unseen)
    for name in ("train_split", "test_split", "select_train_split", "select_val_split"):
        assert paths.split(name).read_text() == CorpusPaths(out).split(name).read_text()
    assert read_split(paths.split("unseen_split")) == ["9201-1-0000", "9201-1-0001"]
    labels = read_phone_labels(paths.phone_labels)
    for utt_id in ("9201-1-0000", "9201-1-0001"):
        n_samples = sf.info(str(paths.audio_dir / "9201" / "1" / f"{utt_id}.flac")).frames
        assert len(labels[utt_id]) == n_samples // 160 and (np.asarray(labels[utt_id]) != SIL).any()
    assert not (paths.audio_dir / "9202").exists()  # the second corpus's train split is never read
    assert manifest["probe_splits"]["unseen"]["labelled_utterances"] == 2
    assert manifest["unseen_source"] == str(other) and manifest["unseen_agreement"]["utterances"] == 1
    assert json.loads((out_unseen / "alignment_check_unseen.json").read_text())["utterances"] == 1
    assert not (CorpusPaths(out).split("unseen_split")).exists()


def test_unseen_corpus_sharing_a_speaker_is_refused(source, tmp_path):
    root = source[0]
    with pytest.raises(ValueError, match=r"speaker\(s\) 9101, 9102, 9104 are also in"):
        real_eval.build(root, tmp_path / "out", quiet=True, unseen=root)


def test_evaluate_scores_phones_on_the_unseen_split(unseen_built, tmp_path):
    _, _, out, _ = unseen_built
    code = ev.main(["--data", str(out), "--mfcc", "--test-split", "unseen_split", "--out", str(tmp_path / "r"),
                    "--phone-epochs", "2", "--speaker-epochs", "5", "--speaker-crops", "1", "--threads", "1",
                    "--quiet"])
    assert code == 0
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    labels = read_phone_labels(CorpusPaths(out).phone_labels)
    assert results["corpus"]["probes"]["phone"]["test_frames"] == len(labels["9201-1-0000"]) + len(
        labels["9201-1-0001"])
    assert "No speaker of the test split is in the train split" in (tmp_path / "r" / "results.md").read_text()
