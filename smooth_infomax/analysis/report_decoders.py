"""The decoder part of the report for one model and module: take the model's own decoder (or one given, or train a
throwaway one), then reconstructions, draws from the prior, traversals, interpolations and the ICS, as numbers,
log-mel pictures and WAV files. Either decoder kind works: a log-mel decoder's audio comes from Griffin-Lim, a
waveform decoder's pictures from the log-mel of its audio."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .decoder_training import DecoderTrainConfig, encode_for_decoder, train_decoder
from .figures import figure_png, logmel_grid, loss_figure
from .ics import IcsResult, interpolation_contribution_score
from .latents import interpolate, posterior_sd, sample_prior, shift_grid_sd, write_wavs
from .logmel import LogMelDecoder, log_mel
from .model_decoders import (
    DISPLAY_SETTINGS,
    AnyDecoder,
    decode_views,
    encoder_pin,
    find_decoders,
    kind_of,
    load_decoder,
)
from .report_html import MISSING, ReportFigure, ReportSection

logger = logging.getLogger(__name__)

N_EXAMPLES = 3
N_PRIOR = 4
INTERPOLATION_STEPS = 5
INTERPOLATION_TOP_K = 8
POOR_RECONSTRUCTION = 0.5
"""Reconstruction MSE (as a fraction of the signal power) above which the report warns that a waveform decoder is
too weak for its decoder-based measures to mean much."""
POOR_LOGMEL_RATIO = 0.8
"""Log-mel error, as a fraction of the per-clip-mean baseline's, above which the report gives the same warning."""


@dataclass(frozen=True)
class GivenDecoder:
    """A decoder the report uses instead of training one, and where it came from (shown in the page)."""

    decoder: AnyDecoder
    source: str

    @property
    def kind(self) -> str:
        return kind_of(self.decoder)


def slug(text: str) -> str:
    """A file-name-safe version of ``text``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "model"


@contextmanager
def timed(label: str, timings: dict[str, float] | None = None, log: logging.Logger = logger) -> Iterator[None]:
    """Log ``label`` when it starts and, with its seconds, when it ends; record the seconds in ``timings``."""
    log.info("%s ...", label)
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    if timings is not None:
        timings[label] = seconds
    log.info("%s: done in %.1f s", label, seconds)


def prefer(given: Sequence[GivenDecoder], kinds: Sequence[str]) -> GivenDecoder | None:
    """The first of ``given`` whose kind comes first in ``kinds``; ``None`` when none matches."""
    ranked = sorted((g for g in given if g.kind in kinds), key=lambda g: kinds.index(g.kind))
    return ranked[0] if ranked else None


def find_report_decoders(name: str, source: str, encoder, modules: Sequence[int], decoder_dir: Path | None = None,
                         ) -> dict[int, list[GivenDecoder]]:
    """Decoders for ``modules`` of ``encoder`` (loaded from ``source``): ``decoder_dir/<name>/module-<m>/`` first,
    then the model's own (``decoders/module-<m>/<kind>/``, or the older ``decoders/module-<m>/``), at most one per
    kind and module, each checked against the encoder's pin."""
    pin = encoder_pin(encoder)
    found: dict[int, list[GivenDecoder]] = {}
    for m in modules:
        folder = decoder_dir / slug(name) / f"module-{m}" if decoder_dir is not None else None
        if folder is not None and (folder / "config.json").is_file():
            found.setdefault(m, []).append(GivenDecoder(load_decoder(folder, encoder_sha256=pin), f"from {folder}"))
    try:
        shipped, commit = find_decoders(source, encoder.revision)
    except Exception as err:  # noqa: BLE001 -- a model without a decoders folder (or offline): none of its own
        logger.info("%s: no decoders of its own (%s)", name, err)
        return found
    for item in sorted(shipped, key=lambda f: -f.subfolder.count("/")):  # the new layout wins over the old
        have = found.setdefault(item.module, [])
        if item.module in modules and all(g.kind != item.kind for g in have):
            decoder = load_decoder(source, item.subfolder, commit or encoder.revision, pin)
            have.append(GivenDecoder(decoder, f"the model's own {item.subfolder}"))
            logger.info("%s: module %d: using the model's own %s decoder", name, item.module, item.kind)
    return {m: g for m, g in found.items() if g}


class _FlatLogMel(torch.nn.Module):
    """A log-mel decoder as :func:`.latents.decode` calls a decoder: ``(n, frames, dim)`` -> ``(n, frames * n_mels)``
    (the ICS then compares log-mel frames instead of waveforms)."""

    def __init__(self, decoder: LogMelDecoder):
        super().__init__()
        self.decoder = decoder

    def forward(self, latents: torch.Tensor, num_samples: int | None = None) -> torch.Tensor:
        return self.decoder(latents).flatten(1)


def logmel_errors(decoded: torch.Tensor, target: torch.Tensor) -> dict[str, float | None]:
    """Mean absolute log-mel error (nats) of ``decoded`` against ``target`` (both ``(n, frames, n_mels)``), the same
    error of each clip's own mean spectrum repeated on every frame, and their ratio."""
    error = float((decoded - target).abs().mean())
    baseline = float((target.mean(1, keepdim=True) - target).abs().mean())
    return {"logmel_mae": error, "logmel_baseline_mae": baseline,
            "logmel_error_ratio": error / baseline if baseline > 0 else None}


def train_throwaway(name: str, encoder, module: int, fit, settings, out_dir: Path, section: ReportSection
                    ) -> tuple[GivenDecoder, dict]:
    """Train a waveform decoder briefly (the report's settings), save it under ``out_dir/decoders/`` and add its
    loss curve to ``section``."""
    gaussian = encoder.config.modules[module].is_gaussian
    config = DecoderTrainConfig(steps=settings.decoder_steps, batch_size=settings.decoder_batch,
                                learning_rate=settings.decoder_learning_rate, loss=settings.decoder_loss,
                                sample=gaussian and settings.decoder_latents == "sample", seed=settings.seed)
    with timed(f"{name}: module {module}: training a decoder ({settings.decoder_steps} steps)"):
        decoder, losses = train_decoder(encoder, fit.audio, module, config, hidden_channels=settings.decoder_hidden)
    decoder.config = replace(decoder.config, encoder_sha256=encoder_pin(encoder))
    decoder.save_pretrained(out_dir / "decoders" / slug(name) / f"module-{module}")
    row: dict = {}
    if losses:
        row["decoder_final_loss"] = losses[-1]
        section.figures.append(ReportFigure("Training loss", f"{config.loss}, batch {config.batch_size}, "
                                            f"lr {config.learning_rate}, hidden {settings.decoder_hidden}.",
                                            figure_png(loss_figure({f"{name}, module {module}": losses}))))
    return GivenDecoder(decoder, f"trained here: {settings.decoder_steps} steps, width {settings.decoder_hidden}"), row


def decoder_analysis(name: str, encoder, module: int, fit, test, settings, out_dir: Path,
                     given: GivenDecoder | None = None, ranking: torch.Tensor | None = None,
                     ) -> tuple[dict, ReportSection, IcsResult, GivenDecoder]:
    """Everything decoder-based for ``module`` of ``encoder``: table entries, a report section, the ICS and the
    decoder used (``given``, or one trained here when ``None``).

    ``ranking``: dimensions, most important first (from the probe), to traverse; default: highest variance.
    """
    section = ReportSection(f"{name}, module {module}: decoder")
    row: dict = {MISSING: {}}
    if given is None:
        given, trained = train_throwaway(name, encoder, module, fit, settings, out_dir, section)
        row.update(trained)
    row.update(decoder_source=given.source, decoder_kind=given.kind)
    mean, logvar = encode_for_decoder(encoder, test.audio, module)
    with timed(f"{name}: module {module}: reconstructions, prior, traversal, interpolation"):
        views = DecodedViews(given.decoder, test.audio.shape[-1], out_dir / "audio" / slug(name) / f"module-{module}",
                             out_dir)
        row.update(_reconstructions(section, views, mean, test))
        if encoder.config.modules[module].is_gaussian:
            _prior(section, views, mean.shape[1], mean.shape[2], settings.seed)
        _traversal(section, views, mean, logvar, ranking, settings)
        _interpolation(section, views, mean, test.labels)
    section.text = _decoder_text(module, row)
    with timed(f"{name}: module {module}: ICS ({settings.ics_pairs} pairs)"):
        ics = _ics(given.decoder, mean, settings, test.audio.shape[-1])
    row.update(ics_mean_relative=ics.mean_relative, ics=ics.as_dict())
    return row, section, ics, given


def _ics(decoder: AnyDecoder, mean: torch.Tensor, settings, samples: int) -> IcsResult:
    target = _FlatLogMel(decoder) if isinstance(decoder, LogMelDecoder) else decoder
    generator = torch.Generator().manual_seed(settings.seed)
    return interpolation_contribution_score(target, mean, settings.ics_ks, settings.ics_pairs, samples,
                                            generator=generator)


def _decoder_text(module: int, row: dict) -> str:
    kind = "log-mel" if row["decoder_kind"] == "logmel" else "waveform"
    text = (f"The {kind} decoder of module {module} ({row['decoder_source']}). On the test clips its log-mel is off "
            f"by {row['logmel_mae']:.2f} nats on average, {row['logmel_error_ratio']:.0%} of the error of each "
            "clip's own mean spectrum (the per-clip-mean baseline)")
    if row.get("reconstruction_error") is not None:
        text += f"; its waveform MSE is {row['reconstruction_error']:.3f} of the signal power"
    text += (". All latents below are posterior means; pictures are log-mel spectrograms (low frequencies at the "
             "bottom), on one colour scale per picture.")
    if kind == "log-mel":
        text += " Its audio is Griffin-Lim's (buzzy); its ICS compares log-mel frames instead of waveforms."
    poor = (row.get("reconstruction_error") or 0) > POOR_RECONSTRUCTION or \
        (row.get("logmel_error_ratio") or 0) > POOR_LOGMEL_RATIO
    if poor:
        text += (" Warning: this decoder reconstructs poorly, so its ICS and pictures say little about the encoder; "
                 "train a better one (python -m training.train_decoders, or sim-analyze train-decoder and "
                 "--decoders).")
    return text


@dataclass
class DecodedViews:
    """Decodes latents with one decoder to log-mel pictures and WAV files of ``samples`` samples each."""

    decoder: AnyDecoder
    samples: int
    audio_dir: Path
    out_dir: Path

    def decode(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(n, frames, dim)`` -> log-mel ``(n, mel_frames, n_mels)`` and audio ``(n, samples)``."""
        logmel, audio, _ = decode_views(self.decoder, latents, self.samples)
        return logmel, audio

    def input_logmel(self, audio: torch.Tensor, frames: int) -> torch.Tensor:
        """Log-mel ``(n, frames, n_mels)`` of input ``audio (n, samples)`` with the front end of this decoder's
        pictures."""
        settings = self.decoder.config.settings if isinstance(self.decoder, LogMelDecoder) else DISPLAY_SETTINGS
        return log_mel(audio, settings, frames=frames)

    def add(self, section: ReportSection, prefix: str, logmels: torch.Tensor | Sequence[Sequence[torch.Tensor]],
            waves: torch.Tensor,
            row_labels: list[str], column_labels: list[str], title: str, caption: str,
            cell_width_in: float = 1.5) -> None:
        """Add a log-mel grid of ``logmels (rows, columns, frames, n_mels)`` to ``section`` and write
        ``waves (rows, columns, samples)`` as WAVs linked from it."""
        seconds = self.samples / self.decoder.config.sample_rate
        picture = logmel_grid(list(logmels), row_labels, column_labels, seconds, cell_width_in=cell_width_in)
        section.figures.append(ReportFigure(title, caption, figure_png(picture)))
        for r, label in enumerate(row_labels):
            paths = write_wavs(waves[r], self.audio_dir, slug(f"{prefix}-{label}"))
            text = f"{prefix} {' '.join(label.split())}"
            section.audio.extend((f"{text}: {column}", p.relative_to(self.out_dir).as_posix())
                                 for column, p in zip(column_labels, paths, strict=True))


def _reconstructions(section: ReportSection, views: DecodedViews, mean: torch.Tensor, test) -> dict:
    logmel, audio = views.decode(mean)
    target = views.input_logmel(test.audio, logmel.shape[1])
    row: dict = dict(logmel_errors(logmel, target))
    if isinstance(views.decoder, LogMelDecoder):
        row[MISSING] = {"reconstruction_error": "a log-mel decoder makes no waveform of its own (see the log-mel "
                                                "error column)"}
    else:
        power = (test.audio ** 2).mean().clamp_min(1e-12)
        row["reconstruction_error"] = float(((audio - test.audio) ** 2).mean() / power)
    show = min(N_EXAMPLES, len(test))
    views.add(section, "reconstruction", torch.stack([target[:show], logmel[:show]]),
              torch.stack([test.audio[:show], audio[:show]]), ["input", "decoded"],
              [test.labels[i] for i in range(show)], "Reconstructions",
              "Test clips: input and decoded posterior means.")
    return row


def _prior(section: ReportSection, views: DecodedViews, frames: int, dim: int, seed: int) -> None:
    logmel, audio = views.decode(sample_prior(N_PRIOR, frames, dim, torch.Generator().manual_seed(seed)))
    views.add(section, "prior", logmel[None], audio[None], ["N(0, I)"], [f"draw {i}" for i in range(N_PRIOR)],
              "Draws from the prior", "Latents drawn from N(0, I) and decoded, as the reference's callbacks do.")


def _traversal(section: ReportSection, views: DecodedViews, mean: torch.Tensor, logvar: torch.Tensor | None,
               ranking: torch.Tensor | None, settings) -> None:
    order = ranking if ranking is not None else torch.argsort(mean.reshape(-1, mean.shape[-1]).std(0),
                                                              descending=True)
    dims = [int(d) for d in order[: settings.traversal_dims]]
    if not dims:
        return
    sd = posterior_sd(mean[0], None if logvar is None else logvar[0])
    grid = shift_grid_sd(mean[0], sd, dims, settings.traversal_sd)  # (dims, shifts, frames, dim)
    logmel, audio = views.decode(grid.flatten(0, 1))
    shape = (len(dims), len(settings.traversal_sd))
    unit = "sd" if logvar is not None else "sd of mean"
    views.add(section, "traversal", logmel.reshape(*shape, *logmel.shape[1:]), audio.reshape(*shape, -1),
              [f"dim {d} (1 {unit} = {float(sd[d]):.3g})" for d in dims],
              [f"{v:+g} {unit}" for v in settings.traversal_sd], "Latent traversal",
              "Test clip 0 with one dimension shifted on every frame by multiples of its posterior standard deviation "
              "(exp(logvar / 2) averaged over the clip's frames; for a deterministic module, the standard deviation "
              "of the dimension over the frames); negative shifts lower the dimension, +0 is the plain "
              "reconstruction. Dimensions: those the label probe relies on most (weight x feature std).")


def _interpolation(section: ReportSection, views: DecodedViews, mean: torch.Tensor, labels: list[str]) -> None:
    other = next((i for i, label in enumerate(labels) if label != labels[0]), 1 if len(labels) > 1 else None)
    if other is None:
        return
    k = min(INTERPOLATION_TOP_K, mean.shape[-1])
    full = interpolate(mean[0], mean[other], INTERPOLATION_STEPS)
    partial = interpolate(mean[0], mean[other], INTERPOLATION_STEPS, top_k=k)
    logmel, audio = views.decode(torch.cat([full, partial]))
    alphas = [f"alpha {a:.2f}" for a in torch.linspace(0, 1, INTERPOLATION_STEPS).tolist()]
    views.add(section, "interpolation", logmel.reshape(2, INTERPOLATION_STEPS, *logmel.shape[1:]),
              audio.reshape(2, INTERPOLATION_STEPS, -1), ["all dims", f"top-{k} dims"], alphas, "Interpolation",
              f"From test clip 0 ({labels[0]}) to clip {other} ({labels[other]}): every dimension, or only the {k} "
              "whose time-averaged means differ most.")

