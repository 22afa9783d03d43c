"""``sim-analyze``: interpretability analyses of Smooth InfoMax encoders (see ``docs/interpretability.md``).

Subcommands: ``report`` (everything, as an HTML page), ``train-decoder``, ``traverse``, ``interpolate`` and
``prior`` (decode draws from N(0, I)). Models are anything ``SmoothInfoMaxEncoder.from_pretrained`` reads; in
``report`` a model may be given as ``NAME=MODEL``. Needs the ``analysis`` extra (matplotlib, scikit-learn).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import click
import torch

from ..logs import format_eta, start_cli_logging, verbosity_options
from .decoder_training import DecoderTrainConfig, encode_for_decoder, train_decoder
from .ics import DEFAULT_KS

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}

logger = logging.getLogger(__name__)


def _ints(text: str | None) -> tuple[int, ...] | None:
    """``"0,2"`` -> ``(0, 2)``; ``"all"`` or ``None`` -> ``None``; ``"none"`` -> ``()``."""
    if text is None or text == "all":
        return None
    if text == "none":
        return ()
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated integers, got {text!r}") from None


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}") from None


def _encoder(source: str):
    from ..hub import load_for_cli

    return load_for_cli(source, error=click.ClickException)


def _decoder(source: str, model: str, module: int | None, kind: str, encoder):
    """DECODER may be a decoder folder or Hub repo, or ``auto``: the model's own ``decoders/module-<m>/<kind>``
    (the deepest module that has one when ``module`` is not given). Either way its pin must match the encoder."""
    from ..hub import load_errors_as
    from .model_decoders import encoder_pin, load_decoder, load_model_decoder

    context = f"cannot load decoder {source!r}" if source != "auto" else f"cannot use a {kind} decoder of {model!r}"
    with load_errors_as(click.ClickException, context):
        if source != "auto":
            return load_decoder(source, encoder_sha256=encoder_pin(encoder))
        return load_model_decoder(model, encoder, kind, module)


def _out(path: Path, force: bool) -> Path:
    if path.exists() and any(path.iterdir()) and not force:
        raise click.ClickException(f"{path} exists and is not empty; pass --force to write into it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


def _require_extra(*modules: str) -> None:
    """Fail before any work when the ``analysis`` extra is not installed, naming what is missing."""
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise click.ClickException(f"sim-analyze needs the 'analysis' extra (missing: {', '.join(missing)}); "
                                   "install it with: pip install 'smooth-infomax[analysis]'")


class _CheckedGroup(click.Group):
    """Checks the extra once a subcommand is chosen, before its work; its ``--help`` needs no extra."""

    def resolve_command(self, ctx: click.Context,
                        args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if not {"-h", "--help"} & set(rest):
            _require_extra("matplotlib", "sklearn")
        return name, command, rest


@click.group(cls=_CheckedGroup, context_settings=_CONTEXT)
@verbosity_options("Log warnings only: no progress lines.")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Interpretability analyses of Smooth InfoMax encoders. -v/-q go before the subcommand
    (sim-analyze -q train-decoder ...)."""
    start_cli_logging(ctx)


@main.command(context_settings=_CONTEXT)
@click.argument("models", nargs=-1, required=True)
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--n-files", default=120, show_default=True, help="Train-split clips (probes, decoders).")
@click.option("--n-test-files", default=40, show_default=True, help="Test-split clips (every measure).")
@click.option("--crop-samples", default=10240, show_default=True, help="Clip length in 16 kHz samples.")
@click.option("--modules", default="all", show_default=True, help="Modules to measure, e.g. 0,1,2.")
@click.option("--decoder-modules", default=None,
              help="CNN modules to decode, e.g. 0,1,2, or 'none' [default: the last CNN module].")
@click.option("--decoder-steps", default=300, show_default=True)
@click.option("--decoder-hidden", default=128, show_default=True, help="Decoder width (512 in the reference).")
@click.option("--decoder-loss", type=click.Choice(["mse", "mel", "mse+mel"]), default="mse", show_default=True)
@click.option("--decoder-latents", type=click.Choice(["sample", "mean"]), default="sample", show_default=True,
              help="Train decoders on posterior samples (the reference) or means.")
@click.option("--decoders", "decoder_dir", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Use decoders from DIR/<NAME>/module-<m> before the model's own (decoders/module-<m>/<kind>); "
                   "modules with neither get a decoder trained here.")
@click.option("--ics-pairs", default=200, show_default=True, help="Random ordered pairs for the ICS.")
@click.option("--ics-ks", default=",".join(map(str, DEFAULT_KS)), show_default=True)
@click.option("--probe-epochs", default=300, show_default=True)
@click.option("--no-tsne", is_flag=True, help="Skip t-SNE.")
@click.option("--labels", type=click.Choice(["syllables", "vowels"]), default="syllables", show_default=True,
              help="Label kind of a de Boer corpus.")
@click.option("--example", help="Corpus item of the example clip, e.g. 9101-1-0002 [default: the longest measured "
                                "test utterance, with phone labels if the corpus has them].")
@click.option("--example-seconds", default=3.0, show_default=True, help="Decode the example's first SECONDS.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=int, help="torch threads [default: torch's].")
@click.option("--force", is_flag=True, help="Write into a non-empty OUT.")
def report(models, data, out, n_files, n_test_files, crop_samples, modules, decoder_modules, decoder_steps,
           decoder_hidden, decoder_loss, decoder_latents, decoder_dir, ics_pairs, ics_ks, probe_epochs, no_tsne, labels,
           example, example_seconds, seed, threads, force) -> None:
    """Write OUT/report.html for one or more MODELS ([NAME=]MODEL) on the corpus DATA (LibriSpeech layout, or a
    folder of de Boer syllables). A model's own decoders are used; only modules without one get a brief decoder
    trained here."""
    from ..hub import load_errors_as
    from .corpus import open_corpus
    from .report import ReportSettings, build_report, cnn_modules
    from .report_decoders import find_report_decoders

    _threads(threads)
    named = {}
    for spec in models:
        name, _, source = spec.partition("=") if "=" in spec else (Path(spec).name or spec, "", spec)
        if name in named:
            raise click.BadParameter(f"two models are named {name!r}; name them NAME=MODEL", param_hint="MODELS")
        named[name or source] = (source, _encoder(source))
    settings = ReportSettings(n_files=n_files, n_test_files=n_test_files, crop_samples=crop_samples,
                              modules=_ints(modules), decoder_modules=_ints(decoder_modules),
                              decoder_steps=decoder_steps, decoder_hidden=decoder_hidden, decoder_loss=decoder_loss,
                              decoder_latents=decoder_latents,
                              ics_pairs=ics_pairs, ics_ks=_ints(ics_ks) or DEFAULT_KS, probe_epochs=probe_epochs,
                              example=example, example_seconds=example_seconds, tsne=not no_tsne, seed=seed)
    decoders = {}
    for name, (source, encoder) in named.items():
        with load_errors_as(click.ClickException, f"cannot use the decoders of {name!r}"):
            decoders[name] = find_report_decoders(name, source, encoder, cnn_modules(encoder), decoder_dir)
    start = time.perf_counter()
    with load_errors_as(click.ClickException, f"cannot read the corpus {str(data)!r}"):
        corpus = open_corpus(data, labels)
        if example is not None:
            corpus.path(example)
    build_report({n: e for n, (_, e) in named.items()}, corpus, _out(out, force), settings, decoders)
    click.echo(f"wrote {out / 'report.html'} in {time.perf_counter() - start:.0f} s")


@main.command("train-decoder", context_settings=_CONTEXT)
@click.argument("model")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--module", default=-1, show_default=True, help="CNN module to decode (-1: the last CNN module).")
@click.option("--steps", default=1000, show_default=True)
@click.option("--batch-size", default=8, show_default=True)
@click.option("--learning-rate", default=2e-4, show_default=True)
@click.option("--loss", type=click.Choice(["mse", "mel", "mse+mel"]), default="mse", show_default=True)
@click.option("--hidden", default=512, show_default=True, help="Decoder width (512 in the reference).")
@click.option("--latents", type=click.Choice(["sample", "mean"]), default="sample", show_default=True,
              help="Train on posterior samples (the reference) or means.")
@click.option("--n-files", default=400, show_default=True, help="Train-split clips to train on.")
@click.option("--crop-samples", default=20480, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=int)
@click.option("--force", is_flag=True)
def train_decoder_command(model, data, out, module, steps, batch_size, learning_rate, loss, hidden, latents, n_files,
                          crop_samples, seed, threads, force) -> None:
    """Train a decoder for one module of MODEL on the corpus DATA and save it to OUT."""
    from dataclasses import replace

    from .corpus import load_clips, open_corpus
    from .model_decoders import encoder_pin
    from .report import cnn_modules

    _threads(threads)
    encoder = _encoder(model)
    module = cnn_modules(encoder)[-1] if module == -1 else module
    out = _out(out, force)
    clips = load_clips(open_corpus(data), "train", n_files, crop_samples, seed)
    config = DecoderTrainConfig(steps=steps, batch_size=batch_size, learning_rate=learning_rate, loss=loss,
                                sample=latents == "sample", seed=seed)
    decoder, losses = train_decoder(encoder, clips.audio, module, config, hidden_channels=hidden,
                                    progress=_step_logger(steps))
    decoder.config = replace(decoder.config, encoder_sha256=encoder_pin(encoder))
    decoder.save_pretrained(out)
    click.echo(f"wrote {out} (final loss {losses[-1] if losses else float('nan'):.5f})")


def _step_logger(steps: int, lines: int = 20):
    """A ``train_decoder`` progress callback logging (INFO) ``step 50/1000: loss 0.01234, ETA 0:03:10`` about
    ``lines`` times over the run."""
    every, start_s = max(1, steps // lines), time.monotonic()

    def progress(step: int, loss: float) -> None:
        done = step + 1
        if done % every == 0 or done == steps:
            left_s = (time.monotonic() - start_s) * (steps - done) / done
            logger.info("step %d/%d: loss %.5f, ETA %s", done, steps, loss, format_eta(left_s))
    return progress


def _audio(encoder, audio_path: Path) -> torch.Tensor:
    from ..audio import AudioFileError, load_audio

    try:
        return load_audio(audio_path, encoder.sample_rate)
    except AudioFileError as err:
        raise click.ClickException(str(err)) from None


def _latents_of(encoder, audio_path: Path, module: int) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """Posterior mean and log-variance ``(frames, dim)`` (log-variance ``None`` for deterministic modules) and the
    clip's length in samples."""
    audio = _audio(encoder, audio_path)
    mean, logvar = encode_for_decoder(encoder, audio[None], module)
    return mean[0], None if logvar is None else logvar[0], audio.shape[-1]


def _write_views(decoder, latents: torch.Tensor, rows: list[str], columns: list[str], out: Path, prefix: str,
                 title: str, samples: int) -> None:
    """Decode ``latents (rows * columns, frames, dim)``; write ``<prefix>.png`` (a log-mel grid) and one WAV per
    cell (``<prefix>-<row>-<column>.wav``)."""
    from .figures import figure_png, logmel_grid
    from .latents import write_wavs
    from .model_decoders import decode_views

    logmel, waves, _ = decode_views(decoder, latents, samples)
    grid = [[logmel[r * len(columns) + c] for c in range(len(columns))] for r in range(len(rows))]
    seconds = samples / decoder.config.sample_rate
    (out / f"{prefix}.png").write_bytes(figure_png(logmel_grid(grid, rows, columns, seconds, title=title)))
    for r in range(len(rows)):
        write_wavs(waves[r * len(columns):(r + 1) * len(columns)], out, f"{prefix}-{r}")
    click.echo(f"wrote {out / (prefix + '.png')} and {len(waves)} WAV files")


_DECODER_HELP = "Decoder folder or Hub repo, or 'auto' for the model's own decoders/module-<m>/<kind>."
_KIND_HELP = "Which of the model's decoders: log-mel (audio by Griffin-Lim) or the paper's waveform decoder."


def _decoder_options(command):
    """``--decoder``, ``--decoder-kind`` and ``--module``, shared by the decoding subcommands."""
    from .model_decoders import DECODER_KINDS

    command = click.option("--module", type=int, help="Module [default: the deepest with a decoder].")(command)
    command = click.option("--decoder-kind", "kind", type=click.Choice(DECODER_KINDS), default="logmel",
                           show_default=True, help=_KIND_HELP)(command)
    return click.option("--decoder", "decoder_source", default="auto", show_default=True, help=_DECODER_HELP)(command)


@main.command(context_settings=_CONTEXT)
@click.argument("model")
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@_decoder_options
@click.option("--dims", required=True, help="Dimensions to vary, one grid row each, e.g. 3,17.")
@click.option("--shift-sd", "--values", "shift_sd", default="-2,-1,0,1,2", show_default=True,
              help="Shifts in posterior standard deviations of each dimension (its exp(logvar / 2), averaged over "
                   "AUDIO's frames).")
def traverse(model, audio, out, decoder_source, kind, module, dims, shift_sd) -> None:
    """Decode AUDIO's latents with single dimensions shifted by multiples of their posterior standard deviation;
    writes a log-mel grid (PNG), WAVs and traversal.json (the raw shift of each cell)."""
    import json

    from .latents import posterior_sd, shift_grid_sd

    encoder = _encoder(model)
    decoder = _decoder(decoder_source, model, module, kind, encoder)
    mean, logvar, samples = _latents_of(encoder, audio, decoder.module)
    dims_list, shifts = _ints(dims) or (), _floats(shift_sd)
    if any(not -mean.shape[-1] <= d < mean.shape[-1] for d in dims_list):
        raise click.BadParameter(f"dimensions must lie in [0, {mean.shape[-1]})", param_hint="--dims")
    sd = posterior_sd(mean, logvar)
    grid = shift_grid_sd(mean, sd, dims_list, shifts)
    unit = "sd" if logvar is not None else "sd of mean"
    rows = [f"dim {d} (1 {unit} = {float(sd[d]):.3g})" for d in dims_list]
    out = _out(out, True)
    _write_views(decoder, grid.flatten(0, 1), rows, [f"{v:+g} {unit}" for v in shifts], out, "traversal",
                 f"{audio.name}, module {decoder.module}, {kind} decoder", samples)
    record = {"audio": str(audio), "module": decoder.module, "decoder_kind": kind, "unit": unit,
              "dims": list(dims_list), "shift_sd": list(shifts), "sd": {str(d): float(sd[d]) for d in dims_list}}
    (out / "traversal.json").write_text(json.dumps(record, indent=1) + "\n")


@main.command(context_settings=_CONTEXT)
@click.argument("model")
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--decoder-kind", "kind", type=click.Choice(["logmel", "waveform"]), default="logmel",
              show_default=True, help=_KIND_HELP)
@click.option("--modules", default="all", show_default=True, help="Modules to decode, e.g. 0,2.")
def reconstruct(model, audio, out, kind, modules) -> None:
    """Decode AUDIO's posterior means with each module's decoder; writes the input's and each reconstruction's
    log-mel side by side (PNG) and WAVs."""
    from ..hub import load_errors_as
    from .figures import figure_png, logmel_grid
    from .latents import write_wavs
    from .logmel import log_mel
    from .model_decoders import decode_views, encoder_pin, find_decoders, load_decoder

    encoder = _encoder(model)
    wave = _audio(encoder, audio)
    wanted = _ints(modules)
    with load_errors_as(click.ClickException, f"cannot use the {kind} decoders of {model!r}"):
        found, commit = find_decoders(model, encoder.revision)
        chosen = [f for f in found if f.kind == kind and (wanted is None or f.module in wanted)]
        if not chosen:
            raise click.ClickException(f"{model} has no {kind} decoders"
                                       + (f" for modules {modules}" if wanted is not None else ""))
        pin = encoder_pin(encoder)
        decoders = [load_decoder(model, f.subfolder, commit, pin) for f in chosen]
    out = _out(out, True)
    grid, labels = [], []
    for decoder in decoders:
        mean, _, samples = _latents_of(encoder, audio, decoder.module)
        logmel, waves, settings = decode_views(decoder, mean[None], samples)
        grid.append([log_mel(wave[None], settings, frames=logmel.shape[1])[0], logmel[0]])
        labels.append(f"module {decoder.module}")
        write_wavs(waves, out, f"reconstruction-module-{decoder.module}")
    write_wavs(wave[None], out, "input")
    png = logmel_grid(grid, labels, ["input", f"decoded ({kind})"], wave.shape[-1] / encoder.sample_rate,
                      title=f"{audio.name}: posterior means decoded")
    (out / "reconstruction.png").write_bytes(figure_png(png))
    click.echo(f"wrote {out / 'reconstruction.png'} and {len(decoders) + 1} WAV files")


@main.command(context_settings=_CONTEXT)
@click.argument("model")
@click.argument("audio_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("audio_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@_decoder_options
@click.option("--steps", default=5, show_default=True)
@click.option("--top-k", type=int, help="Also interpolate only the K most different dimensions.")
def interpolate(model, audio_a, audio_b, out, decoder_source, kind, module, steps, top_k) -> None:
    """Decode interpolations from AUDIO_A's latents to AUDIO_B's (all dimensions, and the top K)."""
    from .latents import interpolate as mix

    encoder = _encoder(model)
    decoder = _decoder(decoder_source, model, module, kind, encoder)
    (za, _, na), (zb, _, nb) = _latents_of(encoder, audio_a, decoder.module), _latents_of(encoder, audio_b,
                                                                                          decoder.module)
    rows = [mix(za, zb, steps)] + ([mix(za, zb, steps, top_k=top_k)] if top_k else [])
    labels = ["all dims"] + ([f"top-{top_k} dims"] if top_k else [])
    alphas = [f"alpha {a:.2f}" for a in torch.linspace(0, 1, steps).tolist()]
    _write_views(decoder, torch.cat(rows), labels, alphas, _out(out, True), "interpolation",
                 f"{audio_a.name} -> {audio_b.name}, {kind} decoder", min(na, nb))


@main.command(context_settings=_CONTEXT)
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@_decoder_options
@click.option("-n", "count", default=8, show_default=True)
@click.option("--seconds", default=1.28, show_default=True)
@click.option("--seed", default=0, show_default=True)
def prior(model, out, decoder_source, kind, module, count, seconds, seed) -> None:
    """Decode COUNT draws of latents from the prior N(0, I)."""
    from .latents import sample_prior

    encoder = _encoder(model)
    decoder = _decoder(decoder_source, model, module, kind, encoder)
    frames = max(1, round(seconds * decoder.config.sample_rate / decoder.config.hop_samples))
    latents = sample_prior(count, frames, decoder.config.in_dim, torch.Generator().manual_seed(seed))
    _write_views(decoder, latents, ["N(0, I)"], [f"draw {i}" for i in range(count)], _out(out, True), "prior",
                 f"module {decoder.module}, prior draws, {kind} decoder", frames * decoder.config.hop_samples)


if __name__ == "__main__":
    main()
