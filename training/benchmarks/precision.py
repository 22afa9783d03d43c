"""Training speed in float32 and under bfloat16 autocast on this CPU, measured in one run.

    python -m training.benchmarks.precision [--presets sim,gim_sim_repo] [--batch 8] [--steps 5] [--threads 1]

For each preset, two copies of the same objective take one Adam step each in turns (``in_turns``): one in float32,
one under bfloat16 autocast, on the same crops. Prints steps/s, audio-seconds/s and the bfloat16 speed-up (median of
the per-round ratios), and whether the CPU has native bfloat16 (AVX-512 BF16 or AMX); without it bfloat16 is slower.
"""

from __future__ import annotations

import argparse
import copy
import functools
import statistics
from pathlib import Path

import numpy as np
import torch

from smooth_infomax import preset
from training.benchmarks.common import SAMPLE_RATE, in_turns, machine, print_table, speech_like, write_json
from training.benchmarks.training_step import autocast
from training.objective import Generators, GreedyObjective
from training.train import cpu_has_native_bf16


def step_rounds(preset_name: str, waveform: torch.Tensor,
                steps: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Seconds of each of ``steps`` rounds of a float32 and a bfloat16 Adam step, taken in turns, and each copy's
    first loss (same weights and crops, so they differ only by precision)."""
    torch.manual_seed(0)
    float32 = GreedyObjective(preset(preset_name)).train()
    objectives = {"float32": float32, "bfloat16": copy.deepcopy(float32)}
    optimizers = {name: torch.optim.Adam(o.parameters(), lr=1e-5) for name, o in objectives.items()}
    losses: dict[str, list[float]] = {name: [] for name in objectives}

    def one_step(name: str) -> None:
        with autocast(waveform.device, name == "bfloat16"):
            loss, _ = objectives[name](waveform, Generators.seeded(0, waveform.device))
        optimizers[name].zero_grad(set_to_none=True)
        loss.backward()
        optimizers[name].step()
        losses[name].append(loss.item())

    seconds = in_turns({name: functools.partial(one_step, name) for name in objectives}, steps)
    return seconds, {name: each[0] for name, each in losses.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m training.benchmarks.precision", description=__doc__.split("\n")[0])
    parser.add_argument("--presets", default="sim,gim_sim_repo")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop-samples", type=int, default=20480)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    clips = [speech_like(args.crop_samples / SAMPLE_RATE, rng) for _ in range(args.batch)]
    waveform = torch.from_numpy(np.stack(clips))
    waveform = waveform.unsqueeze(1)
    audio_s = args.batch * args.crop_samples / SAMPLE_RATE
    rows, result = [], {"machine": machine(), "native_bf16": cpu_has_native_bf16(), "batch": args.batch,
                        "crop_samples": args.crop_samples, "presets": {}}
    for name in args.presets.split(","):
        seconds, first_loss = step_rounds(name, waveform, args.steps)
        ratio = statistics.median(a / b for a, b in zip(seconds["float32"], seconds["bfloat16"], strict=True))
        median = {dtype: statistics.median(each) for dtype, each in seconds.items()}
        result["presets"][name] = {"seconds_each": seconds, "bf16_speedup": ratio, "first_loss": first_loss}
        rows.append([name, *(f"{1 / median[d]:.3f} / {audio_s / median[d]:.1f}" for d in ("float32", "bfloat16")),
                     f"{ratio:.2f}x"])
    print(f"{result['machine']}, native bfloat16: {result['native_bf16']}, batch {args.batch} x {args.crop_samples}")
    print_table(["preset", "float32 steps/s / audio-s/s", "bfloat16 steps/s / audio-s/s", "bf16 speed-up"], rows)
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
