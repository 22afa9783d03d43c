"""Linear-probe evaluation of frozen encoders: phone and speaker accuracy per module and GRU, with MFCC and
random-initialisation baselines in the same run (protocol: ``docs/evaluation.md``).

    python -m training.evaluate --data data/synth --model sim=runs/sim_synth --model gim=models/gim \\
        --random-init sim --mfcc --out results/

    python -m training.evaluate --deboer data/Artificial-Speech-Dataset --model sim=runs/sim_deboer \\
        --random-init sim --mfcc --deboer-split both --out results/deboer

``--model NAME=PATH``: PATH is a ``save_pretrained`` folder, a training run folder (its latest checkpoint), a
checkpoint file, or a model name/Hub id for ``from_pretrained``. Writes ``results.json`` (every number, settings,
label maps, timings), ``results.md`` (a table), ``speakers.json`` and ``phones.json`` (label maps) to ``--out``.
``--deboer DIR`` (with or without ``--data``) adds syllable and vowel probes on de Boer's Artificial Speech Dataset
(:mod:`training.deboer_probes`): their tables go to ``results.md`` and to the terminal.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path

import torch

from smooth_infomax import __version__
from smooth_infomax.analysis.corpus import LibriLayout
from smooth_infomax.analysis.features import FeatureSource
from smooth_infomax.analysis.probes import (
    PHONE_PROBE,
    SPEAKER_PROBE,
    LabelledFeatures,
    ProbeConfig,
    collect_frame_features,
    collect_pooled_features,
    majority_baseline,
    run_probe,
    save_probe,
)
from training.data.librispeech import (
    CROP_SAMPLES,
    CorpusPaths,
    CropDataset,
    UtteranceDataset,
    align_labels,
    build_speaker_map,
    read_phone_labels,
    speaker_of,
)
from training.deboer_probes import DEBOER_PROBE, DeBoerProtocol, evaluate_deboer_sources
from training.deboer_probes import markdown as deboer_markdown
from training.evaluate_models import Candidate, candidates_from_args
from training.evaluate_report import write_results

N_PHONE_CLASSES = 41
EVAL_PHONE_PROBE = replace(PHONE_PROBE, learning_rate=1e-3, epochs=10, standardize=True)
"""The phone probe of this evaluation: the paper's probe with lr 1e-3 (converges in 10 epochs on cached frames)."""
EVAL_SPEAKER_PROBE = replace(SPEAKER_PROBE, epochs=300, standardize=True)
EVAL_SYLLABLE_PROBE = DEBOER_PROBE
"""The syllable / vowel probe: the reference's, standardised, early-stopped (``epochs`` is the ceiling)."""


# --- settings -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EvalSettings:
    """Everything that decides the numbers (stored in ``results.json``)."""

    phone_probe: ProbeConfig = EVAL_PHONE_PROBE
    speaker_probe: ProbeConfig = EVAL_SPEAKER_PROBE
    syllable_probe: ProbeConfig = EVAL_SYLLABLE_PROBE
    syllable_patience: int = DeBoerProtocol.patience
    syllable_val_fraction: float = DeBoerProtocol.val_fraction
    deboer_splits: tuple[str, ...] = DeBoerProtocol.splits
    speaker_crops: int = 2
    crop_samples: int = CROP_SAMPLES
    seed: int = 0
    train_split: str = "train_split"
    test_split: str = "test_split"
    max_utterances_per_speaker: int | None = None
    label_anchor: str = "end"
    feature_dtype: str = "float16"
    batch_seconds: float = 60.0
    device: str = "cpu"


@dataclass
class Corpus:
    """A LibriSpeech-layout corpus with its splits, phone labels and label maps.

    The phone labels may cover only some utterances (e.g. only the transcribed language of a multilingual
    corpus): the phone probes use the labelled ones (``phone_train_ids``, ``phone_test_ids``), the speaker
    probes all of ``train_ids`` and ``test_ids``.
    """

    paths: CorpusPaths
    train_ids: list[str]
    test_ids: list[str]
    labels: dict
    speaker_map: dict[str, int]
    phone_names: list[str]

    @property
    def phone_train_ids(self) -> list[str]:
        return [utt_id for utt_id in self.train_ids if utt_id in self.labels]

    @property
    def phone_test_ids(self) -> list[str]:
        return [utt_id for utt_id in self.test_ids if utt_id in self.labels]

    @property
    def fully_labelled(self) -> bool:
        return all(utt_id in self.labels for utt_id in self.train_ids + self.test_ids)


@dataclass
class FeatureCache:
    """Extracted features of one source: ``{feature name: LabelledFeatures}`` per task and split."""

    phone_train: dict[str, LabelledFeatures]
    phone_test: dict[str, LabelledFeatures]
    speaker_train: dict[str, LabelledFeatures]
    speaker_test: dict[str, LabelledFeatures]
    seconds: dict[str, float] = field(default_factory=dict)


# --- data ---------------------------------------------------------------------------------------------------------

def first_per_speaker(ids: list[str], limit: int | None) -> list[str]:
    """The first ``limit`` utterances of each speaker, in split order (all when ``limit`` is ``None``)."""
    if limit is None:
        return list(ids)
    counts: dict[str, int] = {}
    kept = []
    for utt_id in ids:
        speaker = speaker_of(utt_id)
        if counts.get(speaker, 0) < limit:
            kept.append(utt_id)
            counts[speaker] = counts.get(speaker, 0) + 1
    return kept


def load_corpus(root: str | Path, settings: EvalSettings) -> Corpus:
    """Splits, labels and label maps of the corpus at ``root``; speakers indexed train-first (as the reference)."""
    paths, layout = CorpusPaths(Path(root)), LibriLayout(root)  # the package's reader of split files
    train = first_per_speaker(layout.items(settings.train_split), settings.max_utterances_per_speaker)
    test = first_per_speaker(layout.items(settings.test_split), settings.max_utterances_per_speaker)
    labels = read_phone_labels(paths.phone_labels, train + test)
    for split, ids in ((settings.train_split, train), (settings.test_split, test)):
        if not any(utt_id in labels for utt_id in ids):
            raise ValueError(f"{paths.phone_labels}: no phone labels for any of the {len(ids)} utterances of {split}")
    if paths.phone_table.is_file():
        from training.data.phones import read_phone_table

        phone_names = read_phone_table(paths.phone_table)
    else:  # real LibriSpeech: the CPC label file's class order is unpublished
        phone_names = [str(i) for i in range(N_PHONE_CLASSES)]
    return Corpus(paths, train, test, labels, build_speaker_map(train, test), phone_names)


def utterances(corpus: Corpus, ids: list[str]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(waveform (samples,), phone labels (n_labels,))`` of whole utterances, trimmed to a multiple of 160."""
    dataset = UtteranceDataset(corpus.paths.audio_dir, ids, corpus.labels, corpus.speaker_map)
    for index in range(len(dataset)):
        item = dataset[index]
        yield item.audio[0], item.labels


def crop_batches(corpus: Corpus, ids: list[str], n_crops: int, seed: int, crop_samples: int,
                 batch_size: int = 16) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``n_crops`` fixed crops per utterance as batches ``(audio (b, samples), lengths (b,), speakers (b,))``.

    Crop ``k`` of utterance ``i`` is ``CropDataset(seed=seed)`` item ``i`` of epoch ``k``: the same for every model.
    """
    dataset = CropDataset(corpus.paths.audio_dir, ids, corpus.speaker_map, crop_samples, seed=seed)
    items = []
    for crop in range(n_crops):
        dataset.set_epoch(crop)
        for index in range(len(dataset)):
            items.append(dataset[index])
            if len(items) == batch_size:
                yield _stack_crops(items)
                items = []
    if items:
        yield _stack_crops(items)


def _stack_crops(items) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    audio = torch.stack([item.audio[0] for item in items])
    return audio, torch.full((len(items),), audio.shape[1]), torch.tensor([item.speaker for item in items])


def _progress(total: int, description: str, quiet: bool):
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc=description, unit="item", file=sys.stderr, leave=False)
    return bar.update, bar.close


def extract_features(source: FeatureSource, corpus: Corpus, settings: EvalSettings, label: str = "",
                     quiet: bool = True) -> FeatureCache:
    """Run ``source`` once over the train and test utterances (phones) and the fixed speaker crops."""
    dtype = getattr(torch, settings.feature_dtype)
    align = partial(align_labels, anchor=settings.label_anchor)
    batch = int(settings.batch_seconds * 16000)
    seconds, results = {}, {}
    jobs = {
        "phone_train": lambda p: collect_frame_features(source, utterances(corpus, corpus.phone_train_ids), align,
                                                        dtype, batch, p),
        "phone_test": lambda p: collect_frame_features(source, utterances(corpus, corpus.phone_test_ids), align,
                                                       dtype, batch, p),
        "speaker_train": lambda p: collect_pooled_features(
            source, crop_batches(corpus, corpus.train_ids, settings.speaker_crops, settings.seed,
                                 settings.crop_samples), torch.float32, p),
        "speaker_test": lambda p: collect_pooled_features(
            source, crop_batches(corpus, corpus.test_ids, settings.speaker_crops, settings.seed + 1,
                                 settings.crop_samples), torch.float32, p),
    }
    sizes = {"phone_train": len(corpus.phone_train_ids), "phone_test": len(corpus.phone_test_ids),
             "speaker_train": len(corpus.train_ids) * settings.speaker_crops,
             "speaker_test": len(corpus.test_ids) * settings.speaker_crops}
    for name, job in jobs.items():
        update, close = _progress(sizes[name], f"{label} {name}", quiet)
        start = time.perf_counter()
        results[name] = job(update)
        seconds[name] = round(time.perf_counter() - start, 3)
        close()
    return FeatureCache(**results, seconds=seconds)


# --- probes -------------------------------------------------------------------------------------------------------

def with_standardize(config: ProbeConfig, source: FeatureSource) -> ProbeConfig:
    """A source that asks for standardisation (MFCCs: the baseline's StandardScaler) gets it whatever the setting."""
    return replace(config, standardize=True) if getattr(source, "standardize", False) else config


def probe_features(cache: FeatureCache, source: FeatureSource, corpus: Corpus, settings: EvalSettings,
                   probe_dir: Path | None = None, model: str = "") -> dict[str, dict]:
    """Train and score the phone and speaker probes on every cached feature set of one source."""
    out = {}
    for name in source.feature_names:
        entry: dict = {}
        tasks = [("phone", cache.phone_train, cache.phone_test, N_PHONE_CLASSES, settings.phone_probe,
                  corpus.phone_names),
                 ("speaker", cache.speaker_train, cache.speaker_test, len(corpus.speaker_map), settings.speaker_probe,
                  _speaker_names(corpus))]
        for task, train, test, n_classes, config, classes in tasks:
            if name not in train:
                continue
            entry["dim"] = train[name].dim
            result = run_probe(train[name], test[name], n_classes, with_standardize(config, source), settings.device)
            entry[task] = result.as_dict()
            if probe_dir is not None:
                save_probe(result.probe, probe_dir / f"{_slug(model)}__{_slug(name)}__{task}.safetensors", classes,
                           {"model": model, "features": name, "task": task})
        out[name] = entry
    return out


def _speaker_names(corpus: Corpus) -> list[str]:
    return sorted(corpus.speaker_map, key=corpus.speaker_map.__getitem__)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"


def chance_rates(cache: FeatureCache, n_speakers: int) -> dict:
    """Majority-class (most frequent train label, scored on test) and uniform chance rates of both tasks."""
    phone_train, phone_test = next(iter(cache.phone_train.values())), next(iter(cache.phone_test.values()))
    speaker_train, speaker_test = next(iter(cache.speaker_train.values())), next(iter(cache.speaker_test.values()))
    return {
        "phone": {"majority": majority_baseline(phone_train.labels, phone_test.labels).as_dict(),
                  "majority_class": int(torch.bincount(phone_train.labels).argmax()),
                  "uniform": 1 / N_PHONE_CLASSES,
                  "classes_in_test": int(phone_test.labels.unique().numel())},
        "speaker": {"majority": majority_baseline(speaker_train.labels, speaker_test.labels).as_dict(),
                    "uniform": 1 / n_speakers},
    }


def _first(features: dict[str, LabelledFeatures]) -> LabelledFeatures:
    return next(iter(features.values()))


def corpus_summary(corpus: Corpus, cache: FeatureCache, settings: EvalSettings) -> dict:
    """Corpus sizes; ``probes`` says how many utterances, frames and crops each probe used (the phone probes
    only the labelled utterances). ``train_audio_s``/``test_audio_s`` are the audio of the phone probes."""
    frames = {"train": len(_first(cache.phone_train)), "test": len(_first(cache.phone_test))}
    crops = {"train": len(_first(cache.speaker_train)), "test": len(_first(cache.speaker_test))}
    probes = {
        "phone": {"train_utterances": len(corpus.phone_train_ids), "test_utterances": len(corpus.phone_test_ids),
                  "train_frames": frames["train"], "test_frames": frames["test"]},
        "speaker": {"train_utterances": len(corpus.train_ids), "test_utterances": len(corpus.test_ids),
                    "train_crops": crops["train"], "test_crops": crops["test"]},
    }
    return {"root": str(corpus.paths.root), "train_utterances": len(corpus.train_ids),
            "test_utterances": len(corpus.test_ids), "speakers": len(corpus.speaker_map),
            "train_frames": frames["train"], "test_frames": frames["test"],
            "train_crops": crops["train"], "test_crops": crops["test"],
            "train_audio_s": round(frames["train"] * 0.01, 2), "test_audio_s": round(frames["test"] * 0.01, 2),
            "crops_per_utterance": settings.speaker_crops, "fully_labelled": corpus.fully_labelled,
            "test_speakers_in_train": len({speaker_of(i) for i in corpus.test_ids}
                                          & {speaker_of(i) for i in corpus.train_ids}),
            "probes": probes}


# --- one run ------------------------------------------------------------------------------------------------------

def evaluate(candidates: list[Candidate], corpus: Corpus, settings: EvalSettings, out_dir: Path | None = None,
             save_probes: bool = False, quiet: bool = True) -> dict:
    """Extract, probe and score every candidate; returns the ``results.json`` dictionary."""
    started = time.perf_counter()
    probe_dir = None
    if out_dir is not None and save_probes:
        probe_dir = out_dir / "probes"
        probe_dir.mkdir(parents=True, exist_ok=True)
    results = {"models": [], "chance": None, "corpus": None}
    for candidate in candidates:
        source = candidate.make()
        cache = extract_features(source, corpus, settings, candidate.name, quiet)
        if results["chance"] is None:
            results["chance"] = chance_rates(cache, len(corpus.speaker_map))
            results["corpus"] = corpus_summary(corpus, cache, settings)
        probe_start = time.perf_counter()
        features = probe_features(cache, source, corpus, settings, probe_dir, candidate.name)
        summary = results["corpus"]
        audio_s = (summary["train_audio_s"] + summary["test_audio_s"]
                   + (summary["train_crops"] + summary["test_crops"]) * settings.crop_samples / 16000)
        extraction_s = sum(cache.seconds.values())
        results["models"].append({
            "name": candidate.name, "kind": candidate.kind, "source": candidate.description,
            "features": features,
            "timings": {"extraction_s": cache.seconds, "extraction_total_s": round(extraction_s, 3),
                        "audio_s": round(audio_s, 2), "times_realtime": round(audio_s / max(extraction_s, 1e-9), 2),
                        "probes_s": round(time.perf_counter() - probe_start, 3)},
        })
        if not quiet:
            print(f"{candidate.name}: extraction {extraction_s:.1f} s, probes "
                  f"{results['models'][-1]['timings']['probes_s']:.1f} s", file=sys.stderr)
        del cache, source
    results.update(settings=_settings_dict(settings, candidates), versions=_versions(),
                   label_maps={"phones": corpus.phone_names, "speakers": _speaker_names(corpus)},
                   timings={"total_s": round(time.perf_counter() - started, 3),
                            "torch_threads": torch.get_num_threads()})
    return results


def _settings_dict(settings: EvalSettings, candidates: list[Candidate]) -> dict:
    data = asdict(settings)
    mfcc = [c for c in candidates if c.kind == "mfcc"]
    if mfcc:
        data["mfcc"] = mfcc[0].make().settings()
    data["encoder_features"] = "extract(sample=False) means, eval mode; finer-hop modules averaged into 10 ms bins"
    data["phone_alignment"] = f"training.data.librispeech.align_labels(anchor={settings.label_anchor!r})"
    return data


def _versions() -> dict:
    import torchaudio

    return {"smooth_infomax": __version__, "torch": torch.__version__, "torchaudio": torchaudio.__version__,
            "python": platform.python_version()}


# --- de Boer syllables / vowels -----------------------------------------------------------------------------------

def deboer_protocol(settings: EvalSettings) -> DeBoerProtocol:
    """The de Boer probe settings of ``settings``."""
    return DeBoerProtocol(settings.syllable_probe, settings.syllable_patience, settings.syllable_val_fraction,
                          tuple(settings.deboer_splits), settings.device)


def evaluate_deboer(source: FeatureSource, root: str | Path, settings: EvalSettings, batch_size: int = 32) -> dict:
    """Syllable (9 classes) and vowel (3 classes) accuracy of one source's time-pooled features on the published
    split of the de Boer syllable files at ``root`` (the dataset's folder, or ``split up data padded`` holding
    ``train/`` and ``test/``): ``{feature: {"dim", "syllable", "vowel"}}``. ``training.deboer_probes`` has the rest."""
    protocol = replace(deboer_protocol(settings), splits=("published",))
    results = evaluate_deboer_sources({"source": lambda: source}, root, protocol, batch_size)
    return results["splits"]["published"]["models"]["source"]


# --- command line -------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate",
                                     description=" ".join(__doc__.split("\n\n")[0].split()),
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data", default=None,
                        help="corpus root in LibriSpeech layout for the phone/speaker probes (e.g. data/synth)")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH",
                        help="a trained encoder (save_pretrained folder, run folder, checkpoint or model name)")
    parser.add_argument("--random-init", action="append", default=[], metavar="PRESET",
                        help="also probe a randomly initialised encoder of this preset (seeded by --seed)")
    parser.add_argument("--mfcc", action="store_true", help="also probe MFCC-13 + deltas + delta-deltas")
    parser.add_argument("--mfcc-context", type=int, default=0, metavar="K",
                        help="with --mfcc: also probe MFCCs stacked over ±K frames (phones only)")
    parser.add_argument("--frames-late", type=int, action="append", default=[], metavar="D",
                        help="also probe every frame feature set read D label frames late, 'NAME +D' (phones only; "
                             "repeatable; D < 0 reads early): a timing diagnostic, not a feature of its own")
    parser.add_argument("--out", required=True, help="output folder")
    phone, speaker = EvalSettings.phone_probe, EvalSettings.speaker_probe
    parser.add_argument("--phone-epochs", type=int, default=phone.epochs, help="phone probe epochs")
    parser.add_argument("--phone-lr", type=float, default=phone.learning_rate,
                        help="phone probe Adam learning rate (reference: 1e-4)")
    parser.add_argument("--phone-batch", type=int, default=phone.batch_size, help="phone probe batch (frames)")
    parser.add_argument("--speaker-epochs", type=int, default=speaker.epochs, help="speaker probe epochs")
    parser.add_argument("--speaker-lr", type=float, default=speaker.learning_rate,
                        help="speaker probe Adam learning rate")
    parser.add_argument("--speaker-batch", type=int, default=speaker.batch_size, help="speaker probe batch (crops)")
    parser.add_argument("--speaker-crops", type=int, default=EvalSettings.speaker_crops,
                        help="fixed seeded crops per utterance, train and test")
    parser.add_argument("--no-standardize", action="store_true",
                        help="probe raw encoder features, as the reference (MFCCs are always standardised)")
    parser.add_argument("--max-utterances-per-speaker", type=int, default=None, metavar="N",
                        help="use only the first N utterances of each speaker in each split (quick runs)")
    parser.add_argument("--train-split", default="train_split",
                        help="split file under LibriSpeech100_labels_split, with or without .txt")
    parser.add_argument("--test-split", default="test_split",
                        help="split file under LibriSpeech100_labels_split, with or without .txt")
    parser.add_argument("--label-anchor", choices=("end", "start"), default="end",
                        help="pair labels with the last frames (reference: output[-T:]) or the first")
    parser.add_argument("--deboer", default=None, metavar="DIR",
                        help="score syllables/vowels on de Boer's Artificial Speech Dataset: its folder (holding "
                             "'split up data padded/' and 'reshuffledv2/') or its syllable folder")
    parser.add_argument("--deboer-split", choices=("published", "unheard", "both"), default="published",
                        help="de Boer syllable split: the dataset's folders, or test words the encoder never trained "
                             "on (docs/evaluation.md)")
    parser.add_argument("--syllable-max-epochs", type=int, default=EvalSettings.syllable_probe.epochs,
                        help="de Boer probes: most epochs (they stop early)")
    parser.add_argument("--syllable-patience", type=int, default=EvalSettings.syllable_patience,
                        help="de Boer probes: stop after this many epochs without a lower validation loss")
    parser.add_argument("--seed", type=int, default=0, help="probe initialisation/order, crops, random-init weights")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (None: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] for the encoders and probes")
    parser.add_argument("--save-probes", action="store_true", help="write every trained probe to OUT/probes/")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def settings_from_args(args: argparse.Namespace) -> EvalSettings:
    base = EvalSettings()
    standardize = not args.no_standardize
    return replace(
        base,
        phone_probe=replace(base.phone_probe, epochs=args.phone_epochs, learning_rate=args.phone_lr,
                            batch_size=args.phone_batch, standardize=standardize, seed=args.seed),
        speaker_probe=replace(base.speaker_probe, epochs=args.speaker_epochs, learning_rate=args.speaker_lr,
                              batch_size=args.speaker_batch, standardize=standardize, seed=args.seed),
        syllable_probe=replace(base.syllable_probe, epochs=args.syllable_max_epochs, standardize=standardize,
                               seed=args.seed),
        syllable_patience=args.syllable_patience,
        deboer_splits=("published", "unheard") if args.deboer_split == "both" else (args.deboer_split,),
        speaker_crops=args.speaker_crops, seed=args.seed, train_split=args.train_split.removesuffix(".txt"),
        test_split=args.test_split.removesuffix(".txt"),
        max_utterances_per_speaker=args.max_utterances_per_speaker, label_anchor=args.label_anchor,
        device=args.device)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.data is None and args.deboer is None:
        parser.error("give --data (phones and speakers) and/or --deboer (syllables and vowels)")
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = settings_from_args(args)
    candidates = candidates_from_args(args, settings)
    out_dir = Path(args.out)
    started = time.perf_counter()
    if args.data is not None:
        corpus = load_corpus(args.data, settings)
        if not corpus.fully_labelled and not args.quiet:
            print(f"phone labels cover {len(corpus.phone_train_ids)}/{len(corpus.train_ids)} train and "
                  f"{len(corpus.phone_test_ids)}/{len(corpus.test_ids)} test utterances: phone probes use those, "
                  "speaker probes all", file=sys.stderr)
        results = evaluate(candidates, corpus, settings, out_dir, args.save_probes, args.quiet)
    else:
        results = {"settings": _settings_dict(settings, candidates), "versions": _versions(),
                   "timings": {"torch_threads": torch.get_num_threads()}}
    if args.deboer:
        start = time.perf_counter()
        results["deboer"] = evaluate_deboer_sources({c.name: c.make for c in candidates}, args.deboer,
                                                    deboer_protocol(settings), quiet=args.quiet)
        results["deboer"]["sources"] = {c.name: {"kind": c.kind, "source": c.description} for c in candidates}
        results["timings"]["deboer_s"] = round(time.perf_counter() - start, 3)
        print(deboer_markdown(results["deboer"]))
    results["timings"].setdefault("total_s", round(time.perf_counter() - started, 3))
    write_results(results, out_dir)
    print(f"wrote {out_dir / 'results.json'} and {out_dir / 'results.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
