"""``sim-analyze report``: every analysis for one or more encoders on one corpus, as an HTML page.

For each model and module: KL per dimension and active units, Gaussian and KDE total correlation, a bias-free
linear probe on time-averaged means with the concentration of its weights, a phone-class probe on 10 ms frames
(corpora with phone labels), kNN accuracy and a t-SNE of pooled features; for the decoder modules: a decoder (the
model's own, one given, or one trained briefly), reconstructions, draws from the prior, traversals, interpolations
and the ICS; for one example clip of the test split: its log-mel, the reconstruction from every module that has a
decoder and a traversal of the dimension each probe weighs most. Writes ``report.html`` (self-contained),
``report.json`` (every number and setting), ``figures/*.png``, ``audio/**.wav`` and ``decoders/<model>/module-<m>/``
(decoders it trained). Progress goes to the ``logging`` loggers of this package (each long step: start, and end
with its seconds).

Data: ``n_files`` clips of the train split fit the probes and decoders; ``n_test_files`` clips of the test split
are measured (probe accuracy, posterior statistics, total correlation, ICS, examples). kNN accuracy and t-SNE,
which fit nothing, use all clips.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .concentration import dimension_importance, weight_concentration
from .corpus import Clips, Corpus, load_clips
from .embedding import knn_accuracy, tsne_embedding
from .features import masked_time_mean
from .figures import (
    density_figure,
    figure_png,
    ics_figure,
    posterior_figure,
    tsne_figure,
)
from .ics import DEFAULT_KS, IcsResult
from .information import (
    gaussian_total_correlation,
    kde_total_correlation,
    posterior_stats,
)
from .probes import LabelledFeatures, ProbeConfig, evaluate_probe, fit_probe
from .report_decoders import GivenDecoder, decoder_analysis, prefer, timed
from .report_example import ExampleClip, choose_example, example_section
from .report_html import COLUMNS, MISSING, ReportFigure, ReportSection, render_report
from .report_phones import PhoneClips, TopDimension, load_phone_clips, phone_features, phone_probe, top_dimension

logger = logging.getLogger(__name__)
DECODER_KEYS = ("ics_mean_relative", "logmel_error_ratio", "reconstruction_error")

NOTES = (
    ("Gaussian TC: minus one half of the log determinant of the correlation matrix of sampled test frames, less its "
     "closed-form bias for independent Gaussian rows; a lower bound on TC for non-Gaussian data."),
    "KDE TC: leave-one-out Gaussian KDE on random subsets of a few channels (standardised, Scott bandwidth).",
    ("Label probe: bias-free, linear, on each clip's time-averaged module means, labels as in the introduction. "
     "Participation ratio (sum w^2)^2 / sum w^4 of its weights: effective number of dimensions, shown as a fraction "
     "of dim; rows = per class, dims = per-dimension importance over all classes."),
    ("Phone probe: linear with bias, on standardised 10 ms frames of the labelled utterances (phone classes of "
     "converted_aligned_phones.txt); accuracy over the test frames whose class occurs in training."),
    ("Log-mel error: mean absolute error of the decoded log-mel frames (natural log), as a share of the error of each "
     "clip's own mean spectrum repeated on every frame; below 1 beats that constant."),
    ("Numbered marks: a dash (\u2013) marks a measure that does not apply to that row, and a number below 0 a measure "
     "that can come out negative; the numbered note under the tables says why, for each mark."),
)
"""Explanations printed under the report's tables."""


@dataclass(frozen=True)
class ReportSettings:
    """What the report computes and how much it costs (see ``docs/interpretability.md`` for timings)."""

    n_files: int = 120
    n_test_files: int = 40
    crop_samples: int = 10240
    modules: tuple[int, ...] | None = None
    decoder_modules: tuple[int, ...] | None = None
    decoder_steps: int = 300
    decoder_hidden: int = 128
    decoder_batch: int = 8
    decoder_loss: str = "mse"
    decoder_learning_rate: float = 5e-4
    decoder_latents: str = "sample"
    ics_pairs: int = 200
    ics_ks: tuple[int, ...] = DEFAULT_KS
    frames_per_clip: int = 32
    kde_channels: int = 4
    kde_repeats: int = 3
    probe_epochs: int = 300
    phone_probe_epochs: int = 20
    traversal_dims: int = 4
    traversal_sd: tuple[float, ...] = (-3.0, -1.5, 0.0, 1.5, 3.0)
    """Traversal shifts in posterior standard deviations (both the decoder sections and the example)."""
    example: str | None = None
    """Corpus item of the example clip (default: the longest measured test utterance, with phone labels if any)."""
    example_seconds: float = 3.0
    tsne: bool = True
    seed: int = 0


@dataclass(frozen=True)
class ReportData:
    """What every model is measured on: clips of both splits, phone-labelled crops (``None`` without phone
    labels) and the example clip."""

    corpus: Corpus
    fit: Clips
    test: Clips
    phone_fit: PhoneClips | None
    phone_test: PhoneClips | None
    example: ExampleClip
    label_kind: str


@dataclass
class ModelResult:
    """One model's table rows (by module), artefacts (by module), sections, ICS results and example record."""

    rows: dict[int, dict] = field(default_factory=dict)
    artefacts: dict[int, dict] = field(default_factory=dict)
    sections: list[ReportSection] = field(default_factory=list)
    example: list[ReportSection] = field(default_factory=list)
    ics: dict[str, IcsResult] = field(default_factory=dict)
    records: dict = field(default_factory=dict)


@dataclass
class ModuleData:
    """One module's features: pooled ``(clips, dim)`` for fit and test clips, and sampled test frames
    ``(rows, dim)`` of the posterior mean and log-variance (``None`` for deterministic modules)."""

    pooled_fit: torch.Tensor
    pooled_test: torch.Tensor
    rows_mean: torch.Tensor
    rows_logvar: torch.Tensor | None


def module_label(encoder, module: int) -> str:
    """``"GRU"`` for a last module that ends in a GRU, else ``"module <m>"``."""
    last = encoder.num_modules - 1
    return "GRU" if module == last and encoder.config.modules[module].gru_hidden_size else f"module {module}"


def cnn_modules(encoder) -> list[int]:
    """The modules a decoder can decode: convolutional, without a GRU."""
    return [i for i, m in enumerate(encoder.config.modules) if m.conv_layers and not m.gru_hidden_size]


def collect(encoder, clips: torch.Tensor, modules: list[int], frames_per_clip: int, seed: int, batch: int = 16,
            ) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """Per module: pooled means ``(n, dim)`` and ``frames_per_clip`` random valid frames per clip of the mean and
    log-variance ``(n * frames_per_clip, dim)``."""
    generator = torch.Generator().manual_seed(seed)
    parts: dict[int, list] = {m: [[], [], []] for m in modules}
    for start in range(0, len(clips), batch):
        out = encoder.extract(clips[start:start + batch], sample_rate=encoder.sample_rate, modules=modules)
        for m in modules:
            f = out[m]
            parts[m][0].append(masked_time_mean(f.mean, f.lengths).float().cpu())
            pick = (torch.rand(len(f.lengths), frames_per_clip, generator=generator) * f.lengths[:, None]).long()
            rows = torch.arange(len(f.lengths))[:, None]
            parts[m][1].append(f.mean.cpu()[rows, pick].reshape(-1, f.dim).float())
            if f.logvar is not None:
                parts[m][2].append(f.logvar.cpu()[rows, pick].reshape(-1, f.dim).float())
    return {m: (torch.cat(p[0]), torch.cat(p[1]), torch.cat(p[2]) if p[2] else None) for m, p in parts.items()}


def probe_weights(fit: torch.Tensor, fit_labels: list[str], test: torch.Tensor, test_labels: list[str],
                  epochs: int, seed: int) -> tuple[torch.Tensor, float, list[str]]:
    """A bias-free linear probe on pooled means (spec 5.4): its weight ``(n_classes, dim)``, test accuracy (items
    whose label is not among the training labels are left out) and the class of each weight row."""
    classes = sorted(set(fit_labels))
    code = {c: i for i, c in enumerate(classes)}
    config = ProbeConfig(learning_rate=1e-3, epochs=epochs, batch_size=64, clip_grad_norm=None, bias=False,
                         seed=seed)
    probe, _ = fit_probe(LabelledFeatures(fit, torch.tensor([code[c] for c in fit_labels])), len(classes), config)
    known = [i for i, c in enumerate(test_labels) if c in code]
    accuracy = evaluate_probe(probe, LabelledFeatures(test[known], torch.tensor([code[test_labels[i]] for i in known])))
    return probe.linear.weight.detach().clone(), accuracy.value, classes


def kde_tc(rows: torch.Tensor, channels: int, repeats: int, seed: int) -> float | None:
    """Mean KDE total correlation over ``repeats`` random subsets of ``channels`` non-constant channels."""
    usable = torch.nonzero(rows.var(0) > 1e-10).reshape(-1)
    if channels < 2 or len(usable) < channels or repeats < 1:
        return None
    generator = torch.Generator().manual_seed(seed)
    rows = rows[:2000]
    values = [kde_total_correlation(rows[:, usable[torch.randperm(len(usable), generator=generator)[:channels]]])
              for _ in range(repeats)]
    return sum(values) / len(values)


def analyse_module(data: ModuleData, fit: Clips, test: Clips, settings: ReportSettings) -> tuple[dict, dict]:
    """Numbers (a table row, with why a measure is missing) and artefacts (stats, weights, their classes, feature
    std, t-SNE points, dimension ranking) of one module."""
    row: dict = {"dim": data.pooled_fit.shape[1], MISSING: {}}
    stats = posterior_stats(data.rows_mean[None], None if data.rows_logvar is None else data.rows_logvar[None])
    row.update(kl_total=stats.kl_total, n_active=stats.n_active)
    if stats.kl_total is None:
        row[MISSING]["kl_total"] = ("not a Gaussian module (a GRU or a deterministic module): no posterior to "
                                    "compare with the prior N(0, 1)")
    try:
        tc = gaussian_total_correlation(data.rows_mean)
        row.update(gaussian_tc=tc.value, gaussian_tc_per_dim=tc.value / tc.dim, gaussian_tc_detail=tc.as_dict())
    except ValueError as err:
        row["gaussian_tc_error"] = str(err)
        row[MISSING].update(gaussian_tc=f"no Gaussian TC: {err}", gaussian_tc_per_dim=f"no Gaussian TC: {err}")
    row["kde_tc"] = kde_tc(data.rows_mean, settings.kde_channels, settings.kde_repeats, settings.seed)
    if row["kde_tc"] is None:
        row[MISSING]["kde_tc"] = (f"no KDE TC: fewer than {settings.kde_channels} non-constant dimensions to draw "
                                  "subsets from (or KDE switched off)")
    weight, row["probe_accuracy"], classes = probe_weights(data.pooled_fit, fit.labels, data.pooled_test, test.labels,
                                                           settings.probe_epochs, settings.seed)
    std = data.pooled_fit.std(0)
    raw, scaled = weight_concentration(weight), weight_concentration(weight, feature_std=std)
    row.update(top4_share=raw.row_top_k_share[raw.top_k.index(4)], row_pr_fraction=raw.row_participation_fraction,
               dim_pr_fraction=raw.dim_participation_fraction, concentration=raw.as_dict(),
               concentration_per_std=scaled.as_dict())
    pooled, labels = torch.cat([data.pooled_fit, data.pooled_test]), fit.labels + test.labels
    row["knn_accuracy"] = knn_accuracy(pooled, labels) if len(labels) > 5 else None
    if row["knn_accuracy"] is None:
        row[MISSING]["knn_accuracy"] = "too few clips for 5 neighbours (needs 6 or more)"
    points = tsne_embedding(pooled, seed=settings.seed) if settings.tsne and len(labels) >= 8 else None
    ranking = torch.argsort(dimension_importance(weight * std[None]), descending=True)
    return row, {"stats": stats, "weight": weight, "classes": classes, "std": std, "tsne": points,
                 "ranking": ranking}


def build_report(models: Mapping[str, torch.nn.Module], corpus: Corpus, out_dir: str | Path,
                 settings: ReportSettings = ReportSettings(),
                 decoders: Mapping[str, Mapping[int, Sequence[GivenDecoder]]] | None = None) -> dict:
    """Run every analysis for ``models`` (``{name: encoder}``) on ``corpus`` and write the report to ``out_dir``.

    ``decoders``: ``{name: {module: [GivenDecoder, ...]}}`` to use instead of training new ones (see
    :func:`.report_decoders.find_report_decoders`); a module's decoder section prefers a waveform decoder, its
    example a log-mel one. Returns the content of ``report.json``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with timed("loading audio", timings, logger):
        data = load_data(corpus, settings)
    results = {name: analyse_model(name, encoder, data, settings, (decoders or {}).get(name, {}), out_dir, timings)
               for name, encoder in models.items()}
    with timed("figures", timings, logger):
        sections = [s for r in results.values() for s in r.example]
        sections += _measure_sections(models, results, data.fit.labels + data.test.labels)
        sections += [s for r in results.values() for s in r.sections]
    return _write(out_dir, data, settings, results, sections, timings)


def load_data(corpus: Corpus, settings: ReportSettings) -> ReportData:
    """The clips of both splits, the phone-labelled crops and the example clip."""
    fit = load_clips(corpus, "train", settings.n_files, settings.crop_samples, settings.seed)
    test = load_clips(corpus, "test", settings.n_test_files, settings.crop_samples, settings.seed)
    phone_fit = load_phone_clips(corpus, "train", settings.n_files, settings.crop_samples, settings.seed)
    phone_test = load_phone_clips(corpus, "test", settings.n_test_files, settings.crop_samples, settings.seed)
    example = choose_example(corpus, test, settings.example, settings.example_seconds)
    kind = "speaker" if corpus.kind == "librispeech" else getattr(corpus, "labels", "label").rstrip("s")
    return ReportData(corpus, fit, test, phone_fit, phone_test, example, kind)


def analyse_model(name: str, encoder, data: ReportData, settings: ReportSettings,
                  given: Mapping[int, Sequence[GivenDecoder]], out_dir: Path, timings: dict[str, float]) -> ModelResult:
    """Every measure, decoder section and the example of one model."""
    encoder.eval()
    result = ModelResult()
    modules = list(settings.modules) if settings.modules is not None else list(range(encoder.num_modules))
    with timed(f"{name}: features", timings, logger):
        fitted = collect(encoder, data.fit.audio, modules, 1, settings.seed)
        tested = collect(encoder, data.test.audio, modules, settings.frames_per_clip, settings.seed + 1)
    for m in modules:
        with timed(f"{name}: {module_label(encoder, m)} measures", timings, logger):
            module_data = ModuleData(fitted[m][0], tested[m][0], tested[m][1], tested[m][2])
            row, result.artefacts[m] = analyse_module(module_data, data.fit, data.test, settings)
        result.rows[m] = {"model": name, "module": module_label(encoder, m), **row}
    with timed(f"{name}: phone probes", timings, logger):
        _phone_probes(encoder, data, modules, settings, result)
    used = _decoder_sections(name, encoder, data, settings, given, out_dir, result, timings)
    with timed(f"{name}: example clip", timings, logger):
        _example(name, encoder, data, settings, used, out_dir, result)
    for m, row in result.rows.items():
        _explain_missing(row, measured=m in modules, gru=m not in cnn_modules(encoder))
    return result


def _phone_probes(encoder, data: ReportData, modules: list[int], settings: ReportSettings,
                  result: ModelResult) -> None:
    """A phone probe per module (its accuracy in the table, its weight for the example's traversal)."""
    if data.phone_fit is None or data.phone_test is None:
        split = "train" if data.phone_fit is None else "test"
        why = (f"no phone labels for the {split} split of this corpus (LibriSpeech100_labels_split/"
               "converted_aligned_phones.txt)")
        for m in modules:
            result.rows[m][MISSING]["phone_accuracy"] = why
        return
    fit = phone_features(encoder, data.phone_fit, modules)
    test = phone_features(encoder, data.phone_test, modules)
    names = data.corpus.phone_names()
    for m in modules:
        weight, classes, result.rows[m]["phone_accuracy"] = phone_probe(fit[m], test[m], settings.phone_probe_epochs,
                                                                         settings.seed)
        result.artefacts[m]["phone"] = top_dimension("phone", weight, [names.get(c, str(c)) for c in classes])


def _decoder_sections(name: str, encoder, data: ReportData, settings: ReportSettings,
                      given: Mapping[int, Sequence[GivenDecoder]], out_dir: Path, result: ModelResult,
                      timings: dict[str, float]) -> dict[int, list[GivenDecoder]]:
    """The decoder section of every decoded module; returns every decoder of the model, given or trained here."""
    used = {m: list(g) for m, g in given.items()}
    wanted = settings.decoder_modules if settings.decoder_modules is not None else cnn_modules(encoder)[-1:]
    for m in wanted:
        with timed(f"{name}: module {m} decoder", timings, logger):
            ranking = result.artefacts[m]["ranking"] if m in result.artefacts else None
            update, section, ics, decoder = decoder_analysis(name, encoder, m, data.fit, data.test, settings,
                                                             out_dir, prefer(used.get(m, []), ("waveform", "logmel")),
                                                             ranking)
        row = result.rows.setdefault(m, {"model": name, "module": module_label(encoder, m), MISSING: {}})
        row[MISSING].update(update.pop(MISSING, {}))
        row.update(update)
        result.sections.append(section)
        result.ics[f"{name}, module {m}"] = ics
        if decoder not in used.get(m, []):
            used.setdefault(m, []).append(decoder)
    return used


def _example(name: str, encoder, data: ReportData, settings: ReportSettings, used: Mapping[int, Sequence[GivenDecoder]],
             out_dir: Path, result: ModelResult) -> None:
    """The example clip's section, with every module that has a decoder (log-mel preferred)."""
    chosen = {m: d for m in sorted(used) if (d := prefer(used[m], ("logmel", "waveform"))) is not None}
    if not chosen:
        logger.info("%s: no decoders, so no example clip section", name)
        return
    picks: dict[int, list[TopDimension]] = {}
    for m, art in result.artefacts.items():
        picks[m] = [top_dimension(data.label_kind, art["weight"] * art["std"][None], art["classes"])]
        picks[m] += [art["phone"]] if "phone" in art else []
    section, result.records["example"] = example_section(name, encoder, data.example, chosen, picks,
                                                         settings.traversal_sd, out_dir)
    result.example.append(section)


def _explain_missing(row: dict, measured: bool, gru: bool) -> None:
    """Give every empty table cell of ``row`` a reason (those not already given)."""
    missing = row.setdefault(MISSING, {})
    for key, _, _ in COLUMNS:
        if row.get(key) is not None or key in missing:
            continue
        if key in DECODER_KEYS:
            missing[key] = ("the GRU module has no decoder (decoders exist for CNN modules)" if gru else
                            "not decoded in this report (--decoder-modules; default: the last CNN module)")
        else:
            missing[key] = "module not measured in this report (--modules)" if not measured else "not computed"


def _measure_sections(models: Mapping, results: Mapping[str, ModelResult], clip_labels: list[str]
                      ) -> list[ReportSection]:
    artefacts = {(n, m): a for n, r in results.items() for m, a in r.artefacts.items()}
    ics = {k: v for r in results.values() for k, v in r.ics.items()}
    labels = {key: f"{key[0]}, {module_label(models[key[0]], key[1])}" for key in artefacts}
    stats = {labels[k]: a["stats"] for k, a in artefacts.items()}
    weights = {labels[k]: a["weight"] for k, a in artefacts.items()}
    tsne = {labels[k]: (a["tsne"], clip_labels) for k, a in artefacts.items() if a["tsne"] is not None}
    sections = [
        ReportSection("Posterior collapse check", "Per-dimension KL of each posterior to N(0, 1) (Gaussian modules "
                      "only) and the variance of the posterior mean over frames and clips, both sorted; units above "
                      "the dashed line (0.01) are active.",
                      [ReportFigure("KL and activity per dimension", "Test clips, sampled frames.",
                                    figure_png(posterior_figure(stats)))]),
        ReportSection("Concentration of probe weights", "Weights of a bias-free linear probe on time-averaged "
                      "module means (the paper's speaker / vowel analysis), as a density of w / max|w|: a peak at 0 "
                      "with long tails means few dimensions carry the decision.",
                      [ReportFigure("Weight density", "KDE, bandwidth Scott x 0.5. w / max|w| runs from -1 to 1: a "
                                    "negative weight counts against its class.",
                                    figure_png(density_figure(weights)))]),
    ]
    if ics:
        pairs = next(iter(ics.values()))
        sections.append(ReportSection(
            "Interpolation contribution score", "Each test clip's latents with the k dimensions that differ most from "
            "another clip's swapped in, decoded and compared with that clip's decoding; the error relative to the "
            "whole difference. Lower at small k: what separates two sounds sits in fewer dimensions.",
            [ReportFigure("ICS", f"{pairs.n_pairs} random ordered pairs of {pairs.n_files} test clips.",
                          figure_png(ics_figure(ics)))]))
    if tsne:
        figure = ReportFigure("t-SNE", "All clips (train and test), time-averaged means, coloured by label (colours "
                              "repeat after 20); the table's kNN accuracy is leave-one-out on the same features.",
                              figure_png(tsne_figure(tsne)))
        sections.append(ReportSection("Pooled representations", "", [figure]))
    return sections


def _write(out_dir: Path, data: ReportData, settings: ReportSettings, results: Mapping[str, ModelResult],
           sections: list[ReportSection], timings: dict[str, float]) -> dict:
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(exist_ok=True)
    for section in sections:
        for figure in section.figures:
            slug = re.sub(r"[^a-z0-9]+", "-", f"{section.title}-{figure.title}".lower()).strip("-")
            (figures_dir / f"{slug}.png").write_bytes(figure.png)
    rows = [row for r in results.values() for _, row in sorted(r.rows.items())]
    fit, test, phones = data.fit, data.test, data.phone_fit
    report: dict = {"corpus": {"root": str(getattr(data.corpus, "root", "")), "kind": data.corpus.kind,
                         "fit_clips": len(fit), "test_clips": len(test), "fit_labels": len(set(fit.labels)),
                         "labels": data.label_kind, "phone_fit_clips": len(phones.clips) if phones else 0},
              "settings": asdict(settings), "rows": rows, "example": {n: r.records.get("example")
                                                                       for n, r in results.items()},
              "seconds": {k: round(v, 2) for k, v in timings.items()}}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    page = render_report("Smooth InfoMax interpretability report", _intro(data, settings, results), rows, sections,
                         report["settings"], report["seconds"], list(NOTES))
    (out_dir / "report.html").write_text(page, encoding="utf-8")
    return report


def _intro(data: ReportData, settings: ReportSettings, results: Mapping[str, ModelResult]) -> str:
    fit, test = data.fit, data.test
    example = (f"Example clip, decoded by every module that has a decoder: {data.example.item}."
               if any(r.example for r in results.values()) else "No example clip: no model has a decoder here.")
    phones = (f" Phone probes: {len(data.phone_fit.clips)} train crops of phone-labelled utterances fit them, "
              f"{len(data.phone_test.clips)} test crops measure them." if data.phone_fit and data.phone_test else
              " The corpus has no phone labels for both splits, so there are no phone probes.")
    return (f"{', '.join(results)} on the {data.corpus.kind} corpus {getattr(data.corpus, 'root', '')}: {len(fit)} "
            f"train clips ({len(set(fit.labels))} {data.label_kind}s) fit the {data.label_kind} probes and any "
            f"decoders trained here, {len(test)} test clips are measured; every clip is a crop of "
            f"{settings.crop_samples} samples ({settings.crop_samples / 16000:.2f} s).{phones} " + example)
