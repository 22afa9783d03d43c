"""Reading audio for the loaders: the package's one loader (``smooth_infomax.audio``) with numpy results, reads of a
frame range, and an optional check of the file's own rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smooth_infomax.audio import SAMPLE_RATE, AudioFileError, decode_audio, probe_audio

__all__ = ["AudioFileError", "audio_info", "read_audio"]


def audio_info(path: str | Path) -> tuple[int, int]:
    """``(n_frames, sample_rate)`` from the file header, without decoding."""
    info = probe_audio(path)
    return info.frames, info.sample_rate


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, start: int = 0, stop: int | None = None,
               expected_rate: int | None = None) -> np.ndarray:
    """Read ``(samples,)`` float32 in [-1, 1], channels averaged, resampled to ``sample_rate``.

    ``start``/``stop`` select samples at the *file's* rate (read without decoding the rest). ``expected_rate``:
    refuse files at any other rate. Raises ``AudioFileError`` (path and reason) for a file that cannot be used.
    """
    decoded = decode_audio(path, sample_rate, start, stop)
    if expected_rate is not None and decoded.info.sample_rate != expected_rate:
        raise AudioFileError(path, f"sample rate is {decoded.info.sample_rate} Hz, expected {expected_rate} Hz")
    return np.ascontiguousarray(decoded.waveform.numpy(), dtype=np.float32)
