"""The one audio loader (``smooth_infomax.audio``): mono float32 at 16 kHz, frame ranges, and failures that name
the file and the reason; ``sim-extract``, the analyses and the training tree all read through it."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional

from smooth_infomax.audio import SAMPLE_RATE, AudioFileError, decode_audio, load_audio, probe_audio


def _write(path, data: np.ndarray, rate: int, subtype: str | None = None):
    sf.write(str(path), data, rate, subtype=subtype)
    return path


def _noise(frames: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    data = (np.random.default_rng(seed).standard_normal((frames, channels)) * 0.1).astype(np.float32)
    return data[:, 0] if channels == 1 else data


def test_mono_16k_file_is_read_as_is(tmp_path):
    data = _noise(8000)
    wav = load_audio(_write(tmp_path / "a.wav", data, SAMPLE_RATE, "FLOAT"))
    assert wav.dtype == torch.float32 and wav.shape == (8000,)
    assert torch.equal(wav, torch.from_numpy(data))


def test_channels_are_averaged_and_other_rates_resampled(tmp_path):
    data = _noise(44100, channels=2)
    path = _write(tmp_path / "stereo.wav", data, 44100, "FLOAT")
    expected = torchaudio.functional.resample(torch.from_numpy(data.mean(axis=1)), 44100, SAMPLE_RATE)
    assert torch.equal(load_audio(path), expected)
    decoded = decode_audio(path)
    assert decoded.info.sample_rate == 44100 and decoded.info.channels == 2 and "44100->16000" in decoded.resampler
    assert load_audio(path, sample_rate=8000).shape == (8000,)


def test_a_frame_range_decodes_only_those_frames(tmp_path):
    path = _write(tmp_path / "a.flac", _noise(16000), SAMPLE_RATE)
    whole = load_audio(path)
    assert torch.equal(decode_audio(path, start_frame=160, stop_frame=2160).waveform, whole[160:2160])
    assert torch.equal(decode_audio(path, start_frame=15000).waveform, whole[15000:])
    with pytest.raises(AudioFileError, match="no samples from offset 20000"):
        decode_audio(path, start_frame=20000)


def _bad_files(folder):
    good = _write(folder / "src.wav", _noise(16000), SAMPLE_RATE).read_bytes()
    nan = np.full(800, 0.1, np.float32)
    nan[10] = np.nan
    (folder / "folder.wav").mkdir()
    os.mkfifo(folder / "fifo.wav")
    os.symlink(folder / "missing-target.wav", folder / "broken_link.wav")
    files = {
        "missing.wav": "file not found",
        "broken_link.wav": "broken symbolic link",
        "folder.wav": "not a regular file",
        "fifo.wav": "not a regular file",
        "empty.wav": "empty file (0 bytes)",
        "not_audio.wav": "not a recognised audio format",
        "truncated.wav": "truncated",
        "zero_length.wav": "no audio samples (zero length)",
        "nan.wav": "contains NaN or infinite samples",
        "rate1hz.wav": "header says 1 Hz; supported rates are 4000-384000 Hz",
    }
    (folder / "empty.wav").write_bytes(b"")
    (folder / "not_audio.wav").write_text("this is not audio at all " * 20)
    (folder / "truncated.wav").write_bytes(good[: len(good) // 2])
    _write(folder / "zero_length.wav", np.zeros(0, np.float32), SAMPLE_RATE)
    _write(folder / "nan.wav", nan, SAMPLE_RATE, "FLOAT")
    _write(folder / "rate1hz.wav", np.full(100, 0.1, np.float32), 1)
    return files


def test_every_failure_names_the_file_and_the_reason(tmp_path):
    for name, reason in _bad_files(tmp_path).items():
        path = tmp_path / name
        with pytest.raises(AudioFileError) as error:
            load_audio(path)
        assert error.value.path == str(path) and reason in error.value.reason, (name, error.value.reason)
        assert str(error.value) == f"{path}: {error.value.reason}"


def test_the_header_probe_gives_the_same_reasons(tmp_path):
    for name, reason in _bad_files(tmp_path).items():
        if name in ("truncated.wav", "nan.wav"):  # only a full decode finds these
            continue
        with pytest.raises(AudioFileError, match=reason.replace("(", r"\(").replace(")", r"\)")):
            probe_audio(tmp_path / name)


def test_extraction_analysis_and_training_read_through_the_one_loader(tmp_path):
    from smooth_infomax.analysis.corpus import DeBoerSyllables, load_clips
    from smooth_infomax.extraction.audio_io import BadAudio, decode
    from training.data import audio_io as training_audio

    stereo = _write(tmp_path / "bagubi_1_1_ba.wav", _noise(22050, channels=2), 22050, "FLOAT")
    expected = load_audio(stereo)
    assert torch.equal(decode(stereo).waveform, expected)
    assert torch.equal(torch.from_numpy(training_audio.read_audio(stereo)), expected)
    clips = load_clips(DeBoerSyllables(tmp_path), "train", 1, crop_samples=expected.shape[0])
    assert torch.equal(clips.audio[0], expected)

    broken = tmp_path / "bagubi_1_2_gu.wav"
    broken.write_text("this is not audio at all " * 20)
    reason = "not a recognised audio format"
    with pytest.raises(BadAudio, match=reason):
        decode(broken)
    assert training_audio.AudioFileError is AudioFileError
    with pytest.raises(AudioFileError, match=reason) as error:
        training_audio.read_audio(broken)
    assert error.value.path == str(broken)
    with pytest.raises(AudioFileError, match=reason):
        load_clips(DeBoerSyllables(tmp_path), "train", 2, crop_samples=100)
