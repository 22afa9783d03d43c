"""Syllable (9 classes) and vowel (3 classes) probes on de Boer's Artificial Speech Dataset (spec section 4.3), with
chance rates, early stopping and a choice of split. ``python -m training.evaluate --deboer DIR`` runs them; the
protocol and the splits are described in ``docs/evaluation.md``.

Each feature source is run once over every syllable file (time-pooled features, one row per file); each split then
trains its probes on its training rows and scores them on its test rows. A probe trains until the cross-entropy on a
validation split of the training *words* has not improved for ``patience`` epochs, and keeps the epoch with the
lowest validation loss.
"""

from __future__ import annotations

import math
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.nn import functional as F

from smooth_infomax.analysis.features import FeatureSource
from smooth_infomax.analysis.probes import (
    SYLLABLE_PROBE,
    LabelledFeatures,
    LinearProbe,
    ProbeConfig,
    collect_pooled_features,
    evaluate_probe,
    feature_statistics,
    majority_baseline,
)
from training.data.deboer import (
    SPLITS,
    SYLLABLES,
    VOWELS,
    WORDS_FOLDER,
    DeBoerDataset,
    SyllableSplit,
    find_layout,
    syllable_split,
    word_of,
)

DEBOER_PROBE = replace(SYLLABLE_PROBE, epochs=2000, standardize=True)
"""The reference's probe (Adam lr 1e-3, batch 64, no clipping), standardised; ``epochs`` is only a ceiling, since
training stops early (its 50 epochs left the syllable probe unconverged)."""
TASKS = (("syllable", SYLLABLES), ("vowel", VOWELS))
_TO_VOWEL = torch.tensor([VOWELS.index(s[-1]) for s in SYLLABLES])
_MIN_IMPROVEMENT = 1e-4
"""A validation loss must fall by more than this (nats) to count as an improvement."""


@dataclass(frozen=True)
class DeBoerProtocol:
    """How the syllable and vowel probes are trained, and on which splits (:data:`training.data.deboer.SPLITS`)."""

    probe: ProbeConfig = DEBOER_PROBE
    patience: int = 20
    val_fraction: float = 0.1
    splits: tuple[str, ...] = ("published",)
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.patience < 1 or not 0.0 < self.val_fraction < 1.0 or not set(self.splits) <= set(SPLITS):
            raise ValueError(f"bad de Boer probe settings: {self}")


# --- features -----------------------------------------------------------------------------------------------------

@dataclass
class ClipFeatures:
    """Time-pooled features of syllable files: ``features[name]`` ``(files, dim)`` in ``paths`` order, with each
    file's syllable label ``(files,)`` and word."""

    paths: list[Path]
    features: dict[str, torch.Tensor]
    syllables: torch.Tensor
    words: list[str]
    seconds: float = 0.0

    def rows(self, files: Iterable[Path]) -> torch.Tensor:
        index = {path: row for row, path in enumerate(self.paths)}
        return torch.tensor([index[path] for path in files], dtype=torch.long)


def extract_clip_features(source: FeatureSource, files: list[Path], batch_size: int = 32) -> ClipFeatures:
    """Run ``source`` once over ``files`` (syllable files, resampled to 16 kHz, 8821 samples each)."""
    dataset = DeBoerDataset(files=files, kind="syllables", labels="syllables")

    def clips():
        for start in range(0, len(dataset), batch_size):
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            audio = torch.nn.utils.rnn.pad_sequence([item.audio[0] for item in items], batch_first=True)
            yield audio, torch.tensor([item.audio.shape[-1] for item in items]), torch.tensor([i.label for i in items])

    started = time.perf_counter()
    pooled = collect_pooled_features(source, clips())
    labels = next(iter(pooled.values())).labels
    return ClipFeatures(list(files), {name: data.features for name, data in pooled.items()}, labels,
                        [word_of(path) for path in files], time.perf_counter() - started)


# --- probes -------------------------------------------------------------------------------------------------------

def validation_words(words: Iterable[str], fraction: float) -> set[str]:
    """``ceil(fraction * n)`` of the ``n`` distinct words, those with the smallest CRC-32: stable across runs and
    file orders, and at least one word."""
    distinct = sorted(set(words), key=lambda word: (zlib.crc32(word.encode()), word))
    if len(distinct) < 2:
        raise ValueError(f"early stopping needs at least 2 training words, got {len(distinct)}")
    return set(distinct[:min(len(distinct) - 1, max(1, math.ceil(fraction * len(distinct))))])


def fit_early_stopping(fit: LabelledFeatures, val: LabelledFeatures, n_classes: int, config: ProbeConfig,
                       patience: int, device: str | torch.device = "cpu") -> tuple[LinearProbe, dict]:
    """Train a :class:`LinearProbe` on ``fit`` for at most ``config.epochs`` epochs, stopping once the loss on ``val``
    has not improved for ``patience`` epochs; returns the probe of the best epoch (CPU, eval mode) and a record of
    the run (``epochs_run``, ``best_epoch``, ``stopped_early``, ``epoch_losses``, ``val_losses``)."""
    device = torch.device(device)
    generator = torch.Generator().manual_seed(config.seed)
    shift, scale = feature_statistics(fit.features) if config.standardize else (None, None)
    probe = LinearProbe(fit.dim, n_classes, config.bias, shift, scale, generator).to(device)
    optimiser = torch.optim.Adam(probe.parameters(), lr=config.learning_rate)
    val_x, val_y = val.features.to(device, torch.float32), val.labels.to(device)
    best_loss, best_epoch, best_state = math.inf, 0, _state(probe)
    train_losses: list[float] = []
    val_losses: list[float] = []
    with torch.enable_grad():
        for epoch in range(1, config.epochs + 1):
            probe.train()
            train_losses.append(_train_epoch(probe, optimiser, fit, config, generator, device))
            probe.eval()
            with torch.no_grad():
                val_losses.append(F.cross_entropy(probe(val_x), val_y).item())
            if val_losses[-1] < best_loss - _MIN_IMPROVEMENT:
                best_loss, best_epoch, best_state = val_losses[-1], epoch, _state(probe)
            elif epoch - best_epoch >= patience:
                break
    probe.load_state_dict(best_state)
    record = {"epochs_run": len(train_losses), "best_epoch": best_epoch,
              "stopped_early": len(train_losses) < config.epochs,
              "epoch_losses": [round(x, 6) for x in train_losses], "val_losses": [round(x, 6) for x in val_losses]}
    return probe.cpu().eval(), record


def _state(probe: LinearProbe) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in probe.state_dict().items()}


def _train_epoch(probe: LinearProbe, optimiser: torch.optim.Optimizer, data: LabelledFeatures, config: ProbeConfig,
                 generator: torch.Generator, device: torch.device) -> float:
    """One pass over ``data`` in shuffled mini-batches (the last, smaller one included); the mean training loss."""
    order = torch.randperm(len(data), generator=generator)
    total = 0.0
    for start in range(0, len(order), config.batch_size):
        rows = order[start:start + config.batch_size]
        loss = F.cross_entropy(probe(data.features[rows].to(device, torch.float32)), data.labels[rows].to(device))
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if config.clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(probe.parameters(), config.clip_grad_norm)
        optimiser.step()
        total += float(loss.detach()) * len(rows)
    return total / len(order)


def probe_split(clips: ClipFeatures, split: SyllableSplit, protocol: DeBoerProtocol, config: ProbeConfig) -> dict:
    """Syllable and vowel probes on every feature set of ``clips`` for one split: ``{feature: {"dim", "syllable",
    "vowel"}}``, each task with test, fit and validation accuracy and the early-stopping record."""
    train_rows, test_rows = clips.rows(split.train), clips.rows(split.test)
    held_out = validation_words([clips.words[r] for r in train_rows], protocol.val_fraction)
    is_val = torch.tensor([clips.words[r] in held_out for r in train_rows], dtype=torch.bool)
    fit_rows, val_rows = train_rows[~is_val], train_rows[is_val]
    out = {}
    for name, features in clips.features.items():
        entry: dict = {"dim": features.shape[1]}
        for task, classes in TASKS:
            labels = clips.syllables if task == "syllable" else _TO_VOWEL[clips.syllables]
            parts = {part: LabelledFeatures(features[rows], labels[rows])
                     for part, rows in (("fit", fit_rows), ("val", val_rows), ("test", test_rows))}
            started = time.perf_counter()
            probe, record = fit_early_stopping(parts["fit"], parts["val"], len(classes), config, protocol.patience,
                                               protocol.device)
            entry[task] = {
                "test": evaluate_probe(probe, parts["test"]).as_dict(),
                "train": evaluate_probe(probe, parts["fit"]).as_dict(),
                "val": evaluate_probe(probe, parts["val"]).as_dict(),
                "n_classes": len(classes), "classes": list(classes), "config": asdict(config), **record,
                "train_seconds": round(time.perf_counter() - started, 3),
            }
        out[name] = entry
    return out


def chance_rates(clips: ClipFeatures, split: SyllableSplit) -> dict:
    """Per task: always predicting the most frequent training label (scored on the test files), and 1/classes."""
    train, test = clips.syllables[clips.rows(split.train)], clips.syllables[clips.rows(split.test)]
    out = {}
    for task, classes in TASKS:
        y_train, y_test = (train, test) if task == "syllable" else (_TO_VOWEL[train], _TO_VOWEL[test])
        out[task] = {"majority": majority_baseline(y_train, y_test).as_dict(),
                     "majority_class": classes[int(torch.bincount(y_train, minlength=len(classes)).argmax())],
                     "uniform": 1 / len(classes)}
    return out


# --- one run ------------------------------------------------------------------------------------------------------

def evaluate_deboer_sources(sources: Mapping[str, Callable[[], FeatureSource]], root: str | Path,
                            protocol: DeBoerProtocol = DeBoerProtocol(), batch_size: int = 32,
                            quiet: bool = True) -> dict:
    """Probe every source (``{name: () -> FeatureSource}``) on the syllable files of the dataset at ``root`` (its
    folder, or its syllable folder holding ``train/`` and ``test/``), for each split of ``protocol``.

    Returns ``{"root", "syllables", "words", "protocol", "splits": {split: {"description", "counts", "chance",
    "models": {name: {feature: {"dim", "syllable", "vowel"}}}}}, "extraction_s": {name: seconds}}``.
    """
    layout = find_layout(root)
    splits = {name: syllable_split(layout, name) for name in protocol.splits}
    files = sorted({path for split in splits.values() for path in split.train + split.test})
    results: dict = {
        "root": str(root), "syllables": str(layout.syllables),
        "words": None if layout.words is None else str(layout.words), "protocol": asdict(protocol),
        "splits": {name: {"description": describe_split(split), "counts": split.counts(), "chance": None,
                          "models": {}} for name, split in splits.items()},
        "extraction_s": {},
    }
    for name, make in sources.items():
        source = make()
        clips = extract_clip_features(source, files, batch_size)
        config = replace(protocol.probe, standardize=True) if getattr(source, "standardize", False) else protocol.probe
        for split_name, split in splits.items():
            entry = results["splits"][split_name]
            entry["chance"] = entry["chance"] or chance_rates(clips, split)
            entry["models"][name] = probe_split(clips, split, protocol, config)
        results["extraction_s"][name] = round(clips.seconds, 3)
        if not quiet:
            print(f"{name}: de Boer extraction {clips.seconds:.1f} s", file=sys.stderr)
    return results


def describe_split(split: SyllableSplit) -> str:
    if split.name == "published":
        return ("the dataset's own folders (the reference's split): probe train `train/`, test `test/` (in the "
                "published dataset, cut from each word's second take)")
    return (f"words the encoder never trained on: test = every syllable file of a word with no recording in "
            f"`{WORDS_FOLDER}/train`, probe train = the `train/` files of the other words")


# --- output -------------------------------------------------------------------------------------------------------

def markdown(results: dict) -> str:
    """The syllable and vowel tables of ``results`` (from :func:`evaluate_deboer_sources`), one per split, with the
    majority-class and uniform chance rows."""
    protocol = results["protocol"]
    probe = protocol["probe"]
    lines = [
        "## Syllables and vowels: de Boer's Artificial Speech Dataset", "",
        (f"Syllable files of `{results['syllables']}`, time-pooled features, linear probes (Adam lr "
         f"{probe['learning_rate']:g}, batch {probe['batch_size']}) trained until the loss on "
         f"{100 * protocol['val_fraction']:.0f} % of the training words has not improved for {protocol['patience']} "
         f"epochs (at most {probe['epochs']}). Test accuracy over all test files, in %; `epochs` is the epoch kept "
         "(syllable / vowel)."), "",
    ]
    for name, split in results["splits"].items():
        lines += [f"### Split `{name}`", "", _split_sentence(name, split), "",
                  "| model | features | dim | syllable acc. | vowel acc. | epochs |", "|---|---|---:|---:|---:|---:|"]
        for model, features in split["models"].items():
            for feature, entry in features.items():
                lines.append(f"| {model} | {feature} | {entry['dim']} | {_pct(entry['syllable']['test'])} | "
                             f"{_pct(entry['vowel']['test'])} | {entry['syllable']['best_epoch']} / "
                             f"{entry['vowel']['best_epoch']} |")
        chance = split["chance"]
        if chance:
            lines += [f"| majority class (train) | – | – | {_pct(chance['syllable']['majority'])} | "
                      f"{_pct(chance['vowel']['majority'])} | – |",
                      f"| uniform chance | – | – | {100 * chance['syllable']['uniform']:.1f} | "
                      f"{100 * chance['vowel']['uniform']:.1f} | – |"]
        lines.append("")
    return "\n".join(lines)


def _pct(accuracy: dict) -> str:
    return f"{100 * accuracy['accuracy']:.1f}"


def _split_sentence(name: str, split: dict) -> str:
    counts = split["counts"]
    text = (f"{split['description'][0].upper()}{split['description'][1:]}. Probe train {counts['train_files']} files "
            f"({counts['train_words']} words), test {counts['test_files']} files ({counts['test_words']} words)")
    if counts["unused_files"]:
        text += f"; {counts['unused_files']} published test files of heard words unused"
    heard = counts["test_files_from_heard_words"]
    if heard is None:
        return text + f". No `{WORDS_FOLDER}/` beside the syllables: which test words the encoder heard is unknown."
    return (text + f". {heard} of the {counts['test_files']} test files come from words with a recording in "
            f"`{WORDS_FOLDER}/train` (the ASD training configs' audio).")
