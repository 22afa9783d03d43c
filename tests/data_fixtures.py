"""Helpers for the data tests: a tiny generated corpus (once per session), de Boer-format fixture files,
and a small HTTP server on 127.0.0.1 with Range support."""

from __future__ import annotations

import http.server
import io
import tarfile
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

TINY_ARGS = ["--speakers", "3", "--utterances", "3", "--seed", "0", "--quiet"]
_CACHE: dict[str, Path] = {}


def require_engines() -> None:
    """Fail (not skip) with the apt packages to install when a TTS engine is missing."""
    from training.data import synth
    from training.data.engines import EngineMissing

    try:
        synth.check_requirements(("espeak", "festival", "flite"))
    except EngineMissing as error:
        pytest.fail(f"the data tests need the TTS engines: {error}", pytrace=False)


def generate_corpus(out: Path, *extra: str) -> Path:
    from training.data import synth

    require_engines()
    code = synth.main([str(out), *TINY_ARGS, *extra])
    assert code == 0, f"corpus generation failed with exit code {code}"
    return out


def tiny_corpus(tmp_path_factory) -> Path:
    """A 3 speakers x 3 utterances corpus, generated once per test session (2 worker processes)."""
    if "tiny" not in _CACHE:
        _CACHE["tiny"] = generate_corpus(tmp_path_factory.mktemp("tiny_corpus"), "--jobs", "2")
    return _CACHE["tiny"]


def tone(duration_samples: int, rate: int, f0_hz: float, seed: int) -> np.ndarray:
    """A vowel-like harmonic tone with a little noise, float32 ``(samples,)``."""
    t = np.arange(duration_samples) / rate
    wave = sum(np.sin(2 * np.pi * f0_hz * k * t) / k for k in range(1, 6))
    noise = np.random.default_rng(seed).standard_normal(duration_samples) * 0.01
    return (0.2 * wave / 2.3 + noise).astype(np.float32)


def write_deboer_fixture(directory: Path, kind: str, words: list[str], rate: int | None = None) -> list[Path]:
    """de Boer-format files: words ``<word>_1.wav`` (44.1 kHz, ~0.9 s) or, for syllables,
    ``<word>_1_<pos>_<syl>.wav`` (22.05 kHz, 12156 samples, zero-padded front and back)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, word in enumerate(words):
        if kind == "words":
            rate_hz = rate or 44100
            path = directory / f"{word}_1.wav"
            sf.write(path, tone(int(0.9 * rate_hz), rate_hz, 120 + 10 * i, i), rate_hz, subtype="PCM_16")
            paths.append(path)
            continue
        rate_hz = rate or 22050
        for pos in range(3):
            syllable = word[2 * pos:2 * pos + 2]
            audio = np.zeros(12156, dtype=np.float32)
            audio[3000:9156] = tone(6156, rate_hz, 100 + 20 * "aiu".index(syllable[1]), i * 3 + pos)
            path = directory / f"{word}_1_{pos + 1}_{syllable}.wav"
            sf.write(path, audio, rate_hz, subtype="PCM_16")
            paths.append(path)
    return paths


def make_librispeech_tar(corpus: Path, utterance_ids: list[str]) -> bytes:
    """A tar.gz holding ``LibriSpeech/train-clean-100/...`` for the given utterances of ``corpus``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for utt_id in utterance_ids:
            speaker, chapter, _ = utt_id.split("-")
            relative = Path("LibriSpeech/train-clean-100") / speaker / chapter / f"{utt_id}.flac"
            archive.add(corpus / relative, arcname=str(relative))
    return buffer.getvalue()


def make_zip(name: str, data: bytes, folder: str = "") -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{folder}{name}", data)
    return buffer.getvalue()


class FileServer:
    """Serves ``files`` ({name: bytes}) at ``url``; honours ``Range: bytes=N-``; logs request headers."""

    def __init__(self, files: dict[str, bytes], content_types: dict[str, str] | None = None):
        self.files, self.content_types, self.requests = files, content_types or {}, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name not in server.files:
                    self.send_error(404)
                    return
                data, start = server.files[name], 0
                if self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", server.content_types.get(name, "application/octet-stream"))
                self.send_header("Content-Length", str(len(data) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                self.wfile.write(data[start:])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@contextmanager
def serve(files: dict[str, bytes], content_types: dict[str, str] | None = None):
    """Run a :class:`FileServer` in a thread for the duration of the block."""
    server = FileServer(files, content_types)
    thread = threading.Thread(target=server.httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=5)
