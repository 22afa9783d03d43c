"""Linear probes on frozen features: one training loop and one evaluation for every task.

* **Phones** (frame level): features of a module or the GRU at the 10 ms label rate ``(frames, dim)``,
  labels aligned as the reference does (``output[-T:]``), ``Linear(dim, 41)`` with bias, Adam lr 1e-4,
  gradient clipping 1.0 (:data:`PHONE_PROBE`).
* **Speakers** (time-pooled): the mean over the valid frames of a crop ``(crops, dim)``, ``Linear(dim,
  n_speakers)``, Adam lr 1e-3 (:data:`SPEAKER_PROBE`). The interpretability analysis uses the same probe
  without bias (``replace(SPEAKER_PROBE, bias=False)``) and reads ``probe.raw_weight()``.
* **Syllables / vowels** (de Boer, time-pooled): Adam lr 1e-3, batch 64, no clipping (:data:`SYLLABLE_PROBE`).

Features are extracted once (:func:`collect_frame_features`, :func:`collect_pooled_features`) and kept in
memory (float16 by default); probes then train on mini-batches of the cached rows. Accuracy is counted over
every test item (no ``drop_last``, no mean of per-batch means).

Example:
    >>> source = EncoderFeatures(SmoothInfoMaxEncoder.from_pretrained("model/"))
    >>> train = collect_frame_features(source, train_utterances)      # {"module 0": LabelledFeatures, ...}
    >>> test = collect_frame_features(source, test_utterances)
    >>> result = run_probe(train["GRU"], test["GRU"], 41, PHONE_PROBE)
    >>> result.test_accuracy.value
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .features import FeatureSource

Aligner = Callable[[torch.Tensor, int], tuple[slice, torch.Tensor]]


# --- settings ------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeConfig:
    """How a linear probe is trained.

    ``batch_size`` counts rows (frames for phones, crops or clips for pooled tasks); the last, smaller batch
    of an epoch is used too. ``clip_grad_norm`` ``None`` means no clipping. ``standardize``: subtract the
    train-split mean and divide by its standard deviation per dimension before the linear layer (fixed,
    folded back by :meth:`LinearProbe.raw_weight`). ``seed`` fixes the initialisation and the batch order.
    """

    learning_rate: float = 1e-3
    epochs: int = 20
    batch_size: int = 64
    clip_grad_norm: float | None = 1.0
    bias: bool = True
    standardize: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.epochs < 0 or self.batch_size < 1:
            raise ValueError(f"bad probe settings: {self}")


PHONE_PROBE = ProbeConfig(learning_rate=1e-4, epochs=20, batch_size=1024, clip_grad_norm=1.0)
"""The paper's phone probe: Adam lr 1e-4, gradient clipping 1.0, 20 epochs (GIM's; SIM's README says 10); the
reference's batch is one utterance (about 1000 frames). On small corpora this is far from converged: the evaluation
script raises the learning rate (see ``docs/evaluation.md``)."""
SPEAKER_PROBE = ProbeConfig(learning_rate=1e-3, epochs=50, batch_size=64, clip_grad_norm=1.0)
"""The speaker probe (Adam lr 1e-3, batch 64, 50 epochs as the config; the README clips at 1.0)."""
SYLLABLE_PROBE = ProbeConfig(learning_rate=1e-3, epochs=50, batch_size=64, clip_grad_norm=None)
"""The de Boer syllable / vowel probe (Adam lr 1e-3, batch 64, 50 epochs, no clipping)."""


# --- data ---------------------------------------------------------------------------------------------------------

@dataclass
class LabelledFeatures:
    """Rows of features with one class label each: ``features (n, dim)`` (any float dtype), ``labels (n,)`` int64,
    and optionally ``groups (n,)`` int64: the item (utterance) each row came from, numbered from 0, so that
    accuracies can be resampled by item (:func:`paired_bootstrap`)."""

    features: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if self.features.ndim != 2 or self.labels.ndim != 1 or len(self.features) != len(self.labels):
            raise ValueError(f"need features (n, dim) and labels (n,), got {tuple(self.features.shape)} "
                             f"and {tuple(self.labels.shape)}")
        if self.groups is not None and self.groups.shape != self.labels.shape:
            raise ValueError(f"groups {tuple(self.groups.shape)} must match labels {tuple(self.labels.shape)}")
        self.labels = self.labels.long()

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def dim(self) -> int:
        return self.features.shape[1]

    @classmethod
    def concat(cls, features: Sequence[torch.Tensor], labels: Sequence[torch.Tensor],
               dtype: torch.dtype = torch.float16) -> LabelledFeatures:
        """Join per-item ``(n_i, dim)`` features and ``(n_i,)`` labels into one ``(sum n_i, dim)`` set; row
        ``groups`` number the items."""
        if not features:
            raise ValueError("no features to join")
        out = torch.empty(sum(len(f) for f in features), features[0].shape[-1], dtype=dtype)
        start = 0
        for part in features:
            out[start:start + len(part)] = part
            start += len(part)
        groups = torch.cat([torch.full((len(part),), item) for item, part in enumerate(features)])
        return cls(out, torch.cat([torch.as_tensor(y).long().reshape(-1) for y in labels]), groups)


def align_labels(labels, n_frames: int, anchor: str = "end"):
    """Pair ``n_frames`` encoder frames with ``labels``: returns ``(frame_slice, labels)`` of equal length.

    ``anchor="end"`` is the reference's ``output[-len(labels):]`` (the CPC label file has 1-3 labels fewer
    than frames); ``"start"`` pairs the first frames instead. Surplus labels are dropped at the other end.
    Synthetic corpora have exactly ``n_samples // 160`` labels, so both anchors agree there.
    """
    n = min(len(labels), n_frames)
    if anchor == "end":
        return slice(n_frames - n, n_frames), labels[len(labels) - n:]
    if anchor == "start":
        return slice(0, n), labels[:n]
    raise ValueError(f"anchor must be 'end' or 'start', not {anchor!r}")


def _batches(items: Iterable, max_samples: int):
    """Group ``(waveform, *rest)`` items so that ``count * longest`` stays within ``max_samples``."""
    group: list = []
    longest = 0
    for item in items:
        n = item[0].numel()
        if group and max(longest, n) * (len(group) + 1) > max_samples:
            yield group
            group, longest = [], 0
        group.append(item)
        longest = max(longest, n)
    if group:
        yield group


def collect_frame_features(source: FeatureSource, utterances: Iterable[tuple[torch.Tensor, torch.Tensor]],
                           align: Aligner = align_labels, dtype: torch.dtype = torch.float16,
                           batch_samples: int = 16000 * 60, progress: Callable[[int], None] | None = None,
                           ) -> dict[str, LabelledFeatures]:
    """Frame features and phone labels of whole utterances, for every feature set of ``source``.

    Args:
        source: an :class:`~smooth_infomax.analysis.features.EncoderFeatures` or ``MfccFeatures``.
        utterances: ``(waveform (samples,), labels (n_labels,))`` pairs; waveforms at 16 kHz.
        align: pairs ``labels`` with the ``samples // 160`` frames, returning ``(frame_slice, labels)``
            (default: :func:`align_labels` with ``anchor="end"``, the reference's ``output[-T:]``).
        dtype: storage dtype of the cached features.
        batch_samples: utterances are run through the encoder in padded batches of at most this many samples.
        progress: called with the number of utterances done after each batch.

    Returns:
        ``{feature name: LabelledFeatures((frames, dim), (frames,))}`` over all aligned frames, in order.
    """
    parts: dict[str, list[torch.Tensor]] = {name: [] for name in source.feature_names}
    targets: list[torch.Tensor] = []
    for group in _batches(utterances, batch_samples):
        outputs = source.frames([waveform for waveform, _ in group])
        for (_, labels), output in zip(group, outputs, strict=True):
            n_frames = next(iter(output.values())).shape[0]
            frames, aligned = align(torch.as_tensor(labels), n_frames)
            targets.append(torch.as_tensor(aligned).long())
            for name, features in output.items():
                parts[name].append(features[frames].to(dtype))
        if progress:
            progress(len(group))
    result = {}
    for name in list(parts):
        result[name] = LabelledFeatures.concat(parts.pop(name), targets, dtype)
    return result


def collect_pooled_features(source: FeatureSource,
                            clips: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                            dtype: torch.dtype = torch.float32, progress: Callable[[int], None] | None = None,
                            ) -> dict[str, LabelledFeatures]:
    """Time-pooled features of clips (speaker crops, de Boer syllables), for every pooled feature set.

    Args:
        clips: batches ``(audio (batch, samples), lengths (batch,), labels (batch,))``.

    Returns:
        ``{feature name: LabelledFeatures((clips, dim), (clips,))}``.
    """
    parts: dict[str, list[torch.Tensor]] = {}
    targets = []
    for audio, lengths, labels in clips:
        for name, pooled in source.pooled(audio.reshape(audio.shape[0], -1), lengths).items():
            parts.setdefault(name, []).append(pooled.to(dtype))
        targets.append(torch.as_tensor(labels).long().reshape(-1))
        if progress:
            progress(len(targets[-1]))
    joined = {name: LabelledFeatures.concat(chunks, targets, dtype) for name, chunks in parts.items()}
    for features in joined.values():
        features.groups = None  # the parts are batches, not items
    return joined


def feature_statistics(features: torch.Tensor, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation ``(dim,)``, ``(dim,)`` of ``(n, dim)`` features (float64
    accumulation; a constant dimension gets std 1)."""
    total = torch.zeros(features.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for start in range(0, len(features), chunk):
        block = features[start:start + chunk].double().cpu()
        total += block.sum(0)
        squares += (block * block).sum(0)
    n = max(len(features), 1)
    mean = total / n
    std = (squares / n - mean * mean).clamp_min(0).sqrt()
    std[std < 1e-8] = 1.0
    return mean.float(), std.float()


# --- the probe ----------------------------------------------------------------------------------------------------

class LinearProbe(nn.Module):
    """``Linear(dim, n_classes, bias)`` with a Xavier-normal weight and zero bias (as the reference), optionally
    after a fixed standardisation ``(x - shift) / scale``.

    ``forward``: ``(n, dim)`` -> logits ``(n, n_classes)``.
    """

    shift: torch.Tensor
    scale: torch.Tensor

    def __init__(self, dim: int, n_classes: int, bias: bool = True, shift: torch.Tensor | None = None,
                 scale: torch.Tensor | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.linear = nn.Linear(dim, n_classes, bias=bias)
        nn.init.xavier_normal_(self.linear.weight, generator=generator)
        if bias:
            nn.init.zeros_(self.linear.bias)
        self.register_buffer("shift", torch.zeros(dim) if shift is None else shift.float().clone())
        self.register_buffer("scale", torch.ones(dim) if scale is None else scale.float().clone())

    @property
    def dim(self) -> int:
        return self.linear.in_features

    @property
    def n_classes(self) -> int:
        return self.linear.out_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear((features.to(self.shift.dtype) - self.shift) / self.scale)

    def raw_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The same map on unstandardised features: ``W (n_classes, dim)`` and ``b (n_classes,)`` (``None`` without
        bias and standardisation) with ``logits = x @ W.T + b``. Equals ``linear.weight`` without standardisation."""
        with torch.no_grad():
            weight = self.linear.weight / self.scale
            bias = self.linear.bias.clone() if self.linear.bias is not None else None
            if bool(self.shift.any()):
                offset = -(weight @ self.shift)
                bias = offset if bias is None else bias + offset
        return weight.detach().clone(), bias


@dataclass(frozen=True)
class Accuracy:
    """``correct`` of ``total`` items; ``value`` is the fraction (0 when there are no items)."""

    correct: int
    total: int

    @property
    def value(self) -> float:
        return self.correct / self.total if self.total else 0.0

    def as_dict(self) -> dict:
        return {"accuracy": self.value, "correct": self.correct, "total": self.total}


@dataclass
class ProbeResult:
    """A trained probe with its train and test accuracy, mean loss per epoch and training time."""

    probe: LinearProbe
    config: ProbeConfig
    train_accuracy: Accuracy
    test_accuracy: Accuracy
    epoch_losses: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    test_per_group: tuple[list[int], list[int]] | None = None  # (correct, total) per test item, with groups

    def as_dict(self) -> dict:
        test = self.test_accuracy.as_dict()
        if self.test_per_group is not None:
            test["per_item"] = {"correct": self.test_per_group[0], "total": self.test_per_group[1]}
        return {"test": test, "train": self.train_accuracy.as_dict(),
                "dim": self.probe.dim, "n_classes": self.probe.n_classes, "config": asdict(self.config),
                "epoch_losses": [round(x, 6) for x in self.epoch_losses], "train_seconds": round(self.train_seconds, 3)}


def fit_probe(train: LabelledFeatures, n_classes: int, config: ProbeConfig,
              device: torch.device | str | None = None) -> tuple[LinearProbe, list[float]]:
    """Train a :class:`LinearProbe` on ``train`` (features ``(n, dim)``, labels ``(n,)`` < ``n_classes``) with
    Adam, cross entropy and optional gradient clipping; returns the probe (on the CPU, eval mode) and the mean
    training loss of each epoch."""
    if len(train) == 0:
        raise ValueError("no training items")
    if int(train.labels.max()) >= n_classes or int(train.labels.min()) < 0:
        raise ValueError(f"labels must lie in [0, {n_classes})")
    device = torch.device(device) if device is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(config.seed)
    shift, scale = feature_statistics(train.features) if config.standardize else (None, None)
    probe = LinearProbe(train.dim, n_classes, config.bias, shift, scale, generator).to(device)
    optimiser = torch.optim.Adam(probe.parameters(), lr=config.learning_rate)
    losses = []
    with torch.enable_grad():
        probe.train()
        for _ in range(config.epochs):
            order = torch.randperm(len(train), generator=generator)
            total = 0.0
            for start in range(0, len(order), config.batch_size):
                rows = order[start:start + config.batch_size]
                x = train.features[rows].to(device, torch.float32)
                y = train.labels[rows].to(device)
                loss = F.cross_entropy(probe(x), y)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if config.clip_grad_norm is not None:
                    nn.utils.clip_grad_norm_(probe.parameters(), config.clip_grad_norm)
                optimiser.step()
                total += float(loss.detach()) * len(rows)
            losses.append(total / len(order))
    return probe.cpu().eval(), losses


def predict(probe: LinearProbe, features: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Predicted class ``(n,)`` for features ``(n, dim)``, in chunks of ``chunk`` rows."""
    device = probe.shift.device
    with torch.no_grad():
        parts = [probe(features[start:start + chunk].to(device, torch.float32)).argmax(-1).cpu()
                 for start in range(0, len(features), chunk)]
    return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.long)


def accuracy(predictions: torch.Tensor, labels: torch.Tensor) -> Accuracy:
    """Correct predictions over **all** items (not a mean of per-batch accuracies)."""
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} differ")
    return Accuracy(int((predictions == labels).sum()), int(labels.numel()))


def evaluate_probe(probe: LinearProbe, data: LabelledFeatures) -> Accuracy:
    """Accuracy of ``probe`` over every row of ``data``."""
    return accuracy(predict(probe, data.features), data.labels)


def run_probe(train: LabelledFeatures, test: LabelledFeatures, n_classes: int, config: ProbeConfig,
              device: torch.device | str | None = None) -> ProbeResult:
    """Fit on ``train``, then score on ``train`` and ``test``; the one train/evaluate path for every task."""
    start = time.perf_counter()
    probe, losses = fit_probe(train, n_classes, config, device)
    seconds = time.perf_counter() - start
    predictions = predict(probe, test.features)
    per_group = None
    if test.groups is not None:
        right = (predictions == test.labels).long()
        n_groups = int(test.groups.max()) + 1 if len(test) else 0
        per_group = (torch.bincount(test.groups, right, n_groups).long().tolist(),
                     torch.bincount(test.groups, minlength=n_groups).tolist())
    return ProbeResult(probe, config, evaluate_probe(probe, train), accuracy(predictions, test.labels), losses,
                       seconds, per_group)


def paired_bootstrap(a: tuple[Sequence[int], Sequence[int]], b: tuple[Sequence[int], Sequence[int]],
                     resamples: int = 10_000, seed: int = 0) -> dict[str, float]:
    """Accuracy of ``b`` minus accuracy of ``a``, with a 95 % interval from resampling the test items (utterances)
    with replacement, the same draw for both: ``a`` and ``b`` are ``(correct, total)`` per item, in the same item
    order. Returns ``{"difference", "low", "high", "share_b_better"}`` (accuracies as fractions)."""
    a_right, a_total, b_right, b_total = (np.asarray(x, dtype=np.float64) for x in (*a, *b))
    if not len(a_right) == len(a_total) == len(b_right) == len(b_total) or not len(a_right):
        raise ValueError("need (correct, total) per item for the same, non-empty list of items")
    draws = np.random.default_rng(seed).integers(0, len(a_right), size=(resamples, len(a_right)))
    diffs = b_right[draws].sum(1) / b_total[draws].sum(1) - a_right[draws].sum(1) / a_total[draws].sum(1)
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"difference": float(b_right.sum() / b_total.sum() - a_right.sum() / a_total.sum()),
            "low": float(low), "high": float(high), "share_b_better": float((diffs > 0).mean())}


def majority_baseline(train_labels: torch.Tensor, test_labels: torch.Tensor) -> Accuracy:
    """Accuracy of always predicting the most frequent training label (ties: the lowest index)."""
    majority = int(torch.bincount(train_labels.long()).argmax())
    return accuracy(torch.full_like(test_labels.long(), majority), test_labels.long())


# --- persistence --------------------------------------------------------------------------------------------------

def save_label_map(classes: Sequence[str], path: str | Path, task: str = "") -> None:
    """Write class names in index order as JSON ``{"task": ..., "classes": [...]}``."""
    names = [str(c) for c in classes]
    if len(set(names)) != len(names):
        raise ValueError("class names must be unique")
    Path(path).write_text(json.dumps({"task": task, "classes": names}, indent=1) + "\n")


def load_label_map(path: str | Path) -> list[str]:
    """Class names in index order, as written by :func:`save_label_map`."""
    return list(json.loads(Path(path).read_text())["classes"])


def save_probe(probe: LinearProbe, path: str | Path, classes: Sequence[str] | None = None,
               metadata: dict[str, str] | None = None) -> None:
    """Write the probe's tensors as safetensors, with its class names and ``metadata`` in the header."""
    from ..safetensors_file import save_tensors

    header = {"dim": str(probe.dim), "n_classes": str(probe.n_classes), **(metadata or {})}
    if classes is not None:
        header["classes"] = json.dumps([str(c) for c in classes])
    tensors = {name: t.detach().contiguous().cpu() for name, t in probe.state_dict().items()}
    save_tensors(tensors, path, header)


def load_probe(path: str | Path) -> tuple[LinearProbe, list[str] | None, dict[str, str]]:
    """The probe written by :func:`save_probe`, its class names (or ``None``) and its metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as handle:
        metadata = dict(handle.metadata() or {})
    tensors = load_file(str(path))
    n_classes, dim = tensors["linear.weight"].shape
    probe = LinearProbe(dim, n_classes, bias="linear.bias" in tensors)
    probe.load_state_dict(tensors, strict=True)
    classes = json.loads(metadata["classes"]) if "classes" in metadata else None
    return probe.eval(), classes, metadata
