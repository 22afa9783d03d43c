"""The ceiling of CPU extraction: FLOPs counted from the config, and the cores' FMA peak.

FLOPs of one clip (2 per multiply-accumulate), from the config and the frame counts of ``geometry`` (padding frames
included, as every path computes them): conv layer ``2 * frames * out * in * kernel``; each 1x1 head
``2 * frames * dim * dim``; the GRU's input and recurrent matmuls ``2 * frames * 3 * hidden * (in + hidden)``.
Biases, BatchNorm, ReLU and the GRU's gate arithmetic are left out (memory-bound, a few FLOPs per value). These are
the useful FLOPs: a path that computes fewer (Winograd) or more (padding a batch) is still credited with these.

Peak per core, from ``lscpu``'s vendor and flags (``flop_per_cycle``): AMD Zen 4 runs AVX-512 on 2 FMA pipes of
256 bits, so 16 float32 FMAs = 32 float32 FLOP per cycle, and bfloat16 through ``avx512_bf16`` dot products
(``VDPBF16PS``: each float32 lane adds two bfloat16 products) doubles that, 64; Intel's AVX-512 server cores have 2
pipes of 512 bits, 64 and 128; AMX (``amx_bf16``, Sapphire Rapids and later) multiplies bfloat16 tiles at 1024 FMAs,
2048 FLOP per cycle; AVX2 without AVX-512: 32 float32 FLOP and no native bfloat16 (no bfloat16 peak). Times the
cores the threads run on and the clock, read from ``lscpu`` (``CPU max MHz``) or ``/proc/cpuinfo`` (``cpu MHz``; on
a VM the nominal clock, while the cores may boost above it: a measured rate above the peak says so, and
``--clock-ghz`` sets the clock).
"""

from __future__ import annotations

import os
import re
import subprocess

from smooth_infomax.config import EncoderConfig
from smooth_infomax.geometry import conv_output_length


def flop_per_cycle(lscpu: str) -> tuple[int, int, str]:
    """Float32 and bfloat16 FLOP per cycle per core for the CPU ``lscpu`` describes (bfloat16 0: not native), and
    the unit that sets them."""
    found = re.search(r"^Flags:\s*(.*)$", lscpu, re.M)
    flags = set(found.group(1).split()) if found else set()
    intel = "GenuineIntel" in lscpu
    if "amx_bf16" in flags:
        return 64, 2048, "2 x 512-bit FMA pipes; AMX bfloat16 tiles"
    if "avx512f" in flags:
        wide = 2 if intel else 1  # Intel server cores: 512-bit pipes; Zen 4: 256-bit pipes
        return 32 * wide, (64 * wide if "avx512_bf16" in flags else 0), \
            f"2 x {256 * wide}-bit FMA pipes" + ("; avx512_bf16 dot products" if "avx512_bf16" in flags else "")
    return 32, 0, "2 x 256-bit FMA pipes; no native bfloat16"


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
    lscpu = _lscpu()
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
    found = re.search(r"^Thread\(s\) per core:\s*(\d+)", _lscpu(), re.M)
    threads_per_core = int(found.group(1)) if found else 1
    return max(1, cpus // max(1, threads_per_core))


def peaks_gflops(threads: int, clock_ghz: float | None = None, lscpu: str | None = None) -> dict[str, object]:
    """The peak of the cores ``threads`` run on: ``{"float32": GFLOP/s, "bfloat16": GFLOP/s (0: not native),
    "cores", "clock_ghz", "clock_source", "flop_per_cycle", "unit"}``; ``lscpu`` is that command's output (default:
    run it)."""
    source = "--clock-ghz"
    if clock_ghz is None:
        clock_ghz, source = cpu_clock_ghz()
    if lscpu is None:
        lscpu = _lscpu()
    float32, bfloat16, unit = flop_per_cycle(lscpu)
    cores = min(threads, physical_cores())
    return {"float32": cores * float32 * clock_ghz, "bfloat16": cores * bfloat16 * clock_ghz, "cores": cores,
            "clock_ghz": clock_ghz, "clock_source": source, "flop_per_cycle": [float32, bfloat16], "unit": unit}


def _lscpu() -> str:
    try:
        return subprocess.run(["lscpu"], capture_output=True, text=True, check=False, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def machine_lines(peaks: dict, matmul: dict[str, float]) -> list[str]:
    """The peak, and each measured matmul rate as a share of it."""
    float32, bfloat16 = peaks["flop_per_cycle"]
    lines = [f"peak: {peaks['cores']} cores x {peaks['clock_ghz']:.2f} GHz ({peaks['clock_source']}) x "
             f"{float32} / {bfloat16} FLOP/cycle ({peaks['unit']}) = {peaks['float32']:.0f} / "
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
