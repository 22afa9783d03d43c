"""Reading audio for the loaders: soundfile, mono, resampled to 16 kHz with torchaudio, clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from smooth_infomax.audio import SAMPLE_RATE


class AudioFileError(RuntimeError):
    """An audio file could not be used; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: str | Path, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{path}: {reason}")


def audio_info(path: str | Path) -> tuple[int, int]:
    """``(n_frames, sample_rate)`` from the file header, without decoding."""
    try:
        info = sf.info(os.fsencode(path))  # bytes: soundfile cannot encode a name that is not UTF-8
    except Exception as error:  # soundfile raises several types (LibsndfileError, RuntimeError, OSError)
        raise AudioFileError(path, _reason(error)) from error
    if info.frames <= 0:
        raise AudioFileError(path, "file holds no samples")
    return info.frames, info.samplerate


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, start: int = 0, stop: int | None = None,
               expected_rate: int | None = None) -> np.ndarray:
    """Read ``(samples,)`` float32 in [-1, 1], channels averaged, resampled to ``sample_rate``.

    ``start``/``stop`` select samples at the *file's* rate (read without decoding the rest when no
    resampling is needed). ``expected_rate``: refuse files at any other rate.
    """
    try:
        data, rate = sf.read(os.fsencode(path), start=start, stop=stop, dtype="float32", always_2d=True)
    except Exception as error:
        raise AudioFileError(path, _reason(error)) from error
    if expected_rate is not None and rate != expected_rate:
        raise AudioFileError(path, f"sample rate is {rate} Hz, expected {expected_rate} Hz")
    if data.shape[0] == 0:
        raise AudioFileError(path, "file holds no samples" if start == 0 else f"no samples from offset {start}")
    audio = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(audio)):
        raise AudioFileError(path, "samples are not finite (NaN or inf)")
    if rate != sample_rate:
        audio = AF.resample(torch.from_numpy(np.ascontiguousarray(audio)), rate, sample_rate).numpy()
    return np.ascontiguousarray(audio, dtype=np.float32)


def _reason(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    if isinstance(error, FileNotFoundError) or "No such file" in text:
        return "file not found"
    return f"cannot decode audio ({text})"
