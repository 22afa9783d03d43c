"""A folder of good and bad inputs: good ones are extracted correctly, bad ones are reported with path and reason,
the run goes on, and the exit code is 1."""

import json
import os

import numpy as np
import soundfile as sf

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.extraction import load_features
from test_cli_common import (
    no_hang_fixture,  # noqa: F401 (fixture)
    reference,
    run_cli,
    tiny_model_fixture,  # noqa: F401 (fixtures)
    write_audio,
)

GOOD = {  # name -> (seconds, rate, channels, subtype)
    "mono16k.wav": (0.5, 16000, 1, "PCM_16"),
    "stereo.wav": (0.4, 44100, 2, "PCM_16"),
    "rate8k.wav": (0.6, 8000, 1, "PCM_16"),
    "rate48k.flac": (0.3, 48000, 1, "PCM_16"),
    "pcm24.wav": (0.35, 16000, 1, "PCM_24"),
    "ünïcødé 音声/spaces and ünï.wav": (0.3, 16000, 1, "PCM_16"),
    "vorbis.ogg": (0.5, 16000, 1, "VORBIS"),
    "layer3.mp3": (0.5, 16000, 1, "MPEG_LAYER_III"),
    "folder.wav/inside.wav": (0.25, 16000, 1, "PCM_16"),
}
BAD = {  # name -> words the reason must contain
    "empty.wav": "empty file",
    "truncated.wav": "truncated",
    "truncated.flac": "cannot decode",
    "not_audio.wav": "not a recognised audio format",
    "zero_length.wav": "zero length",
    "nan.wav": "NaN",
    "broken_link.wav": "broken symbolic link",
    "fifo.wav": "not a regular file",
    "tiny.wav": "too short",
    "rate1hz.wav": "header says 1 Hz; supported rates are 4000-384000 Hz",
}


def make_bad_files(folder):
    good = write_audio(folder / "src.wav", 1.0, seed=7).read_bytes()
    (folder / "empty.wav").write_bytes(b"")
    (folder / "truncated.wav").write_bytes(good[: len(good) // 2])
    flac = write_audio(folder / "src.flac", 1.0, seed=8).read_bytes()
    (folder / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    (folder / "not_audio.wav").write_text("this is not audio at all " * 20)
    sf.write(str(folder / "zero_length.wav"), np.zeros(0, np.float32), 16000)
    nan = np.full(8000, 0.1, np.float32)
    nan[100] = np.nan
    sf.write(str(folder / "nan.wav"), nan, 16000, subtype="FLOAT")
    os.symlink(folder / "missing-target.wav", folder / "broken_link.wav")
    os.mkfifo(folder / "fifo.wav")
    write_audio(folder / "tiny.wav", 100 / 16000)
    sf.write(str(folder / "rate1hz.wav"), np.full(16000, 0.1, np.float32), 1)  # 32 KB; 16 kHz would be 1 GB
    (folder / "src.wav").unlink()
    (folder / "src.flac").unlink()


def test_bad_files_are_reported_and_good_ones_extracted(tmp_path, tiny_model, no_hang):
    folder = tmp_path / "in"
    for i, (name, (seconds, rate, channels, subtype)) in enumerate(GOOD.items()):
        write_audio(folder / name, seconds, rate, channels, subtype, seed=i)
    make_bad_files(folder)
    out = tmp_path / "out"
    result = run_cli([folder, out, "--model", tiny_model, "--num-workers", 1, "--what", "mean,logvar"])
    assert result.exit_code == 1, result.output
    assert f"{len(GOOD)} written, 0 up to date, {len(BAD)} failed" in result.output
    failures = {f["source"]: f for f in map(json.loads, (out / "failures.jsonl").read_text().splitlines())}
    assert sorted(failures) == sorted(BAD)
    for name, words in BAD.items():
        assert words in failures[name]["reason"], failures[name]
        assert failures[name]["path"] == str(folder / name)
        assert f"FAILED {name}: " in result.stderr
    encoder = SmoothInfoMaxEncoder.from_pretrained(tiny_model)
    for name in GOOD:
        arrays, meta = load_features(out / f"{name}.safetensors")
        assert meta["source"] == name
        for key, value in reference(encoder, folder / name).items():
            np.testing.assert_allclose(arrays[key], value, atol=1e-5, rtol=0, err_msg=f"{name} {key}")
    again = run_cli([folder, out, "--model", tiny_model, "--num-workers", 0, "--what", "mean,logvar"])
    assert again.exit_code == 1 and f"0 written, {len(GOOD)} up to date, {len(BAD)} failed" in again.output
