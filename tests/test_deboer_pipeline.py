"""The Artificial Speech Dataset end to end on a tiny copy in the dataset's exact layout: train SIM on its words,
evaluate syllables and vowels (both splits, chance rates, early stopping), export with the data's licence."""

from __future__ import annotations

import json

import pytest
import soundfile as sf

import data_fixtures as fx
from training import evaluate, export, train
from training.config import load_config
from training.data.deboer import SYLLABLES_FOLDER, WORDS_FOLDER, find_layout, syllable_split, word_of

HEARD = ["babidu", "bidagu", "budiga", "dabugi", "digiba", "dugabu", "gadubi", "gibuda", "gudagi", "bagudi", "diduba",
         "gubiga"]
"""Words with a take in reshuffledv2/train (the encoder's training words), with gagubu (take 2 only)."""
UNHEARD = ["dibaga", "bubidi", "gidadu"]
SYLLABLE_TEST = ["babidu", "digiba", "dibaga", "gagubu"]
"""Published syllable test words, named take 1 as in the dataset: two heard, gagubu heard through its second take,
dibaga never heard."""


def _write_word(folder, word, take, seed):
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / f"{word}_{take}.wav", fx.tone(39690, 44100, 130 + 7 * seed, seed), 44100, subtype="PCM_16")


@pytest.fixture(scope="module")
def asd(tmp_path_factory):
    """``ASD/reshuffledv2/{train,test}`` (44.1 kHz words, ``<word>_<take>.wav``) and ``ASD/split up data padded/
    {train,test}`` (22.05 kHz, 12156-sample syllables, ``<word>_<take>_<pos>_<syl>.wav``)."""
    root = tmp_path_factory.mktemp("deboer") / "ASD"
    words, syllables = root / WORDS_FOLDER, root / SYLLABLES_FOLDER
    fx.write_deboer_fixture(words / "train", "words", HEARD)
    _write_word(words / "train", "gagubu", 2, 20)
    fx.write_deboer_fixture(words / "test", "words", ["gagubu", *UNHEARD])
    _write_word(words / "test", "babidu", 2, 21)
    fx.write_deboer_fixture(syllables / "train", "syllables", [*HEARD, "gagubu", *UNHEARD])
    fx.write_deboer_fixture(syllables / "test", "syllables", SYLLABLE_TEST)
    return root


@pytest.fixture(scope="module")
def run_dir(asd, tmp_path_factory):
    """``python -m training.train sim_deboer --set data_root=ASD`` shrunk to 2 steps of batch 4."""
    out = tmp_path_factory.mktemp("runs") / "sim_deboer"
    settings = {"data_root": asd, "out_dir": out, "epochs": 0, "steps": 2, "batch_size": 4, "device": "cpu",
                "checkpoint_every": 2, "val_every": 2, "val_batches": 1, "log_every": 1, "tensorboard": "false",
                "deterministic": "true"}
    train.main(["sim_deboer", *[arg for key, value in settings.items() for arg in ("--set", f"{key}={value}")]])
    return out


def test_the_config_is_the_reference_protocol():
    config = load_config("sim_deboer")
    assert (config.layout, config.crop_samples, config.batch_size, config.learning_rate) == ("deboer", 10240, 64, 2e-4)
    assert train.total_training_steps(config, 680, 1) == 10_000  # 1000 epochs of 680 words in batches of 64
    sim, gim = config.encoder_config(), load_config("gim_sim_repo_deboer").encoder_config()
    assert sim.loss.kl_weight == 0.01 and gim.loss.kl_weight == 0.0
    assert not any(m.batch_norm for m in sim.modules + gim.modules)  # the de Boer README turns BatchNorm off
    assert [m.head for m in gim.modules[:3]] == ["mean"] * 3 and gim.preset == "gim_sim_repo"


@pytest.mark.slow
def test_train_reads_the_dataset_folder(run_dir, asd):
    saved = json.loads((run_dir / "train_config.json").read_text())
    assert saved["layout"] == "deboer" and saved["data_root"] == str(asd)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step_00000002.pt"]
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert sum(",val," in row for row in rows) == 1  # validated on reshuffledv2/test
    train_set, val_set = train.build_datasets(load_config("sim_deboer", {"data_root": str(asd)}))
    assert (len(train_set), len(val_set)) == (13, 5) and train_set[0].audio.shape == (1, 10240)


def test_a_librispeech_config_on_the_dataset_says_what_to_use(asd):
    with pytest.raises(FileNotFoundError, match="sim_deboer"):
        train.build_datasets(load_config("sim_synth", {"data_root": str(asd)}))


def test_the_unheard_split_leaves_out_every_take_the_encoder_trained_on(asd):
    layout = find_layout(asd)
    published, unheard = syllable_split(layout, "published"), syllable_split(layout, "unheard")
    assert published.counts() == {"train_files": 48, "train_words": 16, "test_files": 12, "test_words": 4,
                                  "unused_files": 0, "unused_words": 0, "test_files_from_heard_words": 9,
                                  "heard_words": 13}
    assert unheard.counts() == {"train_files": 39, "train_words": 13, "test_files": 12, "test_words": 3,
                                "unused_files": 9, "unused_words": 3, "test_files_from_heard_words": 0,
                                "heard_words": 13}
    assert {word_of(p) for p in unheard.test} == set(UNHEARD)  # gagubu is out: its take 2 is training audio
    assert sum(p.parent.name == "test" for p in unheard.test) == 3  # dibaga's published test files
    assert find_layout(asd / SYLLABLES_FOLDER) == layout  # the syllable folder works too


@pytest.mark.slow
def test_evaluate_with_deboer_alone_prints_both_splits_with_chance(run_dir, asd, tmp_path, capsys):
    out = tmp_path / "results"
    evaluate.main(["--deboer", str(asd), "--model", f"sim={run_dir}", "--mfcc", "--deboer-split", "both",
                   "--out", str(out), "--quiet", "--syllable-patience", "5"])
    printed = capsys.readouterr().out
    for text in ("### Split `published`", "### Split `unheard`", "| majority class (train) |", "| uniform chance |",
                 "| 11.1 | 33.3 |", "9 of the 12 test files come from words with a recording"):
        assert text in printed, text
    assert (out / "results.md").read_text().count("| uniform chance |") == 2
    assert not (out / "speakers.json").exists()
    results = json.loads((out / "results.json").read_text())["deboer"]
    unheard = results["splits"]["unheard"]
    assert unheard["counts"]["test_files"] == 12 and unheard["counts"]["test_files_from_heard_words"] == 0
    assert set(unheard["models"]) == {"sim", "MFCC"} and set(unheard["models"]["sim"]) >= {"module 0", "GRU"}
    for split in results["splits"].values():
        for features in split["models"].values():
            for entry in features.values():
                for task in ("syllable", "vowel"):
                    record = entry[task]
                    assert 1 <= record["best_epoch"] <= record["epochs_run"] <= 2000
                    assert record["stopped_early"] == (record["epochs_run"] < 2000)
                    if record["stopped_early"]:  # patience 5: five epochs without a lower validation loss
                        assert record["epochs_run"] - record["best_epoch"] == 5
                        best = record["val_losses"][record["best_epoch"] - 1]
                        assert min(record["val_losses"][-5:]) >= best - 1e-4 - 2e-6  # (losses rounded to 1e-6)
                    assert record["test"]["total"] == split["counts"]["test_files"]
    assert results["splits"]["published"]["models"]["MFCC"]["MFCC"]["vowel"]["test"]["accuracy"] >= 0.75


@pytest.mark.slow
def test_syllable_folder_alone_gives_the_published_split_only(asd, tmp_path, capsys):
    folder = tmp_path / "syllables_only"
    for part in ("train", "test"):
        (folder / part).mkdir(parents=True)
        for path in (asd / SYLLABLES_FOLDER / part).iterdir():
            (folder / part / path.name).symlink_to(path)
    evaluate.main(["--deboer", str(folder), "--mfcc", "--out", str(tmp_path / "a"), "--quiet"])
    assert "which test words the encoder heard is unknown" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="needs the words folder"):
        evaluate.main(["--deboer", str(folder), "--mfcc", "--deboer-split", "unheard", "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit):
        evaluate.main(["--mfcc", "--out", str(tmp_path / "c")])  # neither --data nor --deboer


@pytest.mark.slow
def test_export_card_carries_the_data_licence_and_the_syllable_results(run_dir, asd, tmp_path):
    results = tmp_path / "results"
    evaluate.main(["--deboer", str(asd), "--model", f"sim={run_dir}", "--out", str(results), "--quiet",
                   "--syllable-max-epochs", "30"])
    export.main([str(run_dir), str(tmp_path / "model"), "--results", str(results / "results.json"),
                 "--results-model", "sim"])
    card = (tmp_path / "model" / "README.md").read_text()
    header = card.split("\n---", 1)[0]
    assert "license: cc-by-nc-sa-4.0" in header and "license: mit" not in header
    assert "## Licence" in card and "Artificial Speech Dataset" in card
    for metric in ("syllable accuracy, GRU, ASD published split (%)", "vowel accuracy, module 0, ASD published split",
                   "syllable chance, uniform, ASD published split (%) | 11.11",
                   "vowel chance, majority class, ASD published split"):
        assert metric in card, metric
    export.main([str(run_dir), str(tmp_path / "mit"), "--license", "mit"])
    assert "license: mit" in (tmp_path / "mit" / "README.md").read_text()
