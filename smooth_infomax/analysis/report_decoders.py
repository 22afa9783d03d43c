"""The decoder part of the report for one model and module: train (or take) a decoder, then reconstructions,
draws from the prior, traversals, interpolations and the ICS, as numbers, figures and WAV files."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from .decoder import ModuleDecoder
from .decoder_training import DecoderTrainConfig, encode_for_decoder, train_decoder
from .figures import figure_png, loss_figure, spectrogram_grid
from .ics import IcsResult, interpolation_contribution_score
from .latents import decode, interpolate, sample_prior, traversal_grid, write_wavs
from .report_html import ReportFigure, ReportSection

N_EXAMPLES = 3
N_PRIOR = 4
INTERPOLATION_STEPS = 5
INTERPOLATION_TOP_K = 8
POOR_RECONSTRUCTION = 0.5
"""Reconstruction MSE (as a fraction of the signal power) above which the report warns that the decoder is too
weak for its decoder-based measures to mean much."""


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


def decoder_analysis(name: str, encoder, module: int, fit, test, settings, out_dir: Path,
                     decoder: ModuleDecoder | None = None, ranking: torch.Tensor | None = None,
                     ) -> tuple[dict, ReportSection, IcsResult]:
    """Everything decoder-based for ``module`` of ``encoder``; returns table entries, a report section and the ICS.

    ``ranking``: dimensions, most important first (from the probe), to traverse; default: highest variance.
    """
    gaussian = encoder.config.modules[module].is_gaussian
    section = ReportSection(f"{name}, module {module}: decoder")
    row: dict = {}
    if decoder is None:
        config = DecoderTrainConfig(steps=settings.decoder_steps, batch_size=settings.decoder_batch,
                                    learning_rate=settings.decoder_learning_rate, loss=settings.decoder_loss,
                                    sample=gaussian and settings.decoder_latents == "sample", seed=settings.seed)
        decoder, losses = train_decoder(encoder, fit.audio, module, config, hidden_channels=settings.decoder_hidden)
        decoder.save_pretrained(out_dir / "decoders" / slug(name) / f"module-{module}")
        row["decoder_source"] = f"trained here: {settings.decoder_steps} steps"
        if losses:
            row["decoder_final_loss"] = losses[-1]
            section.figures.append(ReportFigure("Training loss", f"{config.loss}, batch {config.batch_size}, "
                                                f"lr {config.learning_rate}, hidden {settings.decoder_hidden}.",
                                                figure_png(loss_figure({f"{name}, module {module}": losses}))))
    else:
        row["decoder_source"] = "given"
    audio_dir = out_dir / "audio" / slug(name) / f"module-{module}"
    samples = test.audio.shape[-1]
    mean, _ = encode_for_decoder(encoder, test.audio, module)
    rebuilt = decode(decoder, mean, samples)
    power = (test.audio ** 2).mean().clamp_min(1e-12)
    row["reconstruction_error"] = float(((rebuilt - test.audio) ** 2).mean() / power)
    section.text = (f"Decoder of module {module} ({row['decoder_source']}); test-clip reconstruction MSE is "
                    f"{row['reconstruction_error']:.3f} of the signal power. All latents below are posterior means.")
    if row["reconstruction_error"] > POOR_RECONSTRUCTION:
        section.text += (" Warning: this decoder reconstructs poorly, so its ICS and pictures say little about the "
                         "encoder; train it longer (sim-analyze train-decoder) and pass it with --decoders.")
    show = min(N_EXAMPLES, len(test))
    _add(section, audio_dir, out_dir, "reconstruction", torch.stack([test.audio[:show], rebuilt[:show]]),
         ["original", "decoded"], [test.labels[i] for i in range(show)], "Reconstructions", "Test clips.")
    if gaussian:
        prior = decode(decoder, sample_prior(N_PRIOR, mean.shape[1], mean.shape[2],
                                             torch.Generator().manual_seed(settings.seed)), samples)
        _add(section, audio_dir, out_dir, "prior", prior[None], ["N(0, I)"], [f"draw {i}" for i in range(N_PRIOR)],
             "Draws from the prior", "Latents drawn from N(0, I) and decoded, as the reference's callbacks do.")
    _traversal(section, decoder, mean, ranking, settings, audio_dir, out_dir, samples)
    _interpolation(section, decoder, mean, test.labels, audio_dir, out_dir, samples)
    generator = torch.Generator().manual_seed(settings.seed)
    ics = interpolation_contribution_score(decoder, mean, settings.ics_ks, settings.ics_pairs, samples,
                                           generator=generator)
    row.update(ics_mean_relative=ics.mean_relative, ics=ics.as_dict())
    return row, section, ics


def _add(section: ReportSection, audio_dir: Path, out_dir: Path, prefix: str, waves: torch.Tensor,
         row_labels: list[str], column_labels: list[str], title: str, caption: str) -> None:
    """Add a spectrogram grid of ``waves (rows, columns, samples)`` and write its WAVs."""
    section.figures.append(ReportFigure(title, caption, figure_png(spectrogram_grid(waves, row_labels, column_labels))))
    for r, label in enumerate(row_labels):
        paths = write_wavs(waves[r], audio_dir, slug(f"{prefix}-{label}"))
        section.audio.extend((f"{prefix} {label} {i}", p.relative_to(out_dir).as_posix()) for i, p in enumerate(paths))


def _traversal(section, decoder, mean, ranking, settings, audio_dir, out_dir, samples) -> None:
    frames = mean.reshape(-1, mean.shape[-1])
    std = frames.std(0)
    order = ranking if ranking is not None else torch.argsort(std, descending=True)
    dims = [int(d) for d in order[: settings.traversal_dims]]
    if not dims:
        return
    base = mean[0]
    grid = torch.stack([traversal_grid(base, [d], torch.tensor(settings.traversal_std) * std[d], "shift")[0]
                        for d in dims])  # (dims, values, frames, dim)
    waves = decode(decoder, grid.flatten(0, 1), samples).reshape(len(dims), len(settings.traversal_std), -1)
    _add(section, audio_dir, out_dir, "traversal", waves, [f"dim {d}" for d in dims],
         [f"{v:+g} std" for v in settings.traversal_std], "Latent traversal",
         "Test clip 0 with one dimension shifted by multiples of its standard deviation over test frames; dimensions "
         "are those the probe relies on most (weight x feature std).")


def _interpolation(section, decoder, mean, labels, audio_dir, out_dir, samples) -> None:
    other = next((i for i, label in enumerate(labels) if label != labels[0]), 1 if len(labels) > 1 else None)
    if other is None:
        return
    k = min(INTERPOLATION_TOP_K, mean.shape[-1])
    full = interpolate(mean[0], mean[other], INTERPOLATION_STEPS)
    partial = interpolate(mean[0], mean[other], INTERPOLATION_STEPS, top_k=k)
    waves = decode(decoder, torch.cat([full, partial]), samples).reshape(2, INTERPOLATION_STEPS, -1)
    alphas = [f"alpha {a:.2f}" for a in torch.linspace(0, 1, INTERPOLATION_STEPS).tolist()]
    _add(section, audio_dir, out_dir, "interpolation", waves, ["all dims", f"top-{k} dims"], alphas,
         "Interpolation", f"From test clip 0 ({labels[0]}) to clip {other} ({labels[other]}): every dimension, or "
         f"only the {k} whose time-averaged means differ most.")
