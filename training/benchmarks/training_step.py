"""Training speed per preset, and the vectorised InfoNCE against the loop-over-negatives formulation.

    python -m training.benchmarks.training_step [--presets sim,gim_sim_repo] [--batch 8] [--steps 3] [--bf16] [--out F]

For each preset: one Adam step of the greedy objective on ``batch`` crops of 20480 samples (the paper's crop),
timed over ``steps`` steps after a warm-up, once with ``info_nce`` and once with ``info_nce_loop``; the two
losses must agree on the same draws. Also the InfoNCE losses alone (forward and backward on fixed features).
Reports steps/s, audio-seconds/s and the ratios. ``--bf16`` runs every step under bfloat16 autocast (what
training does on a GPU), so the conv stack, which dominates a float32 CPU step, costs less beside the losses.

The floor is a step whose InfoNCE is cut down to what every formulation must compute, the predictor over the
window: no formulation's step can be faster, so ``loop step / floor step`` bounds the speed-up any vectorised loss
could reach for that preset.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch

from smooth_infomax.config import preset
from training.benchmarks.common import SAMPLE_RATE, machine, print_table, timed, write_json
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


def step_seconds(objective: GreedyObjective, waveform: torch.Tensor, steps: int, bf16: bool = False
                 ) -> tuple[float, float]:
    """Mean wall seconds of one optimiser step (after a warm-up step), and the loss of the first timed step."""
    optimizer = torch.optim.Adam(objective.parameters(), lr=1e-5)
    losses = []

    def one_step() -> None:
        generators = Generators.seeded(0, waveform.device)
        with autocast(waveform.device, bf16):
            loss, _ = objective(waveform, generators)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    one_step()
    seconds, _ = timed(lambda: [one_step() for _ in range(steps)])
    return seconds / steps, losses[1]


def loss_only_seconds(objective: GreedyObjective, waveform: torch.Tensor, steps: int, bf16: bool = False) -> float:
    """Seconds per forward and backward of the InfoNCE losses alone, on features computed once."""
    generators = Generators.seeded(0, waveform.device)
    with torch.no_grad(), autocast(waveform.device, bf16):
        outputs = objective.encoder(waveform, generator=generators.noise)
    # both require grad, as in training: the targets' gradient (through positives and negatives) is part of the loss
    features = [(o.context.detach().requires_grad_(), o.target.detach().requires_grad_()) for o in outputs]
    loss_config = objective.config.loss

    def one_pass() -> None:
        draws = Generators.seeded(0, waveform.device).draws
        total = 0.0
        with autocast(waveform.device, bf16):
            for (context, target), predictor in zip(features, objective.predictors.layers):
                batch, frames, _ = target.shape
                sampled = draw_infonce(batch, frames, loss_config.positive_window_frames, loss_config.negatives,
                                       draws, target.device)
                total = total + objective.nce(context, target, predictor, loss_config.prediction_steps,
                                              loss_config.positive_window_frames, sampled).loss
        total.backward()

    one_pass()
    seconds, _ = timed(lambda: [one_pass() for _ in range(steps)])
    return seconds / steps


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
    audio_s = args.batch * args.crop_samples / SAMPLE_RATE
    rows = []
    for name in args.presets.split(","):
        torch.manual_seed(0)
        vectorised = GreedyObjective(preset(name))
        loop = GreedyObjective(preset(name), nce=loop_nce)
        floor = GreedyObjective(preset(name), nce=predictor_only_nce)
        loop.load_state_dict(vectorised.state_dict())
        floor.load_state_dict(vectorised.state_dict())
        fast_s, fast_loss = step_seconds(vectorised, waveform, args.steps, args.bf16)
        slow_s, slow_loss = step_seconds(loop, waveform, args.steps, args.bf16)
        floor_s, _ = step_seconds(floor, waveform, args.steps, args.bf16)
        fast_nce_s, slow_nce_s = (loss_only_seconds(o, waveform, args.steps, args.bf16) for o in (vectorised, loop))
        rows.append({"preset": name, "step_s": fast_s, "steps_per_s": 1 / fast_s, "audio_s_per_s": audio_s / fast_s,
                     "loop_step_s": slow_s, "step_speedup": slow_s / fast_s, "floor_step_s": floor_s,
                     "max_step_speedup": slow_s / floor_s, "loss": fast_loss,
                     "loop_loss": slow_loss, "nce_s": fast_nce_s, "loop_nce_s": slow_nce_s,
                     "nce_speedup": slow_nce_s / fast_nce_s})
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
