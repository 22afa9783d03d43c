"""The benchmark corpora of ``extraction`` and ``tricks``: utterances of 1-20 s, and one long file.

Lengths are drawn from a seeded generator, so every run (and every machine) times the same durations. The audio is
real speech where a folder of it is given (``source``: clips cut at seeded offsets from its files, decoded to 16 kHz
mono), else the package's example utterances tiled at random offsets and gains (``common.speech_like``), which needs
nothing beyond the package.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from smooth_infomax.audio import load_audio
from training.benchmarks.common import SAMPLE_RATE, speech_like

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg", ".mp3")


def utterance_durations_s(total_s: float, seed: int = 0, min_s: float = 1.0, max_s: float = 20.0) -> list[float]:
    """Durations drawn uniformly from ``[min_s, max_s]`` (to 10 ms) until they add up to ``total_s``; the last one
    is cut to the remainder (never below ``min_s``)."""
    rng, durations = np.random.default_rng(seed), []
    while sum(durations) < total_s - 1e-9:
        left = total_s - sum(durations)
        durations.append(round(max(min_s, min(float(rng.uniform(min_s, max_s)), left)), 2))
    return durations


def write_clips(folder: Path, durations_s: list[float], seed: int = 0, source: Path | None = None,
                prefix: str = "utt") -> list[Path]:
    """FLAC files (16 kHz mono, PCM_16) of the given durations in ``folder``, cut from the audio under ``source`` or
    synthesised; a file already there under its name is kept (same seed, same content). Returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pool = _SourcePool(source, rng) if source is not None else None
    paths = []
    for i, duration_s in enumerate(durations_s):
        path = folder / f"{prefix}{i:03d}_{duration_s:.2f}s.flac"
        if not path.exists():
            audio = pool.clip(duration_s) if pool is not None else speech_like(duration_s, rng)
            sf.write(path, audio, SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def write_corpora(folder: Path, utterance_s: float, long_s: float, seed: int = 0, source: Path | None = None,
                  max_s: float = 20.0) -> dict[str, list[Path]]:
    """``{"utterances": [...], "long": [...]}``: utterances of 1 to ``max_s`` seconds adding up to ``utterance_s``
    in ``folder/utterances`` and one file of ``long_s`` in ``folder/long`` (no long corpus when ``long_s`` is 0),
    each folder holding nothing else (``sim-extract`` reads a whole folder)."""
    durations = utterance_durations_s(utterance_s, seed, max_s=max_s)
    corpora = {"utterances": write_clips(folder / "utterances", durations, seed, source)}
    if long_s > 0:
        corpora["long"] = write_clips(folder / "long", [long_s], seed + 1, source, prefix="long")
    for name, paths in corpora.items():
        if others := sorted(set((folder / name).iterdir()) - set(paths)):
            raise FileExistsError(f"{folder / name} holds files of another corpus ({others[0].name}, ...), which "
                                  "sim-extract would read too: give an empty or a new folder")
    return corpora


class _SourcePool:
    """Clips cut from the audio files under a folder: each clip starts at a random offset of a random file and runs
    on into the next files (in a random order) when the file is shorter."""

    def __init__(self, source: Path, rng: np.random.Generator):
        self.paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if not self.paths:
            raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {source}")
        self.rng = rng

    def clip(self, duration_s: float) -> np.ndarray:
        wanted, parts, total = int(round(duration_s * SAMPLE_RATE)), [], 0
        order = self.rng.permutation(len(self.paths))
        for n in range(10_000):
            audio = load_audio(self.paths[order[n % len(order)]]).numpy()
            start = int(self.rng.integers(max(1, len(audio) // 2))) if n == 0 else 0
            parts.append(audio[start:])
            total += len(parts[-1])
            if total >= wanted:
                break
        return np.clip(np.concatenate(parts)[:wanted], -1.0, 1.0).astype(np.float32)
