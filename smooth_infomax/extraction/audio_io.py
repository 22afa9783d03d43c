"""Reading audio files with soundfile: header probes, full decodes to mono 16 kHz, and clear reasons for every
kind of bad file (empty, truncated, not audio, zero length, NaN, unreadable, not a regular file)."""

from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ..audio import SAMPLE_RATE

_BLOCK_FRAMES = 1 << 18


class BadAudio(ValueError):
    """A file that cannot be used; ``reason`` is a short explanation for the failure report."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FileStat:
    """Size and modification time of an input, used by the fast path of ``--skip-existing``."""

    size_bytes: int
    mtime_ns: int


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
    """A decoded file: ``waveform (samples,)`` mono float32 at 16 kHz, plus how it was obtained."""

    waveform: torch.Tensor
    info: AudioInfo
    resampler: str
    file_format: str
    subtype: str


def stat_input(path: Path) -> FileStat:
    """``FileStat`` of a regular, non-empty file; otherwise ``BadAudio`` saying what is wrong."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        reason = "broken symbolic link" if os.path.islink(path) else "file not found"
        raise BadAudio(reason) from None
    except OSError as err:
        raise BadAudio(f"cannot access file ({err.strerror or err})") from None
    if not stat.S_ISREG(status.st_mode):
        raise BadAudio("not a regular file")
    if status.st_size == 0:
        raise BadAudio("empty file (0 bytes)")
    return FileStat(status.st_size, status.st_mtime_ns)


def _access_problem(path: Path) -> str | None:
    """``"cannot access file (<why>)"`` if the file cannot be opened for reading (permissions and the like,
    which soundfile reports only as "System error"); else ``None``. Only for regular files (``stat_input``
    checks that): opening a FIFO would block."""
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError as err:
        return f"cannot access file ({err.strerror or err})"
    return None


def probe(path: Path) -> AudioInfo:
    """Header information, without decoding; ``BadAudio`` if it cannot be read, is not audio soundfile can read,
    or has no samples."""
    problem = _access_problem(path)
    if problem:
        raise BadAudio(problem)
    try:
        info = sf.info(os.fsencode(path))  # bytes: soundfile cannot encode a name that is not UTF-8
    except Exception as err:  # noqa: BLE001 -- soundfile raises LibsndfileError, RuntimeError, OSError, TypeError
        raise BadAudio(_reason(err, path)) from None
    if info.frames <= 0:
        raise BadAudio("no audio samples (zero length)")
    if info.samplerate <= 0 or info.channels <= 0:
        raise BadAudio(f"invalid header ({info.samplerate} Hz, {info.channels} channels)")
    _check_rate(info.samplerate)
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels))


def _check_rate(sample_rate: int) -> None:
    """A header rate outside what ``extract`` accepts is this file's failure, before anything is allocated."""
    from ..inputs import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise BadAudio(f"header says {sample_rate} Hz; supported rates are {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz")


def decode(path: Path) -> DecodedAudio:
    """Decode a whole file to mono (channel mean) float32 at 16 kHz, resampled with torchaudio exactly as
    ``SmoothInfoMaxEncoder.extract`` resamples; ``BadAudio`` for truncated, non-finite or undecodable files."""
    from ..inputs import resampler_name

    try:
        with sf.SoundFile(os.fsencode(path)) as audio:
            info = AudioInfo(audio.frames, audio.samplerate, audio.channels)
            file_format, subtype = audio.format, audio.subtype
            mono, finite = _read_mono(audio, info.frames)
    except Exception as err:  # noqa: BLE001 -- any decoder error is this file's failure reason
        raise BadAudio(_reason(err, path)) from None
    _check_complete(path, info, mono.shape[0], file_format)
    _check_rate(info.sample_rate)  # before resampling, which allocates 16 kHz / rate samples per sample
    if not finite:
        raise BadAudio("contains NaN or infinite samples")
    if info.sample_rate == SAMPLE_RATE:
        return DecodedAudio(mono, info, "", file_format, subtype)
    import torchaudio.functional

    waveform = torchaudio.functional.resample(mono, info.sample_rate, SAMPLE_RATE)
    return DecodedAudio(waveform, info, resampler_name(info.sample_rate, SAMPLE_RATE), file_format, subtype)


def _read_mono(audio: sf.SoundFile, frames: int) -> tuple[torch.Tensor, bool]:
    """Decode block by block into one preallocated ``(frames,)`` buffer, averaging channels, and check that every
    sample is finite; block-wise, so a long file needs its mono waveform once in memory and little more."""
    mono, filled, finite = torch.empty(max(frames, 0)), 0, True
    for block in audio.blocks(_BLOCK_FRAMES, dtype="float32", always_2d=True):
        finite = finite and bool(np.isfinite(block).all())
        count = block.shape[0]
        if filled + count > mono.shape[0]:  # the header undercounted: grow
            mono = torch.cat([mono[:filled], torch.empty(max(count, filled // 2))])
        mono[filled: filled + count] = torch.from_numpy(block[:, 0] if block.shape[1] == 1 else block.mean(axis=1))
        filled += count
    return mono[:filled], finite


def _check_complete(path: Path, info: AudioInfo, frames_read: int, file_format: str) -> None:
    if frames_read == 0:
        raise BadAudio("no audio samples (zero length)")
    if frames_read < info.frames:
        raise BadAudio(f"truncated: header says {info.frames} frames, only {frames_read} could be read")
    if file_format.upper() in ("WAV", "WAVEX"):
        missing = _riff_missing_bytes(path)
        if missing:
            raise BadAudio(f"truncated: the WAV data chunk is {missing} bytes shorter than its header says")


def _riff_missing_bytes(path: Path) -> int:
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


def _reason(err: Exception, path: Path) -> str:
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
