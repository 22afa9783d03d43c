"""Audio: the front-end constants, and the one loader from a file to mono float32 at 16 kHz.

``load_audio`` (and ``decode_audio``, which also says how the file was read) is what ``sim-extract``, the analyses
and the training tree read audio with. Every way a file can be unusable raises ``AudioFileError`` naming the file and
a short reason: not found, not a regular file, empty, unreadable, not audio, truncated, zero length, NaN or infinite
samples, or a rate outside [4 kHz, 384 kHz]. soundfile and torchaudio are imported when a file is read.
"""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    import soundfile

SAMPLE_RATE = 16_000
"""Sample rate (Hz) every SIM model runs at; other rates are resampled to it."""

HOP_SAMPLES = 160
"""Samples per output frame of the full CPC conv stack: 5 * 4 * 2 * 2 * 2 (10 ms at 16 kHz)."""

FRAME_RATE_HZ = SAMPLE_RATE / HOP_SAMPLES
"""Frames per second after the full conv stack (100 Hz)."""

MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4_000, 384_000
"""Rates (Hz) accepted from files and arrays; resampling from 1 Hz would allocate 16,000 samples per sample."""

_BLOCK_FRAMES = 1 << 18  # decode this many frames at a time: a long file is held once, as its mono waveform


class AudioFileError(ValueError):
    """An audio file that cannot be used: ``path`` says which, ``reason`` why (``str()`` is ``"path: reason"``)."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path, self.reason = str(path), reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True)
class AudioInfo:
    """What the header says: ``frames`` per channel at ``sample_rate`` Hz."""

    frames: int
    sample_rate: int
    channels: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate

    @property
    def samples_16k(self) -> int:
        """About how many samples the file has after resampling to 16 kHz (for batching and estimates)."""
        return -(-self.frames * SAMPLE_RATE // self.sample_rate)


@dataclass(frozen=True)
class DecodedAudio:
    """A decoded file: ``waveform (samples,)`` mono float32 at the requested rate, plus how it was obtained
    (``resampler`` is empty when the file was at that rate)."""

    waveform: torch.Tensor
    info: AudioInfo
    resampler: str
    file_format: str
    subtype: str


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Read an audio file as ``waveform (samples,)`` float32 at ``sample_rate`` Hz: channels averaged, resampled
    with torchaudio when the file has another rate.

    Raises:
        AudioFileError: the file cannot be used; its ``reason`` says why.

    Example:
        >>> wav = load_audio("speech.flac")  # (samples,) float32 at 16 kHz
    """
    return decode_audio(path, sample_rate).waveform


def check_audio_file(path: str | os.PathLike) -> os.stat_result:
    """The ``os.stat`` of a regular, non-empty file; otherwise ``AudioFileError`` saying what is wrong (reading a
    FIFO would block, so this comes before any read)."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        raise AudioFileError(path, "broken symbolic link" if os.path.islink(path) else "file not found") from None
    except OSError as err:
        raise AudioFileError(path, f"cannot access file ({err.strerror or err})") from None
    if not stat.S_ISREG(status.st_mode):
        raise AudioFileError(path, "not a regular file")
    if status.st_size == 0:
        raise AudioFileError(path, "empty file (0 bytes)")
    return status


def probe_audio(path: str | os.PathLike) -> AudioInfo:
    """Header information, without decoding; ``AudioFileError`` if the file cannot be read, is not audio
    soundfile reads, has no samples or has a rate outside [4 kHz, 384 kHz]."""
    import soundfile as sf

    check_audio_file(path)
    try:
        info = sf.info(os.fsencode(path))  # bytes: soundfile cannot encode a name that is not UTF-8
    except Exception as err:  # noqa: BLE001 -- soundfile raises LibsndfileError, RuntimeError, OSError, TypeError
        raise AudioFileError(path, _reason(err, path)) from None
    if info.frames <= 0:
        raise AudioFileError(path, "no audio samples (zero length)")
    if info.samplerate <= 0 or info.channels <= 0:
        raise AudioFileError(path, f"invalid header ({info.samplerate} Hz, {info.channels} channels)")
    _check_rate(path, info.samplerate)
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))


def decode_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, start_frame: int = 0,
                 stop_frame: int | None = None) -> DecodedAudio:
    """Decode a file to mono (channel mean) float32 at ``sample_rate`` Hz, resampled as ``extract`` resamples.

    ``start_frame``/``stop_frame`` select frames at the *file's* rate (like ``soundfile.read``'s ``start``/``stop``):
    only those are decoded. ``AudioFileError`` for truncated, non-finite or undecodable files.
    """
    import soundfile as sf

    check_audio_file(path)
    try:
        with sf.SoundFile(os.fsencode(path)) as audio:
            info = AudioInfo(audio.frames, audio.samplerate, audio.channels)
            file_format, subtype = audio.format, audio.subtype
            start, count = _frame_range(info.frames, start_frame, stop_frame)
            if start:
                audio.seek(start)
            mono, finite = _read_mono(audio, count)
    except Exception as err:  # noqa: BLE001 -- any decoder error is this file's failure reason
        raise AudioFileError(path, _reason(err, path)) from None
    _check_complete(path, info, start_frame, count, mono.shape[0])
    if start + count >= info.frames and file_format.upper() in ("WAV", "WAVEX"):  # a crop read whole is complete
        _check_wav_complete(path)
    _check_rate(path, info.sample_rate)  # before resampling, which allocates rate-ratio samples per sample
    if not finite:
        raise AudioFileError(path, "contains NaN or infinite samples")
    if info.sample_rate == sample_rate:
        return DecodedAudio(mono, info, "", file_format, subtype)
    waveform = resample(mono, info.sample_rate, sample_rate)
    return DecodedAudio(waveform, info, resampler_name(info.sample_rate, sample_rate), file_format, subtype)


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """``waveform (..., samples)`` from ``orig_rate`` to ``new_rate`` Hz with torchaudio's windowed sinc."""
    import torchaudio.functional

    return torchaudio.functional.resample(waveform, orig_rate, new_rate)


def resampler_name(orig_rate: int, new_rate: int) -> str:
    """How ``resample`` resamples, for the metadata written beside features."""
    import torchaudio

    return (f"torchaudio {torchaudio.__version__} functional.resample {orig_rate}->{new_rate} "
            "(sinc_interp_hann, width 6)")


def _frame_range(frames: int, start_frame: int, stop_frame: int | None) -> tuple[int, int]:
    """The first frame and the number of frames to read, clipped to a file of ``frames`` frames as
    ``soundfile.read`` clips ``start``/``stop``."""
    start, stop, _ = slice(start_frame, stop_frame).indices(frames)
    return start, max(stop - start, 0)


def _read_mono(audio: soundfile.SoundFile, frames: int) -> tuple[torch.Tensor, bool]:
    """Decode up to ``frames`` frames from the current position block by block into one preallocated buffer,
    averaging channels, and check that every sample is finite; block-wise, so a long file needs its mono waveform
    once in memory and little more. Stops early where the file ends before its header says (a truncated file).

    Plain ``read`` calls rather than ``SoundFile.blocks``: each soundfile call asks libsndfile for the position, and
    for FLAC that is a seek costing milliseconds, which a 1.28 s training crop would pay twice more."""
    mono, filled, finite = torch.empty(frames), 0, True
    while filled < frames:
        block = audio.read(min(_BLOCK_FRAMES, frames - filled), dtype="float32", always_2d=True)
        count = block.shape[0]
        if count == 0:
            break
        finite = finite and bool(np.isfinite(block).all())
        mono[filled: filled + count] = torch.from_numpy(block[:, 0] if block.shape[1] == 1 else block.mean(axis=1))
        filled += count
    return mono[:filled], finite


def _check_complete(path: str | os.PathLike, info: AudioInfo, start_frame: int, frames_wanted: int,
                    frames_read: int) -> None:
    """Refuse a read that got no samples, or fewer than the header promised (a truncated file)."""
    if frames_read == 0:
        raise AudioFileError(path, f"no samples from offset {start_frame} (the file has {info.frames} frames)"
                             if start_frame else "no audio samples (zero length)")
    if frames_read < frames_wanted:
        where = f" from offset {start_frame}" if start_frame else ""
        raise AudioFileError(path, f"truncated: header says {info.frames} frames, only {frames_read}{where} could "
                                   "be read")


def _check_wav_complete(path: str | os.PathLike) -> None:
    missing = _riff_missing_bytes(path)
    if missing:
        raise AudioFileError(path, f"truncated: the WAV data chunk is {missing} bytes shorter than its header says")


def _check_rate(path: str | os.PathLike, sample_rate: int) -> None:
    """A header rate outside what ``extract`` accepts is this file's failure, before anything is allocated."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise AudioFileError(path, f"header says {sample_rate} Hz; supported rates are "
                                   f"{MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")


def _access_problem(path: str | os.PathLike) -> str | None:
    """``"cannot access file (<why>)"`` if the file cannot be opened for reading (permissions and the like, which
    soundfile reports only as "System error"); else ``None``. Only for regular files: opening a FIFO would block."""
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError as err:
        return f"cannot access file ({err.strerror or err})"
    return None


def _riff_missing_bytes(path: str | os.PathLike) -> int:
    """How many bytes of a RIFF/WAVE ``data`` chunk are missing from the file (0 when complete or unknown).

    libsndfile silently reads what is there when a WAV file was cut short, so this reads the chunk header
    itself. Streaming writers leave the size 0 or 0xFFFFFFFF; those count as unknown.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        if handle.read(12)[:4] != b"RIFF":
            return 0
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return 0
                return max(0, position + 8 + chunk_size - size)
            position += 8 + chunk_size + (chunk_size & 1)
    return 0


def _reason(err: Exception, path: str | os.PathLike) -> str:
    """The failure reason for a soundfile error on ``path``: its "System error" is made precise by opening the
    file ourselves (a file that vanished or became unreadable since it was listed)."""
    if os.path.isfile(path) and (problem := _access_problem(path)):
        return problem
    if not os.path.lexists(path):
        return "file not found"
    text = str(getattr(err, "error_string", "") or err).strip() or type(err).__name__
    if "format not recognised" in text.lower():
        return f"not a recognised audio format ({text})"
    return f"cannot decode ({text})"
