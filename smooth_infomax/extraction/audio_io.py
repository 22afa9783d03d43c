"""The extraction run's view of the package's audio loader (``smooth_infomax.audio``): failures become
``BadAudio`` with a short reason for the failure report, and inputs get a ``FileStat`` for ``--skip-existing``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..audio import AudioFileError, AudioInfo, DecodedAudio, check_audio_file, decode_audio, probe_audio

__all__ = ["AudioInfo", "BadAudio", "DecodedAudio", "FileStat", "decode", "probe", "stat_input"]


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


def stat_input(path: Path) -> FileStat:
    """``FileStat`` of a regular, non-empty file; otherwise ``BadAudio`` saying what is wrong."""
    try:
        status = check_audio_file(path)
    except AudioFileError as err:
        raise BadAudio(err.reason) from None
    return FileStat(status.st_size, status.st_mtime_ns)


def probe(path: Path) -> AudioInfo:
    """Header information, without decoding (``smooth_infomax.audio.probe_audio``); ``BadAudio`` on failure."""
    try:
        return probe_audio(path)
    except AudioFileError as err:
        raise BadAudio(err.reason) from None


def decode(path: Path) -> DecodedAudio:
    """The whole file as mono float32 at 16 kHz (``smooth_infomax.audio.decode_audio``); ``BadAudio`` on
    failure."""
    try:
        return decode_audio(path)
    except AudioFileError as err:
        raise BadAudio(err.reason) from None
