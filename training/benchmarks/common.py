"""Shared pieces of the benchmark scripts: a mixed-length corpus, timers (one call; calls taking turns), matmul rates
and table printing."""

from __future__ import annotations

import functools
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from smooth_infomax.examples import example_files

SAMPLE_RATE = 16000


def speech_like(duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """``duration_s`` of audio tiled from the package's example utterances (real synthetic speech), at random
    offsets and gains, float32 in [-1, 1]."""
    clips = [sf.read(path, dtype="float32")[0] for path in example_files()]
    wanted, parts, total = int(duration_s * SAMPLE_RATE), [], 0
    while total < wanted:
        clip = clips[rng.integers(len(clips))]
        start = int(rng.integers(len(clip) // 2))
        parts.append(clip[start:] * rng.uniform(0.5, 1.0))
        total += len(parts[-1])
    return np.concatenate(parts)[:wanted].astype(np.float32)


def write_corpus(folder: Path, durations_s: list[float], seed: int = 0) -> list[Path]:
    """FLAC files of the given durations in ``folder`` (16 kHz mono, PCM_16); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, paths = np.random.default_rng(seed), []
    for i, duration_s in enumerate(durations_s):
        path = folder / f"clip{i:03d}_{duration_s:.0f}s.flac"
        if not path.exists():
            sf.write(path, speech_like(duration_s, rng), SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def mixed_durations_s(n_files: int, long_s: float, seed: int = 0, max_s: float = 30.0) -> list[float]:
    """``n_files`` durations spread over 1 to ``max_s`` seconds, plus one file of ``long_s`` seconds (if > 0)."""
    rng = np.random.default_rng(seed)
    durations = [float(d) for d in np.round(rng.uniform(1.0, max_s, n_files), 2)]
    return durations + ([long_s] if long_s > 0 else [])


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds of one call, and its result."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def in_turns(calls: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Wall seconds of each timed call: every call once to warm up, then ``rounds`` rounds of one call each, so
    that a drift in the machine's speed (about 20 % on a shared one) reaches every call alike instead of
    whichever ran during it."""
    for call in calls.values():
        call()
    seconds = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            seconds[name].append(timed(call)[0])
    return seconds


def matmul_rate_gflops(dtype: torch.dtype, max_size: int = 4096, min_call_s: float = 0.1, repeats: int = 5) -> float:
    """Best measured GFLOP/s of a square matmul in ``dtype`` on the CPU. The size doubles from 512 until one call
    takes ``min_call_s`` (or reaches ``max_size``), so that a dtype without a fast path here (bfloat16 on a CPU
    without AVX-512 BF16 runs near 1 GFLOP/s) is measured in seconds, not hours."""
    size = 256
    while size < max_size:
        size *= 2
        a, b = torch.randn(size, size).to(dtype), torch.randn(size, size).to(dtype)
        if timed(functools.partial(torch.matmul, a, b))[0] >= min_call_s:
            break
    best = min(timed(functools.partial(torch.matmul, a, b))[0] for _ in range(repeats))
    return 2 * size**3 / best / 1e9


def machine() -> dict[str, object]:
    return {"processor": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads()}


def print_table(header: list[str], rows: list[list[object]]) -> None:
    """A Markdown table on stdout."""
    text = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(header)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in text:
        print(line(row))


def write_json(path: Path | None, result: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {path}")
