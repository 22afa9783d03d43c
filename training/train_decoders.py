"""Train the decoders shipped inside a model folder, in one resumable command.

    OMP_NUM_THREADS=1 python -m training.train_decoders --model sim-mix --data data/real data/synth \\
        --out smooth_infomax/models/sim-mix/decoders --steps 3000            # rerun with --resume to continue

Every step takes one batch of the same data mix as the model (``MixedCrops`` of each corpus's ``train_split``,
equal shares by default; the ``test_split`` stays held out for ``training.decoder_eval``), encodes it once with the
frozen encoder (``eval()``, no gradients) and takes one Adam step for each decoder:

* a **log-mel decoder** per Gaussian CNN module (``analysis.logmel``; L1 on 80-band log-mel frames at the module's
  hop), and
* the paper's **waveform decoder** for the last CNN module (``analysis.decoder``; waveform MSE + the reference's mel
  loss, its default), width 512.

Decoders see posterior samples (as the reference's were trained) unless ``--latents mean``. A step is a function of
``(seed, step)`` (batches from ``StepBatches``, noise from a generator seeded by the step), and every
``--checkpoint-every`` steps the decoders, their optimisers, the step and the elapsed time are written to
``RUN_DIR/checkpoints`` and the decoders are exported to ``OUT/module-<m>/<kind>/`` (float16 safetensors, config
with the encoder's pin, the steps and the seconds). ``--resume`` continues from the last checkpoint exactly: 2 + 2
steps give the same weights as 4.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch.nn import functional as F

from smooth_infomax.analysis.decoder import ModuleDecoder, decoder_config_for
from smooth_infomax.analysis.decoder_training import MelLoss, MelSettings, decoder_loss, draw_latents, freeze
from smooth_infomax.analysis.logmel import LogMelDecoder, log_mel, logmel_config_for
from smooth_infomax.analysis.model_decoders import AnyDecoder, encoder_pin
from smooth_infomax.hub import load_for_cli
from training.batches import MixedCrops, StepBatches, step_loader
from training.checkpoint import checkpoint_path, latest_checkpoint, load_checkpoint, save_checkpoint
from training.data.librispeech import CorpusPaths, CropDataset, build_speaker_map, read_split

log = logging.getLogger("train_decoders")


@dataclass(frozen=True)
class DecoderRecipe:
    """Everything a decoder training run depends on (recorded in each decoder's config)."""

    model: str = "sim-mix"
    data: tuple[str, ...] = ("data/real", "data/synth")
    shares: tuple[float, ...] = ()  # default: equal
    steps: int = 3000
    batch_size: int = 8
    crop_samples: int = 20480
    logmel_modules: tuple[int, ...] | None = None  # default: every Gaussian CNN module
    waveform_modules: tuple[int, ...] | None = None  # default: the last CNN module
    logmel_hidden: int = 256
    waveform_hidden: int = 512
    logmel_learning_rate: float = 1e-3
    waveform_learning_rate: float = 2e-4
    waveform_loss: str = "mse+mel"
    latents: str = "sample"
    checkpoint_every: int = 100
    log_every: int = 10
    weights_dtype: str = "float16"
    seed: int = 0


def cnn_modules(encoder) -> list[int]:
    return [i for i, m in enumerate(encoder.config.modules) if m.conv_layers and not m.gru_hidden_size]


def build_decoders(encoder, recipe: DecoderRecipe) -> dict[str, AnyDecoder]:
    """``{"module-<m>/<kind>": decoder}``, fresh and seeded, in a fixed order."""
    cnn = cnn_modules(encoder)
    gaussian = [m for m in cnn if encoder.config.modules[m].is_gaussian]
    logmel = recipe.logmel_modules if recipe.logmel_modules is not None else tuple(gaussian)
    waveform = recipe.waveform_modules if recipe.waveform_modules is not None else tuple(cnn[-1:])
    torch.manual_seed(recipe.seed)
    decoders: dict[str, AnyDecoder] = {}
    for m in logmel:
        decoders[f"module-{m}/logmel"] = LogMelDecoder(logmel_config_for(encoder.config, m, recipe.logmel_hidden))
    for m in waveform:
        decoders[f"module-{m}/waveform"] = ModuleDecoder(decoder_config_for(encoder.config, m, recipe.waveform_hidden))
    return decoders


def training_crops(roots: Sequence[str], shares: Sequence[float], crop_samples: int, seed: int) -> MixedCrops:
    """Crops of each corpus's ``train_split`` in their shares of every epoch (the model's data mix)."""
    corpora = []
    for root in roots:
        paths = CorpusPaths(Path(root))
        ids = read_split(paths.split("train_split"))
        corpora.append(CropDataset(paths.audio_dir, ids, build_speaker_map(ids), crop_samples, seed))
    return MixedCrops(corpora, list(shares) or [1 / len(roots)] * len(roots))


def _loss(name: str, decoder: AnyDecoder, latents: torch.Tensor, audio: torch.Tensor, wave_loss) -> torch.Tensor:
    if isinstance(decoder, LogMelDecoder):
        target = log_mel(audio, decoder.config.settings, frames=latents.shape[1])
        return F.l1_loss(decoder(latents), target)
    return wave_loss(decoder(latents, num_samples=audio.shape[-1]), audio)


def train(recipe: DecoderRecipe, out: Path, run_dir: Path, resume: bool = False) -> dict[str, AnyDecoder]:
    """Train (or continue) every decoder of ``recipe`` and export them to ``out``; returns them (float32, eval)."""
    encoder = freeze(load_for_cli(recipe.model))
    pin = encoder_pin(encoder)
    decoders = build_decoders(encoder, recipe)
    rates = {n: recipe.logmel_learning_rate if isinstance(d, LogMelDecoder) else recipe.waveform_learning_rate
             for n, d in decoders.items()}
    optimisers = {n: torch.optim.Adam(d.parameters(), lr=rates[n]) for n, d in decoders.items()}
    start, elapsed, recent = _restore(run_dir, resume, decoders, optimisers, pin)
    wave_loss = decoder_loss(recipe.waveform_loss, MelLoss(MelSettings()), 1.0)  # type: ignore[arg-type]
    modules = sorted({d.module for d in decoders.values()})
    crops = training_crops(recipe.data, recipe.shares, recipe.crop_samples, recipe.seed)
    sampler = StepBatches(len(crops), recipe.batch_size, recipe.steps, recipe.seed, start_step=start)
    for d in decoders.values():
        d.train()
    clock = time.perf_counter()
    for step, batch in enumerate(step_loader(crops, sampler, num_workers=0), start):
        audio = batch.audio[:, 0].float()  # (batch, samples)
        with torch.no_grad():
            features = encoder.extract(audio, sample_rate=encoder.sample_rate, modules=modules)
        noise = torch.Generator().manual_seed(recipe.seed * 1_000_003 + step)
        for name, decoder in decoders.items():
            f = features[decoder.module]
            logvar = None if f.logvar is None else f.logvar.float().clone()
            latents = draw_latents(f.mean.float().clone(), logvar, recipe.latents == "sample", noise)
            with torch.enable_grad():
                loss = _loss(name, decoder, latents, audio, wave_loss)
                optimisers[name].zero_grad(set_to_none=True)
                loss.backward()
                optimisers[name].step()
            recent.setdefault(name, []).append(float(loss.detach()))
            recent[name] = recent[name][-50:]
        done = step + 1
        if done % recipe.log_every == 0 or done == recipe.steps:
            losses = ", ".join(f"{n} {sum(v[-10:]) / len(v[-10:]):.4f}" for n, v in recent.items())
            log.info("step %d/%d (%.1f s): %s", done, recipe.steps, elapsed + time.perf_counter() - clock, losses)
        if done % recipe.checkpoint_every == 0 or done == recipe.steps:
            seconds = elapsed + time.perf_counter() - clock
            save_checkpoint(checkpoint_path(run_dir, done), {
                "step": done, "elapsed_s": seconds, "encoder_sha256": pin, "recent": recent,
                "decoders": {n: d.state_dict() for n, d in decoders.items()},
                "optimisers": {n: o.state_dict() for n, o in optimisers.items()}})
            export(decoders, out, recipe, pin, done, seconds, recent)
    return {n: d.eval() for n, d in decoders.items()}


def _restore(run_dir: Path, resume: bool, decoders: dict, optimisers: dict, pin: str
             ) -> tuple[int, float, dict[str, list[float]]]:
    found = latest_checkpoint(run_dir)
    if found is None or not resume:
        if found is not None:
            raise SystemExit(f"{run_dir} already holds checkpoints ({found.name}); pass --resume to continue them "
                             "or choose another --run-dir")
        return 0, 0.0, {}
    state = load_checkpoint(found)
    if state["encoder_sha256"] != pin:
        raise SystemExit(f"{found} was trained for encoder weights sha256 {state['encoder_sha256']}, but the "
                         f"model's weights have sha256 {pin}; start a new --run-dir")
    if set(state["decoders"]) != set(decoders):
        raise SystemExit(f"{found} holds decoders {sorted(state['decoders'])}, the recipe asks for {sorted(decoders)}")
    for name, decoder in decoders.items():
        decoder.load_state_dict(state["decoders"][name])
        optimisers[name].load_state_dict(state["optimisers"][name])
    log.info("resumed from %s (step %d)", found, state["step"])
    return int(state["step"]), float(state["elapsed_s"]), {k: list(v) for k, v in state["recent"].items()}


def export(decoders: dict[str, AnyDecoder], out: Path, recipe: DecoderRecipe, pin: str, steps: int, seconds: float,
           recent: dict[str, list[float]]) -> None:
    """Write each decoder to ``out/<name>/`` with its pin and a record of its training."""
    dtype = torch.float16 if recipe.weights_dtype == "float16" else torch.float32
    for name, decoder in decoders.items():
        is_logmel = isinstance(decoder, LogMelDecoder)
        losses = recent.get(name, [])
        record = {**{k: v for k, v in asdict(recipe).items() if not k.startswith(("logmel_", "waveform_"))},
                  "loss": "l1 on log-mel" if is_logmel else recipe.waveform_loss,
                  "learning_rate": recipe.logmel_learning_rate if is_logmel else recipe.waveform_learning_rate,
                  "steps_done": steps, "train_seconds": round(seconds, 1), "split": "train_split",
                  "held_out": "test_split", "recent_loss": sum(losses) / len(losses) if losses else None,
                  "recipe": "python -m training.train_decoders"}
        saved = type(decoder)(replace(decoder.config, encoder_sha256=pin, training=record))  # type: ignore[arg-type]
        saved.load_state_dict(decoder.state_dict())
        saved.save_pretrained(out / name, weights_dtype=dtype)


def _ints(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    return tuple(int(v) for v in text.split(",") if v.strip()) if text != "none" else ()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training.train_decoders", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="sim-mix", help="Encoder: shipped name, folder or Hub repo.")
    parser.add_argument("--data", nargs="+", default=["data/real", "data/synth"], help="LibriSpeech-layout corpora.")
    parser.add_argument("--shares", type=float, nargs="*", default=[], help="Share of each corpus (default equal).")
    parser.add_argument("--out", type=Path, required=True, help="Decoders folder, e.g. MODEL/decoders.")
    parser.add_argument("--run-dir", type=Path, help="Checkpoints [default: runs/decoders-<model name>].")
    parser.add_argument("--steps", type=int, default=DecoderRecipe.steps)
    parser.add_argument("--batch-size", type=int, default=DecoderRecipe.batch_size)
    parser.add_argument("--crop-samples", type=int, default=DecoderRecipe.crop_samples)
    parser.add_argument("--logmel-modules", help="e.g. 0,1,2 or none [default: every Gaussian CNN module].")
    parser.add_argument("--waveform-modules", help="e.g. 2 or none [default: the last CNN module].")
    parser.add_argument("--logmel-hidden", type=int, default=DecoderRecipe.logmel_hidden)
    parser.add_argument("--waveform-hidden", type=int, default=DecoderRecipe.waveform_hidden)
    parser.add_argument("--latents", choices=["sample", "mean"], default=DecoderRecipe.latents)
    parser.add_argument("--checkpoint-every", type=int, default=DecoderRecipe.checkpoint_every)
    parser.add_argument("--log-every", type=int, default=DecoderRecipe.log_every)
    parser.add_argument("--weights-dtype", choices=["float16", "float32"], default=DecoderRecipe.weights_dtype)
    parser.add_argument("--seed", type=int, default=DecoderRecipe.seed)
    parser.add_argument("--resume", action="store_true", help="Continue from the last checkpoint in --run-dir.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    recipe = DecoderRecipe(model=args.model, data=tuple(args.data), shares=tuple(args.shares), steps=args.steps,
                           batch_size=args.batch_size, crop_samples=args.crop_samples,
                           logmel_modules=_ints(args.logmel_modules), waveform_modules=_ints(args.waveform_modules),
                           logmel_hidden=args.logmel_hidden, waveform_hidden=args.waveform_hidden,
                           latents=args.latents, checkpoint_every=args.checkpoint_every, log_every=args.log_every,
                           weights_dtype=args.weights_dtype, seed=args.seed)
    run_dir = args.run_dir or Path("runs") / f"decoders-{Path(args.model).name}"
    train(recipe, args.out, run_dir, args.resume)
    log.info("wrote decoders to %s (checkpoints in %s)", args.out, run_dir)


if __name__ == "__main__":
    main()
