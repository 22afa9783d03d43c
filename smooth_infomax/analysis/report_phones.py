"""The report's phone-class probe: a linear probe on 10 ms frames of each module, for corpora with frame-level phone
labels (``converted_aligned_phones.txt``, see :mod:`.corpus`), and the dimension each probe weighs most.

Clips are crops of the labelled utterances only (a corpus may label a few of them, as ``data/real_eval`` labels its
English voice); a crop's labels are those of its 10 ms bins, starting at its offset in the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from .corpus import Clips, Corpus, load_clips
from .features import LABEL_HOP_SAMPLES, EncoderFeatures, module_feature_names
from .probes import LabelledFeatures, ProbeConfig, align_labels, collect_frame_features, evaluate_probe, fit_probe


@dataclass(frozen=True)
class PhoneClips:
    """Crops of labelled utterances and their frame labels ``(crop_samples // 160,)`` each (fewer where the file
    ends inside the crop)."""

    clips: Clips
    labels: list[torch.Tensor]


@dataclass(frozen=True)
class TopDimension:
    """The dimension a probe weighs most (largest ``|weight|`` in standardised units) and the class it serves."""

    probe: str
    label: str
    dim: int
    weight: float


class _Labelled(Corpus):
    """The items of ``corpus`` that have phone labels."""

    def __init__(self, corpus: Corpus, keep: dict[str, list[int]]):
        self.corpus, self.keep, self.kind = corpus, keep, corpus.kind

    def items(self, split: str) -> list[str]:
        return [item for item in self.corpus.items(split) if item in self.keep]

    def label(self, item: str) -> str:
        return self.corpus.label(item)

    def path(self, item: str) -> Path:
        return self.corpus.path(item)


def load_phone_clips(corpus: Corpus, split: str, n_files: int, crop_samples: int, seed: int) -> PhoneClips | None:
    """``n_files`` crops of the labelled utterances of ``split`` with their labels; ``None`` when there are none."""
    phones = corpus.phone_labels()
    labelled = _Labelled(corpus, phones)
    if not phones or not labelled.items(split):
        return None
    clips = load_clips(labelled, split, n_files, crop_samples, seed)
    bins = crop_samples // LABEL_HOP_SAMPLES
    labels = [torch.tensor(phones[name][offset // LABEL_HOP_SAMPLES:][:bins], dtype=torch.long)
              for name, offset in zip(clips.names, clips.offsets, strict=True)]
    return PhoneClips(clips, labels)


def phone_features(encoder, data: PhoneClips, modules: list[int]) -> dict[int, LabelledFeatures]:
    """Per module, features at the 10 ms label rate of every labelled frame of ``data`` with its phone class."""
    source = EncoderFeatures(encoder, modules)
    pairs = zip(list(data.clips.audio), data.labels, strict=True)
    out = collect_frame_features(source, pairs, align=partial(align_labels, anchor="start"), dtype=torch.float32)
    names = module_feature_names(encoder)
    return {m: out[names[m]] for m in modules}


def phone_probe(fit: LabelledFeatures, test: LabelledFeatures, epochs: int, seed: int
                ) -> tuple[torch.Tensor, list[int], float]:
    """A linear probe (with bias) on standardised frames: its weight ``(classes, dim)`` in standardised units, the
    phone class index of each row, and its accuracy on the test frames whose class occurs in ``fit``."""
    classes = sorted(set(fit.labels.tolist()))
    code = torch.full((max(classes + test.labels.tolist()) + 1,), -1, dtype=torch.long)
    code[classes] = torch.arange(len(classes))
    config = ProbeConfig(learning_rate=1e-3, epochs=epochs, batch_size=256, clip_grad_norm=1.0, standardize=True,
                         seed=seed)
    probe, _ = fit_probe(LabelledFeatures(fit.features, code[fit.labels]), len(classes), config)
    known = code[test.labels] >= 0
    accuracy = evaluate_probe(probe, LabelledFeatures(test.features[known], code[test.labels[known]]))
    return probe.linear.weight.detach().clone(), classes, accuracy.value


def top_dimension(probe: str, weight: torch.Tensor, labels: list[str]) -> TopDimension:
    """The entry of ``weight (classes, dim)`` (standardised units) with the largest absolute value: its dimension and
    the class (``labels[row]``) it belongs to."""
    flat = int(weight.abs().argmax())
    row, dim = divmod(flat, weight.shape[1])
    return TopDimension(probe, labels[row], dim, float(weight[row, dim]))
