"""Datasets for corpora in LibriSpeech layout: real train-clean-100 with the CPC/GIM split and phone
labels (see :mod:`training.data.download`), or a synthetic corpus (see :mod:`training.data.synth`).

Differences from the reference (SIM/GIM ``LibriDataset``), all deliberate:

* crops are reproducible: the offset of item ``i`` in epoch ``e`` comes from
  ``numpy.random.default_rng((seed, e, i))``, independent of worker count and order (the reference uses
  the unseeded global numpy RNG). Offsets are still 160-aligned and drawn from ``{160, 320, ...} <
  max_len - crop`` as in the reference; utterances too short for that fall back to offset 0, and ones
  shorter than the crop are zero-padded at the end (the reference crashes on both);
* audio is float32 in [-1, 1] (SIM's scale; GIM's int32 mean/std normalisation is not applied);
* full utterances are trimmed to a multiple of 160 samples (the reference meant to, but sliced channels);
* speaker indices come from an explicit map that can be saved and reloaded (the reference rebuilds it).
"""

from __future__ import annotations

import json
import math
import random
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torchaudio
from torch.utils.data import DataLoader, Dataset

from smooth_infomax.analysis.probes import align_labels
from smooth_infomax.audio import HOP_SAMPLES, SAMPLE_RATE
from training.data.audio_io import AudioFileError, audio_info, read_audio

__all__ = ["AUDIO_EXTENSIONS", "CROP_SAMPLES", "CorpusPaths", "clear_previous_build", "CropDataset", "CropItem",
           "UtteranceDataset", "UtteranceItem", "align_labels", "build_speaker_map", "crop_offset",
           "load_speaker_map", "make_loader", "read_phone_labels", "read_split", "save_speaker_map",
           "seed_worker", "speaker_of", "utterance_path"]

CROP_SAMPLES = 20480
"""GIM/SIM training crop: 1.28 s, 128 frames."""
AUDIO_EXTENSIONS = (".flac", ".wav")
_UTTERANCE_ID = re.compile(r"^\d+-\d+-\d+$")


@dataclass(frozen=True)
class CorpusPaths:
    """Where a LibriSpeech-layout corpus keeps its audio, split files and labels."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def audio_dir(self) -> Path:
        return self.root / "LibriSpeech" / "train-clean-100"

    @property
    def labels_dir(self) -> Path:
        return self.root / "LibriSpeech100_labels_split"

    def split(self, name: str) -> Path:
        """``train_split``, ``test_split``, ``train_val_train`` or ``train_val_val``."""
        return self.labels_dir / f"{name}.txt"

    @property
    def phone_labels(self) -> Path:
        return self.labels_dir / "converted_aligned_phones.txt"

    @property
    def phone_table(self) -> Path:
        """Synthetic corpora only; the CPC label file's class order is unpublished."""
        return self.root / "phones.txt"


def clear_previous_build(out: Path, generated: Sequence[str], force: bool, what: str) -> None:
    """Refuse to write over an earlier build in ``out`` (the ``generated`` names) unless ``force``; with ``force``
    remove what it wrote, and nothing else."""
    existing = [name for name in generated if (out / name).exists()]
    if existing and not force:
        raise FileExistsError(f"{out} already holds {what} ({', '.join(existing)}); use --force to replace it")
    for name in existing:
        path = out / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()


def read_split(path: str | Path) -> list[str]:
    """Utterance ids (``spk-chapter-utt``) of a split file, in file order."""
    ids = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if line and not _UTTERANCE_ID.match(line):
            raise ValueError(f"{path}:{number}: not an utterance id 'speaker-chapter-utterance': {line!r}")
        if line:
            ids.append(line)
    return ids


def read_phone_labels(path: str | Path, utterance_ids: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``{utterance_id: labels (n_labels,) int64}`` from ``converted_aligned_phones.txt``."""
    wanted = set(utterance_ids) if utterance_ids is not None else None
    labels = {}
    with open(path) as lines:
        for number, line in enumerate(lines, 1):
            utt_id, _, rest = line.strip().partition(" ")
            if not utt_id or (wanted is not None and utt_id not in wanted):
                continue
            try:
                labels[utt_id] = np.array(rest.split(), dtype=np.int64)
            except ValueError as error:
                raise ValueError(f"{path}:{number}: bad label line for {utt_id}: {error}") from error
    return labels


def speaker_of(utterance_id: str) -> str:
    return utterance_id.split("-", 1)[0]


def _checked_speaker_map(utterance_ids: list[str], speaker_map: dict[str, int] | None) -> dict[str, int]:
    if speaker_map is None:
        return build_speaker_map(utterance_ids)
    unknown = sorted({speaker_of(u) for u in utterance_ids} - set(speaker_map))
    if unknown:
        raise ValueError(f"speakers missing from the speaker map: {', '.join(unknown[:5])}")
    return speaker_map


def build_speaker_map(*utterance_id_lists: Sequence[str]) -> dict[str, int]:
    """Speaker id -> index in order of first appearance (pass train ids first, as the reference does)."""
    mapping: dict[str, int] = {}
    for ids in utterance_id_lists:
        for utt_id in ids:
            mapping.setdefault(speaker_of(utt_id), len(mapping))
    return mapping


def save_speaker_map(mapping: dict[str, int], path: str | Path) -> None:
    """Write ``{"speakers": [speaker ids in index order]}`` as JSON."""
    order = sorted(mapping, key=mapping.__getitem__)
    if [mapping[s] for s in order] != list(range(len(order))):
        raise ValueError("speaker indices must be 0..n-1")
    Path(path).write_text(json.dumps({"speakers": order}, indent=1) + "\n")


def load_speaker_map(path: str | Path) -> dict[str, int]:
    """Read a map written by :func:`save_speaker_map`."""
    return {speaker: index for index, speaker in enumerate(json.loads(Path(path).read_text())["speakers"])}


def utterance_path(audio_dir: str | Path, utterance_id: str) -> Path:
    """``audio_dir/<spk>/<chapter>/<id>.flac`` (or ``.wav``); raises :class:`AudioFileError` if absent."""
    speaker, chapter, _ = utterance_id.split("-")
    stem = Path(audio_dir) / speaker / chapter / utterance_id
    for extension in AUDIO_EXTENSIONS:
        if stem.with_suffix(extension).is_file():
            return stem.with_suffix(extension)
    raise AudioFileError(stem.with_suffix(AUDIO_EXTENSIONS[0]), "file not found (also tried .wav)")


def crop_offset(n_samples: int, crop_samples: int, rng: np.random.Generator) -> int:
    """A 160-aligned offset from ``{160, 320, ...} < n_samples // 160 * 160 - crop_samples``, or 0."""
    max_len = n_samples // HOP_SAMPLES * HOP_SAMPLES
    candidates = np.arange(HOP_SAMPLES, max_len - crop_samples, HOP_SAMPLES)
    return int(candidates[rng.integers(len(candidates))]) if len(candidates) else 0


class CropItem(NamedTuple):
    audio: torch.Tensor  # (1, crop_samples) float32
    utterance_id: str
    speaker: int
    offset_samples: int


class CropDataset(Dataset):
    """Random 20480-sample crops at 160-aligned offsets, reproducible from ``(seed, epoch, index)``.

    Items are :class:`CropItem`; a DataLoader batch has ``audio`` of shape ``(batch, 1, crop_samples)``.
    Call :meth:`set_epoch` before each epoch (not with ``persistent_workers=True``: workers keep the
    epoch they were started with).

    ``speeds`` perturbs the speed of each crop as Kaldi's recipes do (tempo and pitch together): a crop draws one
    factor ``f`` (from its own generator, so ``(1.0,)`` gives the crops of an unperturbed dataset), reads
    ``ceil(f * crop_samples)`` samples and resamples them to ``crop_samples``, so it plays ``f`` times faster.
    """

    def __init__(self, audio_dir: str | Path, utterance_ids: Sequence[str],
                 speaker_map: dict[str, int] | None = None, crop_samples: int = CROP_SAMPLES, seed: int = 0,
                 preload: bool = False, speeds: Sequence[float] = (1.0,)):
        if not speeds or any(not 0.5 <= f <= 2.0 or abs(f * 100 - round(f * 100)) > 1e-9 for f in speeds):
            raise ValueError(f"speeds must be factors in [0.5, 2] with at most 2 decimals, got {list(speeds)}")
        self.audio_dir, self.utterance_ids = Path(audio_dir), list(utterance_ids)
        self.speaker_map = _checked_speaker_map(self.utterance_ids, speaker_map)
        self.crop_samples, self.seed, self.epoch, self.speeds = crop_samples, seed, 0, tuple(speeds)
        self._audio = [self._read(i) for i in range(len(self))] if preload else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.utterance_ids)

    def _read(self, index: int, start: int = 0, stop: int | None = None) -> np.ndarray:
        return read_audio(utterance_path(self.audio_dir, self.utterance_ids[index]), start=start, stop=stop)

    def __getitem__(self, index: int) -> CropItem:
        utt_id = self.utterance_ids[index]
        rng = np.random.default_rng((self.seed, self.epoch, index))
        speed = self.speeds[np.random.default_rng((self.seed, self.epoch, index, 1)).integers(len(self.speeds))]
        offset, crop = self._crop(index, math.ceil(speed * self.crop_samples), rng)
        if speed != 1.0:
            resampled = torchaudio.functional.resample(torch.from_numpy(crop), round(speed * SAMPLE_RATE),
                                                       SAMPLE_RATE)
            crop = resampled.numpy()[:self.crop_samples]
        if len(crop) < self.crop_samples:
            crop = np.pad(crop, (0, self.crop_samples - len(crop)))
        return CropItem(torch.from_numpy(crop).unsqueeze(0), utt_id, self.speaker_map[speaker_of(utt_id)], offset)

    def _crop(self, index: int, samples: int, rng: np.random.Generator) -> tuple[int, np.ndarray]:
        """A random 160-aligned ``(offset, audio[offset:offset + samples])`` of utterance ``index``."""
        if self._audio is not None:
            audio = self._audio[index]
        else:
            path = utterance_path(self.audio_dir, self.utterance_ids[index])
            n_frames, rate = audio_info(path)
            if rate == SAMPLE_RATE:
                offset = crop_offset(n_frames, samples, rng)
                return offset, read_audio(path, start=offset, stop=offset + samples)
            audio = read_audio(path)
        offset = crop_offset(len(audio), samples, rng)
        return offset, audio[offset:offset + samples]


class UtteranceItem(NamedTuple):
    audio: torch.Tensor  # (1, samples) float32, samples a multiple of 160
    utterance_id: str
    speaker: int
    labels: torch.Tensor  # (n_labels,) int64; empty when the dataset has no labels


class UtteranceDataset(Dataset):
    """Whole utterances (for probes; use batch size 1) with frame phone labels.

    ``labels`` maps utterance id to labels (:func:`read_phone_labels`); match them to encoder frames
    with :func:`align_labels`.
    """

    def __init__(self, audio_dir: str | Path, utterance_ids: Sequence[str],
                 labels: dict[str, np.ndarray] | None = None, speaker_map: dict[str, int] | None = None):
        self.audio_dir, self.utterance_ids, self.labels = Path(audio_dir), list(utterance_ids), labels
        self.speaker_map = _checked_speaker_map(self.utterance_ids, speaker_map)
        if labels is not None:
            missing = [u for u in self.utterance_ids if u not in labels]
            if missing:
                raise ValueError(f"{len(missing)} utterances have no phone labels, e.g. {missing[0]}")

    def __len__(self) -> int:
        return len(self.utterance_ids)

    def __getitem__(self, index: int) -> UtteranceItem:
        utt_id = self.utterance_ids[index]
        audio = read_audio(utterance_path(self.audio_dir, utt_id))
        audio = audio[: len(audio) // HOP_SAMPLES * HOP_SAMPLES]
        labels = self.labels[utt_id] if self.labels is not None else np.zeros(0, dtype=np.int64)
        return UtteranceItem(torch.from_numpy(audio).unsqueeze(0), utt_id, self.speaker_map[speaker_of(utt_id)],
                             torch.from_numpy(labels))


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy and ``random`` from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0, num_workers: int = 0,
                drop_last: bool = True) -> DataLoader:
    """A DataLoader whose order and worker seeds follow ``seed`` (train: shuffle; test: no shuffle)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=num_workers,
                      drop_last=drop_last, worker_init_fn=seed_worker,
                      generator=torch.Generator().manual_seed(seed))
