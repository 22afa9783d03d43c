"""The design choices of ``smooth_infomax/inference/``, measured one by one on 10 s of audio.

    python -m training.benchmarks.attempts [--threads N] [--compile] [--out FILE.json]

- each conv layer of the SIM stack as oneDNN conv1d (channel-first, as ``nn.Conv1d``; what ``inference/convs.py``
  runs on a GPU), as a channels-last conv2d of height 1, and as one matmul over reshaped views of channels-last input
  (kernel = 2 x stride: ``Y = blocks @ [W0 W1]``, then ``Y0[t] + Y1[t + 1]``), and as the same kernel-2 conv over
  blocks by Winograd's F(2, 2) (three matmuls per two output frames; what ``inference/convs.py`` runs on a CPU), in
  float32 and bfloat16;
- the first layer (one input channel) also as a matmul over a strided view;
- the GRU with autocast on (weights cast at every time step) and off;
- optionally ``torch.compile`` of the naive layer-by-layer stack (``--compile``; slow warm-up).
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.config import preset
from smooth_infomax.inference.convs import FoldedConv, block_taps
from training.benchmarks.common import machine, print_table, timed, write_json

SECONDS = 10


def best_ms(fn, repeats: int = 5) -> float:
    fn()
    return 1000 * min(timed(fn)[0] for _ in range(repeats))


def conv_variants(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> dict[str, callable]:
    """Ways to compute ``conv1d(x, weight)``: ``x (1, in, frames)``, ``weight (out, in, kernel)``."""
    out_ch, in_ch, kernel = weight.shape
    nhwc = x.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    w2d = weight.unsqueeze(2).contiguous(memory_format=torch.channels_last)
    variants = {"conv1d": lambda: F.conv1d(x, weight, None, stride, padding),
                "conv2d channels-last": lambda: F.conv2d(nhwc, w2d, None, (1, stride), (0, padding))}
    if in_ch == 1:
        flat = x[0, 0]

        def strided_matmul():
            padded = F.pad(flat, (padding, padding))
            frames = (padded.shape[0] - kernel) // stride + 1
            return padded.as_strided((frames, kernel), (stride, 1)) @ weight[:, 0].T

        variants["matmul over strided view"] = strided_matmul
    if kernel == 2 * stride:
        rows = x[0].T.contiguous()  # (frames, in)
        taps = weight.reshape(out_ch, in_ch, 2, stride).permute(3, 1, 2, 0).reshape(stride * in_ch, 2 * out_ch)
        frames = (rows.shape[0] + 2 * padding - kernel) // stride + 1

        def block_matmul():
            padded = F.pad(rows, (0, 0, padding, (frames + 1) * stride - rows.shape[0] - padding))
            y = padded.reshape(frames + 1, stride * in_ch) @ taps
            return y[:frames, :out_ch] + y[1:, out_ch:]

        variants["matmul over reshaped views"] = block_matmul
        conv = FoldedConv(weight, weight.new_zeros(out_ch), stride, padding, relu=False,
                          taps=block_taps(weight, stride))
        variants["Winograd F(2, 2) over blocks"] = lambda: conv(rows[None])
    return variants


def conv_rows(dtype: torch.dtype) -> list[list[str]]:
    rows, samples = [], 16000 * SECONDS
    x = (0.1 * torch.randn(1, 1, samples)).to(dtype)
    channels = 1
    for module in preset("sim").modules:
        for layer in module.conv_layers:
            weight = (0.02 * torch.randn(layer.channels, channels, layer.kernel_size)).to(dtype)
            frames = (x.shape[-1] + 2 * layer.padding - layer.kernel_size) // layer.stride + 1
            gflop = 2 * frames * layer.channels * channels * layer.kernel_size / 1e9
            for name, fn in conv_variants(x, weight, layer.stride, layer.padding).items():
                ms = best_ms(fn)
                rows.append([str(dtype).replace("torch.", ""), f"k{layer.kernel_size} s{layer.stride} in {channels}",
                             name, f"{ms:.1f}", f"{gflop / ms * 1000:.0f}"])
            x = torch.relu(F.conv1d(x, weight, None, layer.stride, layer.padding))
            channels = layer.channels
    return rows


def gru_rows(encoder: SmoothInfoMaxEncoder) -> list[list[str]]:
    gru = encoder.stages[-1].gru
    x = torch.randn(1, 100 * SECONDS, gru.input_size)
    rows = []
    for label, context in (("float32", contextlib.nullcontext()),
                           ("under bfloat16 autocast", torch.autocast("cpu", dtype=torch.bfloat16))):
        with context, torch.inference_mode():
            rows.append(["GRU", label, f"{best_ms(lambda: gru(x)):.1f}"])
    return rows


def compile_rows(encoder: SmoothInfoMaxEncoder) -> list[list[str]]:
    from training.benchmarks.extraction import naive_features

    wav = 0.1 * torch.randn(16000 * SECONDS)
    compiled = torch.compile(lambda w: naive_features(encoder, w))
    warmup_s, _ = timed(lambda: compiled(wav))
    return [["naive stack", "eager", f"{best_ms(lambda: naive_features(encoder, wav)):.1f}"],
            ["naive stack", f"torch.compile (warm-up {warmup_s:.0f} s)", f"{best_ms(lambda: compiled(wav)):.1f}"],
            ["extract", "folded, channels-last", f"{best_ms(lambda: encoder.extract(wav, sample_rate=16000)):.1f}"]]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = SmoothInfoMaxEncoder.from_pretrained("sim-mix").float().eval()
    print(f"{SECONDS} s of audio; {machine()}")
    with torch.inference_mode():
        convs = conv_rows(torch.float32) + conv_rows(torch.bfloat16)
    print_table(["dtype", "layer", "computed as", "ms", "GFLOP/s"], convs)
    grus = gru_rows(encoder)
    print_table(["part", "setting", "ms"], grus)
    result = {"machine": machine(), "seconds": SECONDS, "convs": convs, "gru": grus}
    if args.compile:
        result["compile"] = compile_rows(encoder)
        print_table(["path", "setting", "ms"], result["compile"])
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
