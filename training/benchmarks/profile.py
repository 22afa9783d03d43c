"""Where ``extract`` spends its time on the utterance corpus: CPU time per group of operators, from ``torch.profiler``.

    python -m training.benchmarks.profile [--model sim-mix] [--utterance-s 180] [--threads 2]
        [--dtypes bfloat16,float32] [--out FILE.json]
    python -m training.benchmarks.profile --training sim [--batch 8] [--threads 1]    # a training step instead

The corpus is ``extraction``'s utterances (1-20 s, seeded), run as ``extraction`` runs ``extract`` (length-sorted
calls of at most ``--batch-seconds`` of padded audio), once to warm up and once under the profiler. Operators are
grouped by what they are part of: ``gru`` (everything below ``aten::gru``, a sequential loop over frames), and
outside it ``matmul`` (``addmm``, ``mm``: convs and heads), ``casts`` (``copy_``, ``to``) and ``other``. The share
of the GRU tells how fast the path would be without it: ``x / (1 - share)``.

``--training PRESET`` profiles one Adam step of the greedy objective instead (``--batch`` crops of 20480 samples,
as ``training.benchmarks.precision`` times it), grouped into ``convs`` (forward and backward), ``matmul``,
``casts`` and ``other``, with the costliest operators listed.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import soundfile as sf
import torch
from torch.profiler import ProfilerActivity, profile

from smooth_infomax import SmoothInfoMaxEncoder
from training.benchmarks.common import machine, write_json
from training.benchmarks.corpus import write_corpora
from training.benchmarks.runs import run_extract

GROUPS = {"matmul": ("aten::addmm", "aten::addmm_", "aten::mm", "aten::bmm"), "casts": ("aten::copy_", "aten::to")}
TRAINING_GROUPS = {"convs": ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_slow_conv2d_forward",
                             "aten::_slow_conv2d_backward"), **GROUPS}


def grouped_cpu_ms(events) -> dict[str, float]:
    """Self CPU milliseconds per group of the profiler's ``events`` (``prof.events()``): ``gru`` holds every operator
    that ran inside ``aten::gru``, and the other groups only what ran outside it."""
    totals = {"gru": 0.0, **{name: 0.0 for name in GROUPS}, "other": 0.0}
    for event in events:
        if _inside_gru(event):
            totals["gru"] += event.self_cpu_time_total / 1000
            continue
        group = next((name for name, ops in GROUPS.items() if event.name in ops), "other")
        totals[group] += event.self_cpu_time_total / 1000
    return totals


def _inside_gru(event) -> bool:
    while event is not None:
        if event.name == "aten::gru":
            return True
        event = event.cpu_parent
    return False


def profile_extract(encoder, wavs: list[torch.Tensor], bf16: bool, batch_seconds: float) -> dict[str, float]:
    """Grouped self CPU milliseconds of one ``extract`` pass over ``wavs``, after one warm-up pass."""
    run_extract(encoder, wavs, bf16, batch_seconds)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_extract(encoder, wavs, bf16, batch_seconds)
    return grouped_cpu_ms(prof.events())


def profile_training_step(preset_name: str, bf16: bool, batch: int, steps: int = 2) -> dict:
    """Self CPU milliseconds per training step: ``{"groups": {group: ms}, "top": {operator: ms}}`` (10 costliest
    operators), averaged over ``steps`` profiled steps after two warm-up steps."""
    from smooth_infomax import preset
    from training.objective import Generators, GreedyObjective

    objective = GreedyObjective(preset(preset_name))
    optimizer = torch.optim.Adam(objective.parameters(), lr=5e-4)
    generators = Generators.seeded(0, torch.device("cpu"))
    audio = torch.randn(batch, 1, 20480, generator=torch.Generator().manual_seed(0)) * 0.1

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = objective(audio, generators)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(), step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    per_operator: dict[str, float] = {}
    for event in prof.key_averages():
        per_operator[event.key] = per_operator.get(event.key, 0.0) + event.self_cpu_time_total / 1000 / steps
    groups = {name: 0.0 for name in (*TRAINING_GROUPS, "other")}
    for name, ms in per_operator.items():
        groups[next((g for g, ops in TRAINING_GROUPS.items() if name in ops), "other")] += ms
    top = dict(sorted(per_operator.items(), key=lambda kv: -kv[1])[:10])
    return {"groups": groups, "top": top}


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.training:
        return _main_training(args)
    encoder = SmoothInfoMaxEncoder.from_pretrained(args.model).float().eval()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_corpora(Path(folder), args.utterance_s, 0, max_s=args.utterance_max_s)["utterances"]
        wavs = [torch.from_numpy(sf.read(path, dtype="float32")[0]) for path in paths]
    result: dict = {"machine": machine(), "model": args.model, "audio_s": args.utterance_s, "dtypes": {}}
    for dtype in args.dtypes.split(","):
        totals = profile_extract(encoder, wavs, dtype == "bfloat16", args.batch_seconds)
        result["dtypes"][dtype] = totals
        print(_line(dtype, totals))
    write_json(args.out, result)
    return result


def _main_training(args: argparse.Namespace) -> dict:
    result: dict = {"machine": machine(), "preset": args.training, "batch": args.batch, "dtypes": {}}
    for dtype in args.dtypes.split(","):
        found = profile_training_step(args.training, dtype == "bfloat16", args.batch)
        result["dtypes"][dtype] = found
        print(f"{dtype} (per step): {_shares(found['groups'])}")
        print("  costliest: " + ", ".join(f"{op} {ms:.0f} ms" for op, ms in found["top"].items()))
    write_json(args.out, result)
    return result


def _shares(totals: dict[str, float]) -> str:
    all_ms = sum(totals.values())
    return f"{all_ms:.0f} ms of CPU time: " + ", ".join(f"{name} {ms:.0f} ms ({ms / all_ms:.0%})"
                                                         for name, ms in totals.items())


def _line(dtype: str, totals: dict[str, float]) -> str:
    without_gru = 1 / (1 - totals["gru"] / sum(totals.values()))
    return f"{dtype}: {_shares(totals)}; without the GRU: {without_gru:.2f}x"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sim-mix")
    parser.add_argument("--utterance-s", type=float, default=180.0)
    parser.add_argument("--utterance-max-s", type=float, default=20.0)
    parser.add_argument("--batch-seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dtypes", default="bfloat16,float32")
    parser.add_argument("--training", metavar="PRESET", help="profile a training step of this preset instead")
    parser.add_argument("--batch", type=int, default=8, help="with --training: crops of 20480 samples per step")
    parser.add_argument("--out", type=Path)
    return parser


if __name__ == "__main__":
    main()
