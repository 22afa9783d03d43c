"""The Artificial Speech Dataset ("de Boer") of the SIM paper (spec section 3.3).

One synthetic speaker saying CV-CV-CV words, C in {b, d, g} and V in {a, i, u}:

* words: ``<word>_<take>.wav`` at 44.1 kHz (``reshuffledv2/{train,test}``), e.g. ``bagubi_1.wav``;
* syllables: ``<word>_<take>_<pos>_<syl>.wav`` at 22.05 kHz, 12156 samples zero-padded
  (``split up data padded/{train,test}``), e.g. ``bagubi_1_2_gu.wav``.

Labels: syllable (9 classes, :data:`SYLLABLES` order) or vowel (3 classes: a 0, i 1, u 2), from the last
two characters of the name. Words get the dummy label 0, as in the reference. Audio is resampled to
16 kHz; words keep their first 10240 samples (0.64 s, the reference's deterministic crop; shorter ones
are zero-padded), syllables are whole (12156 -> 8821 samples).

The dataset is licensed for non-commercial use and is not shipped here; point the dataset at your copy.
"""

from __future__ import annotations

import re
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
    """All ``.wav`` files of one directory (sorted by name) as :class:`DeBoerItem`.

    ``kind``: "syllables" or "words". ``labels``: "syllables" (9) or "vowels" (3). ``check_rate``: refuse
    files not at the dataset's rate (44.1 kHz words, 22.05 kHz syllables), as the reference asserts.
    """

    def __init__(self, directory: str | Path, kind: str = "syllables", labels: str = "syllables",
                 check_rate: bool = True):
        if kind not in ("syllables", "words"):
            raise ValueError(f"kind must be 'syllables' or 'words', not {kind!r}")
        syllable_label("ba", labels)  # validates ``labels``
        self.directory, self.kind, self.labels = Path(directory), kind, labels
        self.expected_rate = (SYLLABLE_RATE_HZ if kind == "syllables" else WORD_RATE_HZ) if check_rate else None
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
            audio = np.pad(audio[:WORD_CROP_SAMPLES], (0, max(0, WORD_CROP_SAMPLES - len(audio))))
            label = 0
        else:
            label = syllable_label(fields["syl"], self.labels)
        return DeBoerItem(torch.from_numpy(audio).unsqueeze(0), path.name, label, fields["word"])

    def class_names(self) -> tuple[str, ...]:
        return SYLLABLES if self.labels == "syllables" else VOWELS
