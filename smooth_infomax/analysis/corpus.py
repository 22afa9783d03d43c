"""Labelled clips for the analyses, from a corpus in LibriSpeech layout or a de Boer syllable folder.

This is a small reader of corpus layouts (the training tree's loaders are not part of the installed package); audio
is read with the package's one loader, :func:`smooth_infomax.audio.load_audio`:

* **LibriSpeech layout** (real train-clean-100 or ``python -m training.data.synth``): ``ROOT/LibriSpeech/
  train-clean-100/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` (or ``.wav``) and split files
  ``ROOT/LibriSpeech100_labels_split/{train_split,test_split}.txt``; the label of an utterance is its speaker.
  Optional: frame-level phone labels ``LibriSpeech100_labels_split/converted_aligned_phones.txt`` (one class index
  per 160 samples, ``<id> <class> <class> ...``), their names ``ROOT/phones.txt`` (``<index> <phone> ...``) and a
  table ``ROOT/utterances.tsv`` (an ``id`` column; transcript, voice, licence ...).
* **de Boer** (the Artificial Speech Dataset): ``.wav`` files named ``<word>_<take>_<pos>_<syl>.wav`` in
  ``ROOT/train`` and ``ROOT/test`` (or all in ``ROOT``, used for both); the label is the syllable.

Clips are mono float32 at 16 kHz (other rates are resampled), cropped or zero-padded to one length.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from ..audio import load_audio

_UTTERANCE = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_SYLLABLE_FILE = re.compile(r"^(?:[bdg][aiu]){3}_\d+_[123]_(?P<syl>[bdg][aiu])\.wav$")


@dataclass(frozen=True)
class Clips:
    """Equal-length clips: ``audio (n, samples)`` float32 at 16 kHz, with ``labels`` and ``names`` (``n`` each) and
    the sample in its file where each clip starts (``offsets``, a multiple of 160; empty when unknown)."""

    audio: torch.Tensor
    labels: list[str]
    names: list[str]
    offsets: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)


class Corpus:
    """Items of a corpus by split (``"train"`` / ``"test"``), their labels and audio."""

    kind = "corpus"

    def items(self, split: str) -> list[str]:
        raise NotImplementedError

    def label(self, item: str) -> str:
        raise NotImplementedError

    def path(self, item: str) -> Path:
        raise NotImplementedError

    def phone_labels(self) -> dict[str, list[int]]:
        """Frame-level phone class indices by item, one per 160 samples (empty: the corpus has none)."""
        return {}

    def phone_names(self) -> dict[int, str]:
        """Names of the phone class indices (empty when unknown)."""
        return {}

    def describe(self, item: str) -> dict[str, str]:
        """What the corpus records about ``item`` besides its audio (e.g. transcript, voice, licence)."""
        return {}


class LibriLayout(Corpus):
    """A LibriSpeech-layout corpus (see the module docstring); labels are speaker ids."""

    kind = "librispeech"

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.audio_dir = self.root / "LibriSpeech" / "train-clean-100"
        self.labels_dir = self.root / "LibriSpeech100_labels_split"

    def items(self, split: str) -> list[str]:
        name = {"train": "train_split", "test": "test_split"}.get(split, split)
        path = self.labels_dir / f"{name}.txt"
        ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        bad = [i for i in ids if not _UTTERANCE.match(i)]
        if bad:
            raise ValueError(f"{path}: not utterance ids: {bad[:3]}")
        return ids

    def label(self, item: str) -> str:
        return item.split("-", 1)[0]

    def path(self, item: str) -> Path:
        speaker, chapter, _ = item.split("-")
        stem = self.audio_dir / speaker / chapter / item
        for suffix in (".flac", ".wav"):
            if stem.with_suffix(suffix).is_file():
                return stem.with_suffix(suffix)
        raise FileNotFoundError(f"{stem}.flac: no such file (also tried .wav)")

    @cached_property
    def _phones(self) -> dict[str, list[int]]:
        path = self.labels_dir / "converted_aligned_phones.txt"
        if not path.is_file():
            return {}
        rows = (line.split() for line in path.read_text().splitlines())
        return {row[0]: [int(v) for v in row[1:]] for row in rows if row}

    def phone_labels(self) -> dict[str, list[int]]:
        return self._phones

    def phone_names(self) -> dict[int, str]:
        path = self.root / "phones.txt"
        if not path.is_file():
            return {}
        rows = (line.split() for line in path.read_text().splitlines())
        return {int(row[0]): row[1] for row in rows if len(row) >= 2 and row[0].isdigit()}

    @cached_property
    def _table(self) -> dict[str, dict[str, str]]:
        path = self.root / "utterances.tsv"
        if not path.is_file():
            return {}
        with path.open(newline="", encoding="utf-8") as handle:
            return {row["id"]: row for row in csv.DictReader(handle, delimiter="\t") if row.get("id")}

    def describe(self, item: str) -> dict[str, str]:
        return {k: v for k, v in self._table.get(item, {}).items() if k != "id" and v}


class DeBoerSyllables(Corpus):
    """A folder of de Boer syllable files; labels are syllables (``"ba"`` ...) or vowels (``"a"``, ``"i"``,
    ``"u"``)."""

    kind = "deboer"

    def __init__(self, root: str | Path, labels: str = "syllables"):
        if labels not in ("syllables", "vowels"):
            raise ValueError(f"labels must be 'syllables' or 'vowels', not {labels!r}")
        self.root, self.labels = Path(root), labels

    def items(self, split: str) -> list[str]:
        folder = self.root / split if (self.root / split).is_dir() else self.root
        names = sorted(str(p.relative_to(self.root)) for p in folder.glob("*.wav") if _SYLLABLE_FILE.match(p.name))
        if not names:
            raise FileNotFoundError(f"{folder}: no de Boer syllable files (<word>_<take>_<pos>_<syl>.wav)")
        return names

    def label(self, item: str) -> str:
        match = _SYLLABLE_FILE.match(Path(item).name)
        if match is None:
            raise ValueError(f"{item}: not a de Boer syllable file name (<word>_<take>_<pos>_<syl>.wav)")
        syllable = match["syl"]
        return syllable if self.labels == "syllables" else syllable[1]

    def path(self, item: str) -> Path:
        return self.root / item


def open_corpus(root: str | Path, labels: str = "syllables") -> Corpus:
    """The corpus at ``root``: LibriSpeech layout if it has ``LibriSpeech100_labels_split``, else de Boer."""
    root = Path(root)
    if (root / "LibriSpeech100_labels_split").is_dir():
        return LibriLayout(root)
    if root.is_dir():
        return DeBoerSyllables(root, labels)
    raise FileNotFoundError(f"{root}: no such directory")


def balanced_selection(items: list[str], labels: list[str], n: int, seed: int = 0) -> list[int]:
    """Indices of ``n`` items spread over labels round-robin (each label's items in a seeded random order)."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        by_label.setdefault(label, []).append(index)
    queues = [list(rng.permutation(indices)) for _, indices in sorted(by_label.items())]
    chosen: list[int] = []
    while len(chosen) < min(n, len(items)):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(int(queue.pop(0)))
    return chosen


def load_clips(corpus: Corpus, split: str, n_files: int, crop_samples: int, seed: int = 0) -> Clips:
    """``n_files`` clips of ``split`` balanced over labels, each one crop of ``crop_samples`` samples.

    Crops start at a seeded random offset (a multiple of 160 samples) inside each file; shorter files are
    zero-padded at the end.
    """
    items = corpus.items(split)
    labels = [corpus.label(i) for i in items]
    chosen = balanced_selection(items, labels, n_files, seed)
    rng = np.random.default_rng((seed, 1))
    audio = torch.zeros(len(chosen), crop_samples)
    offsets = []
    for row, index in enumerate(chosen):
        wave = load_audio(corpus.path(items[index]))
        slack = (len(wave) - crop_samples) // 160
        offsets.append(160 * int(rng.integers(slack + 1)) if slack > 0 else 0)
        piece = wave[offsets[-1]:offsets[-1] + crop_samples]
        audio[row, :len(piece)] = piece
    return Clips(audio, [labels[i] for i in chosen], [items[i] for i in chosen], offsets)
