"""Training speed per preset, and the vectorised InfoNCE against the loop-over-negatives formulation.

    python -m training.benchmarks.training_step [--presets sim,gim_sim_repo] [--batch 8] [--steps 3] [--bf16] [--out F]

For each preset: one Adam step of the greedy objective on ``batch`` crops of 20480 samples (the paper's crop)
with ``info_nce``, with ``info_nce_loop`` and with the floor (below), same weights and draws; after a warm-up the
three take turns for ``steps`` rounds and each reports its median step, so that the ratios hold on a machine whose
speed drifts. The two losses must agree. Also the InfoNCE losses alone (forward and backward on fixed features).
Reports steps/s, audio-seconds/s and the ratios. ``--bf16`` runs every step under bfloat16 autocast (what
training does on a GPU), so the conv stack, which dominates a float32 CPU step, costs less beside the losses.

The floor is a step whose InfoNCE is cut down to what every formulation must compute, the predictor over the
window: no formulation's step can be faster, so ``loop step / floor step`` bounds the speed-up any vectorised loss
could reach for that preset.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import statistics
from pathlib import Path

import torch

from smooth_infomax.config import preset
from training.benchmarks.common import SAMPLE_RATE, in_turns, machine, print_table, write_json
from training.losses import InfoNCEResult, draw_infonce, info_nce_loop
from training.objective import Generators, GreedyObjective

CROP_SAMPLES = 20480


def loop_nce(*args) -> InfoNCEResult:
    """``info_nce_loop`` with the result type of ``info_nce`` (accuracy is not computed: NaN)."""
    return InfoNCEResult(info_nce_loop(*args), torch.tensor(float("nan")))


def predictor_only_nce(context, target, predictor, steps, window_frames, draws) -> InfoNCEResult:
    """Not a loss: the predictor over the positive window, the largest cost every InfoNCE formulation shares
    (scoring, negatives and softmax left out), reduced to a scalar so that it has a backward pass."""
    window = context[:, draws.start: draws.start + window_frames]
    return InfoNCEResult(predictor(window).mean(), torch.tensor(float("nan")))


def autocast(device: torch.device, bf16: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def step_seconds(objectives: dict[str, GreedyObjective], waveform: torch.Tensor, steps: int, bf16: bool = False
                 ) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per objective, the seconds of each of ``steps`` optimiser steps taken in turns (``in_turns``) and the loss
    of the first timed one."""
    optimizers = {name: torch.optim.Adam(o.parameters(), lr=1e-5) for name, o in objectives.items()}
    losses = {name: [] for name in objectives}

    def one_step(name: str) -> None:
        generators = Generators.seeded(0, waveform.device)
        with autocast(waveform.device, bf16):
            loss, _ = objectives[name](waveform, generators)
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[name].step()
        losses[name].append(loss.item())  # .item() waits for the device

    seconds = in_turns({name: functools.partial(one_step, name) for name in objectives}, steps)
    return seconds, {name: each[1] for name, each in losses.items()}


def loss_only_seconds(objectives: dict[str, GreedyObjective], waveform: torch.Tensor, steps: int,
                      bf16: bool = False) -> dict[str, list[float]]:
    """Per objective (same weights): the seconds of each forward and backward of the InfoNCE losses alone, on
    features computed once, taken in turns (``in_turns``)."""
    first = next(iter(objectives.values()))
    generators = Generators.seeded(0, waveform.device)
    with torch.no_grad(), autocast(waveform.device, bf16):
        outputs = first.encoder(waveform, generator=generators.noise)
    # both require grad, as in training: the targets' gradient (through positives and negatives) is part of the loss
    features = [(o.context.detach().requires_grad_(), o.target.detach().requires_grad_()) for o in outputs]
    loss_config = first.config.loss

    def one_pass(objective: GreedyObjective) -> None:
        draws = Generators.seeded(0, waveform.device).draws
        total = 0.0
        with autocast(waveform.device, bf16):
            for (context, target), predictor in zip(features, objective.predictors.layers, strict=True):
                batch, frames, _ = target.shape
                sampled = draw_infonce(batch, frames, loss_config.positive_window_frames, loss_config.negatives,
                                       draws, target.device)
                total = total + objective.nce(context, target, predictor, loss_config.prediction_steps,
                                              loss_config.positive_window_frames, sampled).loss
        total.backward()
        total.item()

    return in_turns({name: functools.partial(one_pass, o) for name, o in objectives.items()}, steps)


def compare_formulations(name: str, waveform: torch.Tensor, steps: int, bf16: bool = False,
                         loss_only: bool = True) -> dict:
    """One preset's steps with the vectorised InfoNCE, the loop formulation and the floor, same weights and draws,
    timed in turns (``step_seconds``); with ``loss_only``, also the two losses alone. Times are medians over the
    rounds; each speed-up is the median of its rounds' ratios, which a slow minute spoils less."""
    torch.manual_seed(0)
    vectorised = GreedyObjective(preset(name))
    objectives = {"vectorised": vectorised, "loop": GreedyObjective(preset(name), nce=loop_nce),
                  "floor": GreedyObjective(preset(name), nce=predictor_only_nce)}
    for objective in objectives.values():
        objective.load_state_dict(vectorised.state_dict())
        objective.to(waveform.device)
    seconds, losses = step_seconds(objectives, waveform, steps, bf16)
    fast, slow, floor = (seconds[name] for name in ("vectorised", "loop", "floor"))
    fast_s, slow_s, floor_s = (statistics.median(each) for each in (fast, slow, floor))
    audio_s = waveform.shape[0] * waveform.shape[-1] / SAMPLE_RATE
    row = {"preset": name, "step_s": fast_s, "steps_per_s": 1 / fast_s, "audio_s_per_s": audio_s / fast_s,
           "loop_step_s": slow_s, "loop_steps_per_s": 1 / slow_s, "step_speedup": median_ratio(slow, fast),
           "floor_step_s": floor_s, "max_step_speedup": median_ratio(slow, floor), "loss": losses["vectorised"],
           "loop_loss": losses["loop"], "seconds_each": seconds}
    if loss_only:
        nce = loss_only_seconds({k: objectives[k] for k in ("vectorised", "loop")}, waveform, steps, bf16)
        row |= {"nce_s": statistics.median(nce["vectorised"]), "loop_nce_s": statistics.median(nce["loop"]),
                "nce_speedup": median_ratio(nce["loop"], nce["vectorised"])}
    return row


def median_ratio(numerators: list[float], denominators: list[float]) -> float:
    """Median over rounds of ``numerator / denominator`` (the two timed in the same round)."""
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="sim,gim_sim_repo,gim,cpc")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop-samples", type=int, default=CROP_SAMPLES, help="samples per crop")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bf16", action="store_true", help="every step under bfloat16 autocast")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    waveform = 0.1 * torch.randn(args.batch, 1, args.crop_samples, generator=torch.Generator().manual_seed(0))
    rows = [compare_formulations(name, waveform, args.steps, args.bf16) for name in args.presets.split(",")]
    print(f"batch {args.batch} x {args.crop_samples} samples, {'bfloat16 autocast' if args.bf16 else 'float32'}; "
          f"{machine()}")
    print_table(["preset", "steps/s", "audio-s/s", "loop steps/s", "step x", "floor steps/s", "max step x",
                 "InfoNCE x", "loss", "loop loss"],
                [[r["preset"], f"{r['steps_per_s']:.3f}", f"{r['audio_s_per_s']:.1f}", f"{1 / r['loop_step_s']:.3f}",
                  f"{r['step_speedup']:.2f}", f"{1 / r['floor_step_s']:.3f}", f"{r['max_step_speedup']:.2f}",
                  f"{r['nce_speedup']:.1f}", f"{r['loss']:.5f}", f"{r['loop_loss']:.5f}"]
                 for r in rows])
    result = {"machine": machine(), "batch": args.batch, "crop_samples": args.crop_samples,
              "dtype": "bfloat16" if args.bf16 else "float32", "presets": rows}
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
