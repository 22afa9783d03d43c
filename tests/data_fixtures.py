"""Helpers for the data tests: the two tiny corpora (once per session), de Boer-format fixture files, a small HTTP
server on 127.0.0.1 with Range support, and the skips for tests that need Debian's programs.

``tone_corpus`` (numpy tones and noise, see :mod:`tone_corpus`) needs nothing outside the Python environment; every
test that merely needs labelled speech-like audio uses it. ``tiny_corpus`` is the real synthetic speech corpus
(espeak-ng, festival, flite, WordNet), for the tests whose subject it is; they skip when an engine is missing,
unless ``SIM_TEST_ALL_PROGRAMS=1`` (set by ``.ci/run``, which installs them) turns the skip into a failure."""

from __future__ import annotations

import http.server
import io
import os
import shutil
import subprocess
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


PROGRAM_PACKAGES = {"ffmpeg": "ffmpeg", "dpkg-deb": "dpkg", "espeak-ng": "espeak-ng", "festival": "festival",
                    "flite": "flite", "chromium": "chromium"}
"""Debian package of each program a test may need."""


def skip_missing(reason: str) -> None:
    """Skip the running test for a missing program; fail instead under ``SIM_TEST_ALL_PROGRAMS=1`` (``.ci/run``)."""
    if os.environ.get("SIM_TEST_ALL_PROGRAMS") == "1":
        pytest.fail(f"{reason} (SIM_TEST_ALL_PROGRAMS=1: every test must run)", pytrace=False)
    pytest.skip(reason)


def require_programs(*names: str) -> None:
    """Skip unless every program in ``names`` is on PATH; the reason names the missing ones and their packages."""
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        packages = " ".join(sorted({PROGRAM_PACKAGES.get(name, name) for name in missing}))
        skip_missing(f"needs the program{'s' * (len(missing) > 1)} {', '.join(missing)} on PATH: "
                     f"apt-get install {packages}")


def require_engines(*parts: str) -> None:
    """Skip unless the given parts of the synthetic speech corpus's toolchain are installed: TTS engines
    ``espeak``, ``festival``, ``flite`` (programs, libraries, voices) and ``wordnet`` (the WordNet sentences and the
    CMU lexicon); default all four. The reason names what is missing and the apt packages."""
    from training.data.engines import EngineMissing, missing_requirements
    from training.data.text import missing_files

    parts = parts or ("espeak", "festival", "flite", "wordnet")
    missing = missing_requirements([p for p in parts if p != "wordnet"])
    missing += missing_files() if "wordnet" in parts else []
    if missing:
        skip_missing(f"needs the text-to-speech toolchain ({', '.join(parts)}): {EngineMissing(missing)}")


def generate_corpus(out: Path, *extra: str) -> Path:
    from training.data import synth

    require_engines()
    code = synth.main([str(out), *TINY_ARGS, *extra])
    assert code == 0, f"corpus generation failed with exit code {code}"
    return out


def tiny_corpus(tmp_path_factory) -> Path:
    """A 3 speakers x 3 utterances TTS corpus, generated once per test session (2 worker processes); skips the
    test when an engine is missing."""
    if "tiny" not in _CACHE:
        _CACHE["tiny"] = generate_corpus(tmp_path_factory.mktemp("tiny_corpus"), "--jobs", "2")
    return _CACHE["tiny"]


def tone_corpus(tmp_path_factory) -> Path:
    """A 3 speakers x 3 utterances tone-and-noise corpus in the same layout, made once per test session in numpy
    (no Debian package); also the session fixture ``tone_corpus`` of conftest.py."""
    if "tones" not in _CACHE:
        from tone_corpus import write_tone_corpus

        _CACHE["tones"] = write_tone_corpus(tmp_path_factory.mktemp("tone_corpus"))
    return _CACHE["tones"]


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


def build_deb(staging: Path, package: str, version: str, out_dir: Path) -> Path:
    """A .deb of ``staging``'s files (dpkg-deb), as ``out_dir/<package>_<version>_all.deb``."""
    (staging / "DEBIAN").mkdir(parents=True, exist_ok=True)
    (staging / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: test <t@example.org>\n"
        f"Description: fixture\n")
    deb = out_dir / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(staging), str(deb)], check=True,
                   capture_output=True)
    return deb
