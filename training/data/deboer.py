"""The Artificial Speech Dataset ("de Boer") of the SIM paper (spec section 3.3).

One synthetic speaker saying CV-CV-CV words, C in {b, d, g} and V in {a, i, u}:

* words: ``<word>_<take>.wav`` at 44.1 kHz (``reshuffledv2/{train,test}``), e.g. ``bagubi_1.wav``;
* syllables: ``<word>_<take>_<pos>_<syl>.wav`` at 22.05 kHz, 12156 samples zero-padded
  (``split up data padded/{train,test}``), e.g. ``bagubi_1_2_gu.wav``.

Labels: syllable (9 classes, :data:`SYLLABLES` order) or vowel (3 classes: a 0, i 1, u 2), from the last
two characters of the name. Words get the dummy label 0, as in the reference. Audio is resampled to
16 kHz; words keep their first 10240 samples (0.64 s, the reference's deterministic crop; shorter ones
are zero-padded), syllables are whole (12156 -> 8821 samples).

The dataset is licensed for non-commercial use (CC-BY-NC-SA-4.0) and is not shipped here; point the loaders at
your copy. :class:`WordCrops` serves the words to ``training.train`` (config ``sim_deboer``); :func:`syllable_split`
gives the syllable probe's train and test files, as published or without the words the encoder trained on.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from training.data.audio_io import AudioFileError, read_audio

SYLLABLES = ("ba", "bi", "bu", "da", "di", "du", "ga", "gi", "gu")
VOWELS = ("a", "i", "u")
WORD_RATE_HZ, SYLLABLE_RATE_HZ = 44100, 22050
WORD_CROP_SAMPLES = 10240
WORDS_FOLDER, SYLLABLES_FOLDER = "reshuffledv2", "split up data padded"
SPLITS = ("published", "unheard")
_SYL = "[bdg][aiu]"
_WORD_NAME = re.compile(rf"^(?P<word>(?:{_SYL}){{3}})_(?P<take>\d+)\.wav$")
_SYLLABLE_NAME = re.compile(rf"^(?P<word>(?:{_SYL}){{3}})_(?P<take>\d+)_(?P<pos>[123])_(?P<syl>{_SYL})\.wav$")


class DeBoerItem(NamedTuple):
    audio: torch.Tensor  # (1, samples) float32 at 16 kHz
    filename: str
    label: int
    word: str


def parse_name(name: str, kind: str) -> dict[str, str]:
    """Fields of a word (``word``, ``take``) or syllable (also ``pos``, ``syl``) file name."""
    pattern = _SYLLABLE_NAME if kind == "syllables" else _WORD_NAME
    match = pattern.match(name)
    if match is None:
        example = "bagubi_1_2_gu.wav" if kind == "syllables" else "bagubi_1.wav"
        raise ValueError(f"{name!r} is not a de Boer {kind[:-1]} file name like {example!r}")
    return match.groupdict()


def syllable_label(syllable: str, labels: str = "syllables") -> int:
    """Class index of a syllable: 9 syllable classes, or 3 vowel classes."""
    if labels == "syllables":
        return SYLLABLES.index(syllable)
    if labels == "vowels":
        return VOWELS.index(syllable[-1])
    raise ValueError(f"labels must be 'syllables' or 'vowels', not {labels!r}")


class DeBoerDataset(Dataset):
    """All ``.wav`` files of one directory (sorted by name), or the given ``files``, as :class:`DeBoerItem`.

    ``kind``: "syllables" or "words". ``labels``: "syllables" (9) or "vowels" (3). ``check_rate``: refuse
    files not at the dataset's rate (44.1 kHz words, 22.05 kHz syllables), as the reference asserts.
    ``crop_samples``: words keep their first ``crop_samples`` samples at 16 kHz (zero-padded when shorter).
    """

    def __init__(self, directory: str | Path | None = None, kind: str = "syllables", labels: str = "syllables",
                 check_rate: bool = True, crop_samples: int = WORD_CROP_SAMPLES,
                 files: Sequence[str | Path] | None = None):
        if kind not in ("syllables", "words"):
            raise ValueError(f"kind must be 'syllables' or 'words', not {kind!r}")
        syllable_label("ba", labels)  # validates ``labels``
        self.kind, self.labels, self.crop_samples = kind, labels, crop_samples
        self.expected_rate = (SYLLABLE_RATE_HZ if kind == "syllables" else WORD_RATE_HZ) if check_rate else None
        if files is not None:
            self.directory, self.paths = None, [Path(f) for f in files]
            if not self.paths:
                raise ValueError("no files given")
        else:
            if directory is None:
                raise ValueError("give a directory or files")
            self.directory = Path(directory)
            if not self.directory.is_dir():
                raise FileNotFoundError(f"{self.directory}: no such directory")
            self.paths = sorted(self.directory.glob("*.wav"))
            if not self.paths:
                raise FileNotFoundError(f"{self.directory}: no .wav files")
        self.names = []
        for path in self.paths:
            try:
                self.names.append(parse_name(path.name, kind))
            except ValueError as error:
                raise AudioFileError(path, str(error)) from error

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> DeBoerItem:
        path, fields = self.paths[index], self.names[index]
        audio = read_audio(path, expected_rate=self.expected_rate)
        if self.kind == "words":
            audio = np.pad(audio[:self.crop_samples], (0, max(0, self.crop_samples - len(audio))))
            label = 0
        else:
            label = syllable_label(fields["syl"], self.labels)
        return DeBoerItem(torch.from_numpy(audio).unsqueeze(0), path.name, label, fields["word"])

    def class_names(self) -> tuple[str, ...]:
        return SYLLABLES if self.labels == "syllables" else VOWELS


def word_of(path: str | Path) -> str:
    """The word (``bagubi``) of a word or syllable file name."""
    name = Path(path).name
    return parse_name(name, "syllables" if _SYLLABLE_NAME.match(name) else "words")["word"]


# --- training on the words ----------------------------------------------------------------------------------------

class WordCrops(Dataset):
    """The word recordings of one folder as training items: each word's first ``crop_samples`` samples at 16 kHz.

    The crop is the reference's deterministic one, so every epoch sees the same audio; the words are read once and
    kept in memory (680 words x 10240 samples: 28 MB). Items are :class:`DeBoerItem`; a DataLoader batch has
    ``audio`` of shape ``(batch, 1, crop_samples)``. ``set_epoch`` exists for the training loop and changes nothing.
    """

    def __init__(self, directory: str | Path, crop_samples: int = WORD_CROP_SAMPLES):
        words = DeBoerDataset(directory, kind="words", crop_samples=crop_samples)
        self.directory, self.items = Path(directory), [words[i] for i in range(len(words))]

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> DeBoerItem:
        return self.items[index]


def word_training_sets(root: str | Path, crop_samples: int = WORD_CROP_SAMPLES) -> tuple[WordCrops, WordCrops]:
    """Training words (``reshuffledv2/train``) and validation words (``reshuffledv2/test``, which the reference also
    uses for its validation loss) of the dataset at ``root``."""
    words = Path(root) / WORDS_FOLDER
    if not words.is_dir():
        raise FileNotFoundError(f"{root}: not the Artificial Speech Dataset's folder (no {WORDS_FOLDER}/ in it)")
    return WordCrops(words / "train", crop_samples), WordCrops(words / "test", crop_samples)


# --- the syllable probe's splits ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class AsdLayout:
    """Where a copy of the dataset keeps its syllables (a folder holding ``train/`` and ``test/``) and its words
    (``reshuffledv2``; ``None`` when only the syllable folder is at hand)."""

    syllables: Path
    words: Path | None


def find_layout(path: str | Path) -> AsdLayout:
    """The dataset's folder (holding ``split up data padded/`` and ``reshuffledv2/``), or its syllable folder."""
    path = Path(path)
    if (path / SYLLABLES_FOLDER).is_dir():
        syllables = path / SYLLABLES_FOLDER
    elif (path / "train").is_dir() and (path / "test").is_dir():
        syllables = path
    else:
        raise FileNotFoundError(f"{path}: neither the Artificial Speech Dataset's folder (holding "
                                f"'{SYLLABLES_FOLDER}/' and '{WORDS_FOLDER}/') nor a syllable folder with train/ "
                                "and test/")
    words = syllables.parent / WORDS_FOLDER
    return AsdLayout(syllables, words if (words / "train").is_dir() else None)


@dataclass(frozen=True)
class SyllableSplit:
    """Syllable files for the probe: ``train``, ``test``, and ``unused`` (published test files this split leaves out).

    ``heard_words``: the words with a recording in ``reshuffledv2/train``, the encoder's training audio (``None``
    when the words folder is absent).
    """

    name: str
    train: tuple[Path, ...]
    test: tuple[Path, ...]
    unused: tuple[Path, ...]
    heard_words: frozenset[str] | None

    def counts(self) -> dict[str, int | None]:
        """Files and distinct words of each part, and how many test files come from words the encoder heard."""
        out: dict[str, int | None] = {}
        for part in ("train", "test", "unused"):
            files = getattr(self, part)
            out[f"{part}_files"], out[f"{part}_words"] = len(files), len({word_of(p) for p in files})
        heard = self.heard_words
        out["test_files_from_heard_words"] = None if heard is None else sum(word_of(p) in heard for p in self.test)
        out["heard_words"] = None if heard is None else len(heard)
        return out


def syllable_split(layout: AsdLayout, name: str = "published") -> SyllableSplit:
    """The syllable probe's files under split ``name``.

    * ``published``: the dataset's own folders, as the reference: train ``train/``, test ``test/``. An encoder
      trained on ``reshuffledv2/train`` has heard most of the test words (the test files are cut from the second
      take of their word); ``counts()["test_files_from_heard_words"]`` says how many.
    * ``unheard``: test = every syllable file (``train/`` or ``test/``) of a word with no recording in
      ``reshuffledv2/train``; train = the ``train/`` files of the other words. So the encoder never trained on any
      take of a test word, and probe train and test share no word. Published test files of heard words are unused.
    """
    if name not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {name!r}")
    train_files = sorted((layout.syllables / "train").glob("*.wav"))
    test_files = sorted((layout.syllables / "test").glob("*.wav"))
    heard = None
    if layout.words is not None:
        heard = frozenset(word_of(p) for p in (layout.words / "train").glob("*.wav"))
    if name == "published":
        return SyllableSplit(name, tuple(train_files), tuple(test_files), (), heard)
    if heard is None:
        raise FileNotFoundError(f"{layout.syllables}: the 'unheard' split needs the words folder "
                                f"{layout.syllables.parent / WORDS_FOLDER}/train beside the syllables")
    test = tuple(p for p in train_files + test_files if word_of(p) not in heard)
    train = tuple(p for p in train_files if word_of(p) in heard)
    unused = tuple(p for p in test_files if word_of(p) in heard)
    return SyllableSplit(name, train, test, unused, heard)
