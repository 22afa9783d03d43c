"""The ceiling of CPU extraction: FLOPs counted from the config, and the cores' FMA peak.

FLOPs of one clip (2 per multiply-accumulate), from the config and the frame counts of ``geometry`` (padding frames
included, as every path computes them): conv layer ``2 * frames * out * in * kernel``; each 1x1 head
``2 * frames * dim * dim``; the GRU's input and recurrent matmuls ``2 * frames * 3 * hidden * (in + hidden)``.
Biases, BatchNorm, ReLU and the GRU's gate arithmetic are left out (memory-bound, a few FLOPs per value). These are
the useful FLOPs: a path that computes fewer (Winograd) or more (padding a batch) is still credited with these.

Peak: per core, 2 FMA pipes of 256 bits on Zen 4 (an AVX-512 instruction takes both), so 16 float32 FMAs = 32
float32 FLOP per cycle; bfloat16 through ``avx512_bf16`` dot products (``VDPBF16PS``: each float32 lane adds two
bfloat16 products) doubles that, 64 FLOP per cycle. Times the cores the threads run on and the clock, read from
``lscpu`` (``CPU max MHz``) or ``/proc/cpuinfo`` (``cpu MHz``; on a VM the nominal clock, while the cores may boost
above it: a measured rate above the peak says so, and ``--clock-ghz`` sets the clock).
"""

from __future__ import annotations

import os
import re
import subprocess

from smooth_infomax.config import EncoderConfig
from smooth_infomax.geometry import conv_output_length

FLOAT32_FLOP_PER_CYCLE = 32  # per core: 2 x 256-bit FMA pipes, 8 float32 lanes each, 2 FLOP per FMA
BFLOAT16_FLOP_PER_CYCLE = 64  # per core: VDPBF16PS, 2 bfloat16 products per float32 lane


def clip_flops(config: EncoderConfig, samples: int, logvar: bool = True) -> dict[str, float]:
    """FLOPs of one clip of ``samples`` by part: ``convs``, ``mean heads``, ``logvar heads`` (0 without
    ``logvar``), ``gru``, and ``total``."""
    counts = {"convs": 0.0, "mean heads": 0.0, "logvar heads": 0.0, "gru": 0.0}
    frames, channels = samples, config.in_channels
    for module in config.modules:
        for layer in module.conv_layers:
            frames = conv_output_length(frames, layer)
            counts["convs"] += 2.0 * frames * layer.channels * channels * layer.kernel_size
            channels = layer.channels
        if module.head != "none":
            counts["mean heads"] += 2.0 * frames * channels * channels
            if module.is_gaussian and logvar:
                counts["logvar heads"] += 2.0 * frames * channels * channels
        if module.gru_hidden_size:
            hidden = module.gru_hidden_size
            counts["gru"] += 2.0 * frames * 3 * hidden * (channels + hidden)
            channels = hidden
    counts["total"] = sum(counts.values())
    return counts


def corpus_flops(config: EncoderConfig, lengths: list[int], logvar: bool = True) -> dict[str, float]:
    """``clip_flops`` summed over clips of ``lengths`` samples."""
    total: dict[str, float] = {}
    for samples in lengths:
        for part, flops in clip_flops(config, samples, logvar).items():
            total[part] = total.get(part, 0.0) + flops
    return total


def cpu_clock_ghz() -> tuple[float, str]:
    """The cores' clock in GHz and where it was read: ``lscpu``'s ``CPU max MHz``, else the highest ``cpu MHz`` of
    ``/proc/cpuinfo``; ``(0.0, "unknown")`` if neither says."""
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        lscpu = ""
    if match := re.search(r"^CPU max MHz:\s*([\d.]+)", lscpu, re.M):
        return float(match.group(1)) / 1000, "lscpu CPU max MHz"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            clocks = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", cpuinfo.read(), re.M)]
    except OSError:
        clocks = []
    return (max(clocks) / 1000, "/proc/cpuinfo cpu MHz") if clocks else (0.0, "unknown")


def physical_cores() -> int:
    """Cores (not hardware threads) this process may run on, from ``lscpu``; the CPU count if it does not say."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
        threads_per_core = int(re.search(r"^Thread\(s\) per core:\s*(\d+)", lscpu, re.M).group(1))  # type: ignore[union-attr]
    except (OSError, subprocess.SubprocessError, AttributeError, ValueError):
        threads_per_core = 1
    return max(1, cpus // max(1, threads_per_core))


def peaks_gflops(threads: int, clock_ghz: float | None = None) -> dict[str, object]:
    """The FMA peak of the cores ``threads`` run on: ``{"float32": GFLOP/s, "bfloat16": GFLOP/s, "cores",
    "clock_ghz", "clock_source"}``."""
    source = "--clock-ghz"
    if clock_ghz is None:
        clock_ghz, source = cpu_clock_ghz()
    cores = min(threads, physical_cores())
    return {"float32": cores * FLOAT32_FLOP_PER_CYCLE * clock_ghz,
            "bfloat16": cores * BFLOAT16_FLOP_PER_CYCLE * clock_ghz, "cores": cores,
            "clock_ghz": clock_ghz, "clock_source": source}


def machine_lines(peaks: dict, matmul: dict[str, float]) -> list[str]:
    """The peak, and each measured matmul rate as a share of it."""
    lines = [f"peak: {peaks['cores']} cores x {peaks['clock_ghz']:.2f} GHz ({peaks['clock_source']}) x "
             f"{FLOAT32_FLOP_PER_CYCLE} / {BFLOAT16_FLOP_PER_CYCLE} FLOP/cycle = {peaks['float32']:.0f} / "
             f"{peaks['bfloat16']:.0f} GFLOP/s float32 / bfloat16"]
    for dtype, rate in matmul.items():
        peak = peaks[dtype]
        lines.append(f"matmul {dtype}: {rate:.0f} GFLOP/s, {_share(rate, peak)} of the peak"
                     + (f" (above it: the cores run at >= {rate / peak * peaks['clock_ghz']:.2f} GHz)"
                        if peak and rate > peak else ""))
    return lines


def corpus_lines(peaks: dict, flops: dict[str, float], audio_s: float, baseline_gflops: float) -> list[str]:
    """A corpus's FLOPs per audio-second by part, and how far the plain float32 stack is from each peak."""
    parts = ", ".join(f"{part} {value / audio_s / 1e9:.2f}" for part, value in flops.items() if part != "total")
    lines = [f"GFLOP per audio-second: {flops['total'] / audio_s / 1e9:.2f} ({parts})"]
    for dtype in ("float32", "bfloat16"):
        peak = peaks[dtype]
        if peak and baseline_gflops:
            lines.append(f"plain float32 stack at {baseline_gflops:.0f} GFLOP/s, {_share(baseline_gflops, peak)} of "
                         f"the {dtype} peak: at that peak the corpus would run {peak / baseline_gflops:.1f}x faster")
    return lines


def _share(rate: float, peak: float) -> str:
    return f"{rate / peak * 100:.0f} %" if peak else "?"
