"""The report's example clip: one utterance of the corpus's test split (the page names it), its input log-mel beside
the reconstruction from each module that has a decoder, and a traversal of the dimension each probe (speaker or
other clip label, and phone class) weighs most, shifted in posterior standard deviations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch

from ..audio import load_audio
from .corpus import Clips, Corpus
from .decoder_training import encode_for_decoder
from .features import LABEL_HOP_SAMPLES
from .figures import figure_png, logmel_change_grid
from .latents import posterior_sd, shift_grid_sd
from .logmel import log_mel
from .model_decoders import DISPLAY_SETTINGS
from .report_decoders import DecodedViews, GivenDecoder, logmel_errors, slug
from .report_html import ReportFigure, ReportSection
from .report_phones import TopDimension

EXAMPLE_CELL_INCHES = 9.0
"""Width of the example's reconstruction pictures (one cell per row)."""
TRAVERSAL_CELL_INCHES = 2.1


@dataclass(frozen=True)
class ExampleClip:
    """The example: its corpus item, file, the first ``max_seconds`` of its audio ``(samples,)``, its phone labels
    over those samples (empty when it has none) and what the corpus records about it."""

    item: str
    path: Path
    audio: torch.Tensor
    phones: list[int]
    info: dict[str, str]
    chosen: str = ""

    def describe(self) -> str:
        """One sentence naming the clip, its length and what the corpus says about it."""
        extra = "; ".join(f"{k}: {v}" for k, v in self.info.items() if k in _SHOWN)
        return (f"Clip {self.item} ({self.path}), its first {self.audio.numel() / 16000:.2f} s"
                + (f" ({extra})" if extra else "") + f"; {self.chosen}.")


_SHOWN = ("transcript", "words", "voice", "language", "licence", "package")


def choose_example(corpus: Corpus, test: Clips, wanted: str | None, max_seconds: float) -> ExampleClip:
    """``wanted`` (a corpus item), or the longest of the test clips' utterances, preferring those with phone labels;
    cut to its first ``max_seconds``."""
    phones = corpus.phone_labels()
    chosen = "chosen with --example"
    if wanted is not None:
        item = wanted
    else:
        names = list(dict.fromkeys(test.names))
        labelled = [n for n in names if n in phones]
        item = max(labelled or names, key=lambda n: (sf.info(str(corpus.path(n))).frames, n))
        chosen = (f"the longest of the measured test clips' utterances{' with phone labels' if labelled else ''} "
                  "(choose another with --example)")
    path = corpus.path(item)
    audio = load_audio(path)[: int(max_seconds * 16000)]
    labels = phones.get(item, [])[: audio.numel() // LABEL_HOP_SAMPLES]
    return ExampleClip(item, path, audio, labels, corpus.describe(item), chosen)


def example_section(name: str, encoder, clip: ExampleClip, decoders: dict[int, GivenDecoder],
                    picks: dict[int, list[TopDimension]], shifts: tuple[float, ...], out_dir: Path,
                    ) -> tuple[ReportSection, dict]:
    """The example's section for one model: reconstructions from every module in ``decoders`` and a traversal of
    ``picks[module]`` (the dimensions the probes weigh most); also returns its numbers for ``report.json``."""
    section = ReportSection(f"{name}: one clip, decoded by each module")
    audio_dir = out_dir / "audio" / slug(name) / "example"
    record: dict = {"item": clip.item, "path": str(clip.path), "seconds": clip.audio.numel() / 16000, "modules": {},
                    "traversal": []}
    latents = {m: encode_for_decoder(encoder, clip.audio[None], m) for m in sorted(decoders)}
    views = {m: DecodedViews(g.decoder, clip.audio.numel(), audio_dir, out_dir) for m, g in decoders.items()}
    plain = _reconstructions(section, clip, decoders, views, latents, record)
    _probe_traversal(section, views, latents, plain, picks, shifts, record)
    section.text = _text(clip, decoders, picks, shifts)
    return section, record


def _reconstructions(section: ReportSection, clip: ExampleClip, decoders: dict[int, GivenDecoder],
                     views: dict[int, DecodedViews], latents: dict, record: dict) -> dict[int, torch.Tensor]:
    """Add the input and every module's reconstruction; returns each module's decoded log-mel ``(frames, n_mels)``."""
    logmels, waves = [log_mel(clip.audio[None], DISPLAY_SETTINGS)[0]], [clip.audio]
    labels = ["input (log-mel)"]
    for m, view in views.items():
        logmel, audio = view.decode(latents[m][0])
        errors = logmel_errors(logmel, view.input_logmel(clip.audio[None], logmel.shape[1]))
        record["modules"][m] = {"decoder": decoders[m].source, **errors}
        kind = "log-mel" if decoders[m].kind == "logmel" else decoders[m].kind
        labels.append(f"module {m}, {kind} decoder\nerror {errors['logmel_mae']:.2f} nats\n"
                      f"({errors['logmel_error_ratio']:.0%} of baseline)")
        logmels.append(logmel[0])
        waves.append(audio[0])
    first = next(iter(views.values()))
    first.add(section, "reconstruction", [[x] for x in logmels], torch.stack(waves)[:, None], labels,
              [clip.item], "Input and reconstructions",
              "Top: the clip's log-mel spectrogram (80 bands, low frequencies at the bottom). Below: each module's "
              "posterior means decoded by that module's decoder; the label gives its mean absolute log-mel error and "
              "that error as a share of the error of the clip's own mean spectrum on every frame (the per-clip-mean "
              "baseline). One colour scale for all rows.", cell_width_in=EXAMPLE_CELL_INCHES)
    return dict(zip(views, logmels[1:], strict=True))


def _probe_traversal(section: ReportSection, views: dict[int, DecodedViews], latents: dict,
                     plain: dict[int, torch.Tensor], picks: dict[int, list[TopDimension]], shifts: tuple[float, ...],
                     record: dict) -> None:
    """Add the traversal of each module's picked dimensions, and its change from the plain reconstruction."""
    rows, changes, labels, waves = [], [], [], []
    for m, view in views.items():
        mean, logvar = latents[m][0][0], None if latents[m][1] is None else latents[m][1][0]
        sd = posterior_sd(mean, logvar)
        for pick in picks.get(m, []):
            logmel, audio = view.decode(shift_grid_sd(mean, sd, [pick.dim], shifts)[0])
            rows.append(list(logmel))
            changes.append([logmel[i] - plain[m] for i, v in enumerate(shifts) if v != 0])
            waves.append(audio)
            labels.append(f"module {m}, {pick.probe} {pick.label}\ndim {pick.dim}\n(1 sd = {float(sd[pick.dim]):.3g})")
            record["traversal"].append({"module": m, "probe": pick.probe, "class": pick.label, "dim": pick.dim,
                                        "weight": pick.weight, "sd": float(sd[pick.dim]), "shift_sd": list(shifts)})
    if not rows:
        return
    first = next(iter(views.values()))
    first.add(section, "traversal", rows, torch.stack(waves), labels, [f"{v:+g} sd" for v in shifts],
              "Traversal of the dimensions the probes weigh most",
              "Each row: one dimension shifted on every frame by the multiple of its posterior standard deviation "
              "given above the column (negative: lowered, +0: the plain reconstruction), decoded by that module's "
              "decoder.", cell_width_in=TRAVERSAL_CELL_INCHES)
    seconds = first.samples / 16000
    columns = [f"{v:+g} sd" for v in shifts if v != 0]
    picture = logmel_change_grid(changes, labels, columns, seconds, cell_width_in=TRAVERSAL_CELL_INCHES)
    section.figures.append(ReportFigure(
        "What each shift changes", "The traversal above minus the plain reconstruction, in nats of log-mel: red "
        "where the shifted latents decode to more energy, blue (negative numbers on the colour bar) where to less, "
        "white where nothing changes; one colour scale for all rows.", figure_png(picture)))


def _text(clip: ExampleClip, decoders: dict[int, GivenDecoder], picks: dict[int, list[TopDimension]],
          shifts: tuple[float, ...]) -> str:
    modules = ", ".join(f"module {m} ({g.source})" for m, g in decoders.items())
    probes = list(dict.fromkeys(p.probe for m in decoders for p in picks.get(m, [])))
    text = (f"{clip.describe()} Decoders: {modules}. "
            f"The traversal shifts, per module, the dimension with the largest absolute weight of the "
            f"{' and of the '.join(probes) or 'no'} probe, in standardised units (weight x the dimension's standard "
            "deviation over the probe's training data), by "
            f"{', '.join(f'{v:+g}' for v in shifts)} posterior standard deviations (exp(logvar / 2) averaged over "
            "this clip's frames; for a deterministic module, the standard deviation of the dimension over them).")
    if "phone" not in probes:
        text += (" No phone-class row: the corpus has no frame-level phone labels "
                 "(LibriSpeech100_labels_split/converted_aligned_phones.txt).")
    return text + " WAV files of every row (log-mel decoders' audio by Griffin-Lim) are linked below."
