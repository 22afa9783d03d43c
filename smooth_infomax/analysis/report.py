"""``sim-analyze report``: every analysis for one or more encoders on one corpus, as an HTML page.

For each model and module: KL per dimension and active units, Gaussian and KDE total correlation, a bias-free
linear probe on time-averaged means with the concentration of its weights, kNN accuracy and a t-SNE of pooled
features; for the decoder modules: a decoder (loaded or trained briefly), reconstructions, draws from the prior,
traversals, interpolations and the ICS. Writes ``report.html`` (self-contained), ``report.json`` (every number
and setting), ``figures/*.png``, ``audio/**.wav`` and ``decoders/<model>/module-<m>/`` (decoders it trained).

Data: ``n_files`` clips of the train split fit the probes and decoders; ``n_test_files`` clips of the test split
are measured (probe accuracy, posterior statistics, total correlation, ICS, examples). kNN accuracy and t-SNE,
which fit nothing, use all clips.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
from .ics import DEFAULT_KS
from .information import (
    gaussian_total_correlation,
    kde_total_correlation,
    posterior_stats,
)
from .probes import LabelledFeatures, ProbeConfig, evaluate_probe, fit_probe
from .report_html import ReportFigure, ReportSection, render_report

NOTES = (
    ("Gaussian TC: -1/2 log det of the correlation matrix of sampled test frames, minus its closed-form bias for "
     "independent Gaussian rows; a lower bound on TC for non-Gaussian data."),
    "KDE TC: leave-one-out Gaussian KDE on random subsets of a few channels (standardised, Scott bandwidth).",
    ("Participation ratio (sum w^2)^2 / sum w^4: effective number of dimensions, shown as a fraction of dim; rows = "
     "per class, dims = per-dimension importance over all classes."),
    ("A dash (–) means the measure does not apply: KL to the prior exists only for Gaussian modules (not the GRU "
     "or deterministic GIM modules), and the ICS and reconstruction columns only for modules with a decoder."),
    ("Negative values: the Gaussian TC is bias-corrected (the expected estimate for independent dimensions is "
     "subtracted), so dimensions that are close to independent can come out slightly below 0; the KDE TC is a "
     "difference of leave-one-out entropy estimates and can too. Both mean 'no measurable dependence'."),
)
"""Explanations printed under the report's table."""


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
    traversal_dims: int = 4
    traversal_std: tuple[float, ...] = (-3.0, -1.5, 0.0, 1.5, 3.0)
    tsne: bool = True
    seed: int = 0


@dataclass
class ModuleData:
    """One module's features: pooled ``(clips, dim)`` for fit and test clips, and sampled test frames
    ``(rows, dim)`` of the posterior mean and log-variance (``None`` for deterministic modules)."""

    pooled_fit: torch.Tensor
    pooled_test: torch.Tensor
    rows_mean: torch.Tensor
    rows_logvar: torch.Tensor | None


def module_label(encoder, module: int) -> str:
    last = encoder.num_modules - 1
    return "GRU" if module == last and encoder.config.modules[module].gru_hidden_size else f"module {module}"


def cnn_modules(encoder) -> list[int]:
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
                  epochs: int, seed: int) -> tuple[torch.Tensor, float]:
    """A bias-free linear probe on pooled means (spec 5.4): its weight ``(n_classes, dim)`` and test accuracy
    (items whose label is not among the training labels are left out)."""
    classes = sorted(set(fit_labels))
    code = {c: i for i, c in enumerate(classes)}
    config = ProbeConfig(learning_rate=1e-3, epochs=epochs, batch_size=64, clip_grad_norm=None, bias=False,
                         seed=seed)
    probe, _ = fit_probe(LabelledFeatures(fit, torch.tensor([code[c] for c in fit_labels])), len(classes), config)
    known = [i for i, c in enumerate(test_labels) if c in code]
    accuracy = evaluate_probe(probe, LabelledFeatures(test[known], torch.tensor([code[test_labels[i]] for i in known])))
    return probe.linear.weight.detach().clone(), accuracy.value


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
    """Numbers (a table row) and artefacts (stats, weights, t-SNE points, dimension ranking) of one module."""
    row: dict = {"dim": data.pooled_fit.shape[1]}
    stats = posterior_stats(data.rows_mean[None], None if data.rows_logvar is None else data.rows_logvar[None])
    row.update(kl_total=stats.kl_total, n_active=stats.n_active)
    try:
        tc = gaussian_total_correlation(data.rows_mean)
        row.update(gaussian_tc=tc.value, gaussian_tc_per_dim=tc.value / tc.dim, gaussian_tc_detail=tc.as_dict())
    except ValueError as err:
        row["gaussian_tc_error"] = str(err)
    row["kde_tc"] = kde_tc(data.rows_mean, settings.kde_channels, settings.kde_repeats, settings.seed)
    weight, row["probe_accuracy"] = probe_weights(data.pooled_fit, fit.labels, data.pooled_test, test.labels,
                                                  settings.probe_epochs, settings.seed)
    std = data.pooled_fit.std(0)
    raw, scaled = weight_concentration(weight), weight_concentration(weight, feature_std=std)
    row.update(top4_share=raw.row_top_k_share[raw.top_k.index(4)], row_pr_fraction=raw.row_participation_fraction,
               dim_pr_fraction=raw.dim_participation_fraction, concentration=raw.as_dict(),
               concentration_per_std=scaled.as_dict())
    pooled, labels = torch.cat([data.pooled_fit, data.pooled_test]), fit.labels + test.labels
    row["knn_accuracy"] = knn_accuracy(pooled, labels) if len(labels) > 5 else None
    points = tsne_embedding(pooled, seed=settings.seed) if settings.tsne and len(labels) >= 8 else None
    ranking = torch.argsort(dimension_importance(weight * std[None]), descending=True)
    return row, {"stats": stats, "weight": weight, "tsne": points, "ranking": ranking}


def build_report(models: dict, corpus: Corpus, out_dir: str | Path, settings: ReportSettings = ReportSettings(),
                 decoders: dict | None = None, log: Callable[[str], None] = print) -> dict:
    """Run every analysis for ``models`` (``{name: encoder}``) on ``corpus`` and write the report to ``out_dir``.

    ``decoders``: ``{(name, module): ModuleDecoder}`` to use instead of training new ones. Returns the content of
    ``report.json``.
    """
    from .report_decoders import decoder_analysis

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    fit = load_clips(corpus, "train", settings.n_files, settings.crop_samples, settings.seed)
    test = load_clips(corpus, "test", settings.n_test_files, settings.crop_samples, settings.seed)
    timings["load audio"] = time.perf_counter() - clock
    rows, artefacts, sections, ics = [], {}, [], {}
    for name, encoder in models.items():
        encoder.eval()
        modules = list(settings.modules) if settings.modules is not None else list(range(encoder.num_modules))
        clock = time.perf_counter()
        fitted = collect(encoder, fit.audio, modules, 1, settings.seed)
        tested = collect(encoder, test.audio, modules, settings.frames_per_clip, settings.seed + 1)
        timings[f"{name}: features"] = time.perf_counter() - clock
        for m in modules:
            clock = time.perf_counter()
            data = ModuleData(fitted[m][0], tested[m][0], tested[m][1], tested[m][2])
            row, art = analyse_module(data, fit, test, settings)
            rows.append({"model": name, "module": module_label(encoder, m), **row})
            artefacts[(name, m)] = art
            timings[f"{name}: {module_label(encoder, m)} measures"] = time.perf_counter() - clock
        wanted = settings.decoder_modules if settings.decoder_modules is not None else cnn_modules(encoder)[-1:]
        for m in wanted:
            clock = time.perf_counter()
            given = (decoders or {}).get((name, m))
            ranking = artefacts[(name, m)]["ranking"] if (name, m) in artefacts else None
            update, section, ics[f"{name}, module {m}"] = decoder_analysis(name, encoder, m, fit, test, settings,
                                                                          out_dir, given, ranking)
            entry = next((r for r in rows if r["model"] == name and r["module"] == module_label(encoder, m)), None)
            if entry is None:
                rows.append(entry := {"model": name, "module": module_label(encoder, m)})
            entry.update(update)
            sections.append(section)
            timings[f"{name}: module {m} decoder"] = time.perf_counter() - clock
        log(f"{name}: done")
    clock = time.perf_counter()
    sections = _measure_sections(models, artefacts, fit.labels + test.labels, ics) + sections
    timings["figures"] = time.perf_counter() - clock
    return _write(out_dir, corpus, fit, test, settings, rows, sections, timings)


def _measure_sections(models: dict, artefacts: dict, clip_labels: list[str], ics: dict) -> list[ReportSection]:
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
                      [ReportFigure("Weight density", "KDE, bandwidth Scott x 0.5.",
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


def _write(out_dir: Path, corpus, fit: Clips, test: Clips, settings, rows, sections, timings) -> dict:
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(exist_ok=True)
    for section in sections:
        for figure in section.figures:
            slug = re.sub(r"[^a-z0-9]+", "-", f"{section.title}-{figure.title}".lower()).strip("-")
            (figures_dir / f"{slug}.png").write_bytes(figure.png)
    report = {"corpus": {"root": str(getattr(corpus, "root", "")), "kind": corpus.kind, "fit_clips": len(fit),
                         "test_clips": len(test), "fit_labels": len(set(fit.labels))},
              "settings": asdict(settings), "rows": rows, "seconds": {k: round(v, 2) for k, v in timings.items()}}
    (out_dir / "report.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    names = ", ".join(dict.fromkeys(r["model"] for r in rows))
    intro = (f"{names} on {corpus.kind} corpus {report['corpus']['root']}: {len(fit)} train clips "
             f"({len(set(fit.labels))} labels) fit probes and decoders, {len(test)} test clips of "
             f"{settings.crop_samples} samples are measured.")
    page = render_report("Smooth InfoMax interpretability report", intro, rows, sections, report["settings"],
                         report["seconds"], list(NOTES))
    (out_dir / "report.html").write_text(page, encoding="utf-8")
    return report
