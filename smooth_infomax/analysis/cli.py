"""``sim-analyze``: interpretability analyses of Smooth InfoMax encoders (see ``docs/interpretability.md``).

Subcommands: ``report`` (everything, as an HTML page), ``train-decoder``, ``traverse``, ``interpolate`` and
``prior`` (decode draws from N(0, I)). Models are anything ``SmoothInfoMaxEncoder.from_pretrained`` reads; in
``report`` a model may be given as ``NAME=MODEL``. Needs the ``analysis`` extra (matplotlib, scikit-learn).
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import torch

from .decoder import ModuleDecoder, default_subfolder
from .decoder_training import DecoderTrainConfig, encode_for_decoder, train_decoder
from .ics import DEFAULT_KS

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 110}


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
    from .. import SmoothInfoMaxEncoder
    from ..hub import LoadError

    try:
        return SmoothInfoMaxEncoder.from_pretrained(source)
    except (LoadError, OSError, ValueError) as err:
        raise click.ClickException(f"cannot load model {source!r}: {err}") from None


def _decoder(source: str, model: str, module: int | None) -> ModuleDecoder:
    """DECODER may be a decoder folder or Hub repo, or ``auto``: the model's ``decoders/module-<m>`` (the deepest
    one found in a local model folder when ``module`` is not given)."""
    from ..hub import LoadError

    try:
        if source != "auto":
            return ModuleDecoder.from_pretrained(source)
        if module is None:
            found = sorted(Path(model).glob("decoders/module-*/config.json"), key=lambda p: int(p.parent.name[7:]))
            if not found:
                raise click.ClickException(f"no decoders/module-<m> in {model!r}; pass --decoder or --module")
            return ModuleDecoder.from_pretrained(found[-1].parent)
        return ModuleDecoder.from_pretrained(model, subfolder=default_subfolder(module))
    except (LoadError, OSError, ValueError) as err:
        raise click.ClickException(f"cannot load decoder {source!r}: {err}") from None


def _out(path: Path, force: bool) -> Path:
    if path.exists() and any(path.iterdir()) and not force:
        raise click.ClickException(f"{path} exists and is not empty; pass --force to write into it")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _threads(threads: int | None) -> None:
    if threads:
        torch.set_num_threads(threads)


@click.group(context_settings=_CONTEXT)
def main() -> None:
    """Interpretability analyses of Smooth InfoMax encoders."""


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
              help="Use decoders from DIR/<NAME>/module-<m> (or the model folder's decoders/) instead of training.")
@click.option("--ics-pairs", default=200, show_default=True, help="Random ordered pairs for the ICS.")
@click.option("--ics-ks", default=",".join(map(str, DEFAULT_KS)), show_default=True)
@click.option("--probe-epochs", default=300, show_default=True)
@click.option("--no-tsne", is_flag=True, help="Skip t-SNE.")
@click.option("--labels", type=click.Choice(["syllables", "vowels"]), default="syllables", show_default=True,
              help="Label kind of a de Boer corpus.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=int, help="torch threads [default: torch's].")
@click.option("--force", is_flag=True, help="Write into a non-empty OUT.")
def report(models, data, out, n_files, n_test_files, crop_samples, modules, decoder_modules, decoder_steps,
           decoder_hidden, decoder_loss, decoder_latents, decoder_dir, ics_pairs, ics_ks, probe_epochs, no_tsne, labels,
           seed, threads, force) -> None:
    """Write OUT/report.html for one or more MODELS ([NAME=]MODEL) on the corpus DATA (LibriSpeech layout, or a
    folder of de Boer syllables)."""
    from .corpus import open_corpus
    from .report import ReportSettings, build_report, cnn_modules
    from .report_decoders import slug

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
                              tsne=not no_tsne, seed=seed)
    decoders = {}
    for name, (source, encoder) in named.items():
        for m in cnn_modules(encoder):
            for folder in ([decoder_dir / slug(name) / f"module-{m}"] if decoder_dir else []) + \
                          [Path(source) / default_subfolder(m)]:
                if (folder / "config.json").is_file():
                    decoders[(name, m)] = ModuleDecoder.from_pretrained(folder)
                    break
    start = time.perf_counter()
    build_report({n: e for n, (_, e) in named.items()}, open_corpus(data, labels), _out(out, force), settings,
                 decoders, log=lambda text: click.echo(text, err=True))
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
    from .corpus import load_clips, open_corpus
    from .report import cnn_modules

    _threads(threads)
    encoder = _encoder(model)
    module = cnn_modules(encoder)[-1] if module == -1 else module
    out = _out(out, force)
    clips = load_clips(open_corpus(data), "train", n_files, crop_samples, seed)
    config = DecoderTrainConfig(steps=steps, batch_size=batch_size, learning_rate=learning_rate, loss=loss,
                                sample=latents == "sample", seed=seed)
    every = max(1, steps // 20)
    progress = lambda step, value: click.echo(f"step {step + 1}: loss {value:.5f}", err=True) \
        if (step + 1) % every == 0 else None  # noqa: E731
    decoder, losses = train_decoder(encoder, clips.audio, module, config, hidden_channels=hidden, progress=progress)
    decoder.save_pretrained(out)
    click.echo(f"wrote {out} (final loss {losses[-1] if losses else float('nan'):.5f})")


def _latents_of(encoder, audio_path: Path, module: int) -> tuple[torch.Tensor, int]:
    from .corpus import read_audio

    audio = read_audio(audio_path, encoder.sample_rate)
    mean, _ = encode_for_decoder(encoder, audio[None], module)
    return mean[0], audio.shape[-1]


def _write_grid(waves, rows, columns, out: Path, prefix: str, title: str) -> None:
    from .figures import figure_png, spectrogram_grid
    from .latents import write_wavs

    (out / f"{prefix}.png").write_bytes(figure_png(spectrogram_grid(waves, rows, columns, title=title)))
    for r, label in enumerate(rows):
        write_wavs(waves[r], out, f"{prefix}-{r}")
    click.echo(f"wrote {out / (prefix + '.png')} and {waves.shape[0] * waves.shape[1]} WAV files")


_DECODER_HELP = "Decoder folder, or 'auto' for MODEL/decoders/module-<m>."


@main.command(context_settings=_CONTEXT)
@click.argument("model")
@click.argument("audio", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--decoder", "decoder_source", default="auto", show_default=True, help=_DECODER_HELP)
@click.option("--module", type=int, help="Module [default: the decoder's].")
@click.option("--dims", required=True, help="Dimensions to vary, one grid row each, e.g. 3,17.")
@click.option("--values", default="-3,-1.5,0,1.5,3", show_default=True, help="Values (see --mode).")
@click.option("--mode", type=click.Choice(["shift", "set"]), default="shift", show_default=True)
def traverse(model, audio, out, decoder_source, module, dims, values, mode) -> None:
    """Decode AUDIO's latents with single dimensions shifted by (or set to) VALUES; writes a figure and WAVs."""
    from .latents import decode, traversal_grid

    encoder, decoder = _encoder(model), _decoder(decoder_source, model, module)
    module = decoder.module if module is None else module
    latents, samples = _latents_of(encoder, audio, module)
    dims_list, values_list = _ints(dims) or (), _floats(values)
    grid = traversal_grid(latents, dims_list, values_list, mode)
    waves = decode(decoder, grid.flatten(0, 1), samples).reshape(len(dims_list), len(values_list), -1)
    _write_grid(waves, [f"dim {d}" for d in dims_list], [f"{mode} {v:g}" for v in values_list], _out(out, True),
                "traversal", f"{audio.name}, module {module}")


@main.command(context_settings=_CONTEXT)
@click.argument("model")
@click.argument("audio_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("audio_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--decoder", "decoder_source", default="auto", show_default=True, help=_DECODER_HELP)
@click.option("--module", type=int)
@click.option("--steps", default=5, show_default=True)
@click.option("--top-k", type=int, help="Also interpolate only the K most different dimensions.")
def interpolate(model, audio_a, audio_b, out, decoder_source, module, steps, top_k) -> None:
    """Decode interpolations from AUDIO_A's latents to AUDIO_B's (all dimensions, and the top K)."""
    from .latents import decode
    from .latents import interpolate as mix

    encoder, decoder = _encoder(model), _decoder(decoder_source, model, module)
    module = decoder.module if module is None else module
    (za, na), (zb, nb) = _latents_of(encoder, audio_a, module), _latents_of(encoder, audio_b, module)
    rows = [mix(za, zb, steps)] + ([mix(za, zb, steps, top_k=top_k)] if top_k else [])
    waves = decode(decoder, torch.cat(rows), min(na, nb)).reshape(len(rows), steps, -1)
    labels = ["all dims"] + ([f"top-{top_k} dims"] if top_k else [])
    alphas = [f"alpha {a:.2f}" for a in torch.linspace(0, 1, steps).tolist()]
    _write_grid(waves, labels, alphas, _out(out, True), "interpolation", f"{audio_a.name} -> {audio_b.name}")


@main.command(context_settings=_CONTEXT)
@click.argument("model")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--decoder", "decoder_source", default="auto", show_default=True, help=_DECODER_HELP)
@click.option("--module", type=int)
@click.option("-n", "count", default=8, show_default=True)
@click.option("--seconds", default=1.28, show_default=True)
@click.option("--seed", default=0, show_default=True)
def prior(model, out, decoder_source, module, count, seconds, seed) -> None:
    """Decode COUNT draws of latents from the prior N(0, I)."""
    from .latents import decode, sample_prior

    decoder = _decoder(decoder_source, model, module)
    frames = max(1, round(seconds * decoder.config.sample_rate / decoder.config.hop_samples))
    latents = sample_prior(count, frames, decoder.config.in_dim, torch.Generator().manual_seed(seed))
    waves = decode(decoder, latents)[None]
    _write_grid(waves, ["N(0, I)"], [f"draw {i}" for i in range(count)], _out(out, True), "prior",
                f"module {decoder.module}, prior draws")


if __name__ == "__main__":
    main()
