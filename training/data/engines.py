"""Text-to-speech engines that give phone timings: espeak-ng (C library), festival (batch Scheme), flite.

Each engine returns :class:`Synthesis`: audio at the engine's native rate plus phone segments on the same
timeline, with the timing corrections measured against a forced aligner (see docs/data.md) applied:
festival audio lags its Segment times by ~9 ms (times are shifted later); espeak fires stop events at the
release, so stop starts move 25 ms earlier (at most half of the previous phone). flite needs none.

libespeak-ng keeps state across voice changes, so use one process per espeak voice.
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from training.data.phones import ESPEAK_STOPS, Segment

FESTIVAL_DELAY_S = 0.009
ESPEAK_STOP_ADVANCE_S = 0.025
ESPEAK_LIBRARY = "libespeak-ng.so.1"
HTS_VOICE = Path("/usr/share/festival/voices/us/cmu_us_slt_arctic_hts/hts/cmu_us_slt_arctic_hts.htsvoice")
FESTIVAL_VOICE_DIRS = {
    "cmu_us_slt_arctic_hts": (HTS_VOICE.parent.parent, "festvox-us-slt-hts"),
    "kal_diphone": (Path("/usr/share/festival/voices/english/kal_diphone"), "festvox-kallpc16k"),
    "ked_diphone": (Path("/usr/share/festival/voices/english/ked_diphone"), "festvox-kdlpc16k"),
}
APT_PACKAGES = {
    "espeak": ["espeak-ng", "libespeak-ng1"],
    "festival": ["festival", "festlex-cmu", "festlex-poslex", "festvox-us-slt-hts", "festvox-kallpc16k",
                 "festvox-kdlpc16k"],
    "flite": ["flite"],
}


class EngineMissing(RuntimeError):
    """A TTS engine, voice or data file is not installed; the message names the apt packages."""

    def __init__(self, missing: list[tuple[str, str]]):
        self.missing = missing
        packages = sorted({package for _, package in missing})
        lines = [f"  {what} (Debian package {package})" for what, package in missing]
        super().__init__("missing speech-synthesis requirements:\n" + "\n".join(lines)
                         + f"\ninstall them with:\n  apt-get install -y {' '.join(packages)}")


def missing_requirements(engines: list[str], which=None) -> list[tuple[str, str]]:
    """``[(what, apt package), ...]`` for the given engines that are not installed."""
    which = which or shutil.which
    missing = []
    if "espeak" in engines:
        try:
            ctypes.CDLL(ESPEAK_LIBRARY)
        except OSError:
            missing.append((f"shared library {ESPEAK_LIBRARY}", "libespeak-ng1"))
    if "festival" in engines:
        if which("festival") is None:
            missing.append(("program festival", "festival"))
        for voice, (directory, package) in FESTIVAL_VOICE_DIRS.items():
            if not directory.is_dir():
                missing.append((f"festival voice {voice}", package))
    if "flite" in engines and which("flite") is None:
        missing.append(("program flite", "flite"))
    return missing


@dataclass
class Synthesis:
    """Audio ``(samples,)`` float32 at ``sample_rate`` and its phone segments ``[(start_s, end_s, name)]``."""

    audio: np.ndarray
    sample_rate: int
    segments: list[Segment]


def _ends_to_segments(ends: list[tuple[float, str]], duration_s: float, delay_s: float) -> list[Segment]:
    """Segments from (end_s, name) pairs, shifted by ``delay_s`` and clipped to the audio."""
    segments, start_s = [], 0.0
    for end_s, name in ends:
        end_s = min(end_s + delay_s, duration_s)
        if end_s > start_s:
            segments.append((start_s, end_s, name))
            start_s = end_s
    return segments


# --- espeak-ng through its C library -------------------------------------------------------------

class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_SYNCHRONOUS, _PHONEME_EVENTS, _EVENT_PHONEME, _CHARS_UTF8, _ENDPAUSE = 2, 1, 7, 1, 0x1000
_RATE, _PITCH, _RANGE = 1, 3, 4


def _espeak_library() -> ctypes.CDLL:
    lib = ctypes.CDLL(ESPEAK_LIBRARY)
    c_int, c_uint = ctypes.c_int, ctypes.c_uint
    signatures = {
        "espeak_Initialize": (c_int, [c_int, c_int, ctypes.c_char_p, c_int]),
        "espeak_Info": (ctypes.c_char_p, [ctypes.c_void_p]),
        "espeak_SetSynthCallback": (None, [_CALLBACK]),
        "espeak_SetVoiceByName": (c_int, [ctypes.c_char_p]),
        "espeak_SetParameter": (c_int, [c_int, c_int, c_int]),
        "espeak_Synth": (c_int, [ctypes.c_char_p, ctypes.c_size_t, c_uint, c_int, c_uint, c_uint,
                                 ctypes.POINTER(c_uint), ctypes.c_void_p]),
        "espeak_Synchronize": (c_int, []),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


class Espeak:
    """espeak-ng with phoneme events; output at :attr:`sample_rate` (22050 Hz)."""

    def __init__(self):
        self._lib = _espeak_library()
        self.sample_rate = self._lib.espeak_Initialize(_SYNCHRONOUS, 0, None, _PHONEME_EVENTS)
        if self.sample_rate <= 0:
            raise RuntimeError("espeak_Initialize failed (is espeak-ng-data installed?)")
        self.version = self._lib.espeak_Info(None).decode()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: the library holds the pointer
        self._lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n_samples,)).copy())
        i = 0
        while events[i].type != 0:
            if events[i].type == _EVENT_PHONEME:
                name = bytes(events[i].id.string).split(b"\0", 1)[0].decode("ascii", "replace")
                self._events.append((events[i].sample, name))
            i += 1
        return 0

    def set_voice(self, name: str) -> None:
        """Select ``accent+variant``, e.g. ``en-us+m3`` (``en-gb`` is rejected: use ``en``)."""
        if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise ValueError(f"espeak-ng rejected voice {name!r}")

    def synthesize(self, text: str, rate_wpm: int, pitch: int, pitch_range: int) -> Synthesis:
        """Speak ``text``; set the voice first. Pitch and range are 0-99."""
        for parameter, value in ((_RATE, rate_wpm), (_PITCH, pitch), (_RANGE, pitch_range)):
            self._lib.espeak_SetParameter(parameter, int(value), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8") + b"\0"
        self._lib.espeak_Synth(data, len(data), 0, 1, 0, _CHARS_UTF8 | _ENDPAUSE, None, None)
        self._lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks).astype(np.float32) / 32768.0
        return Synthesis(audio, self.sample_rate, espeak_segments(self._events, len(audio), self.sample_rate))


def espeak_segments(events: list[tuple[int, str]], n_samples: int, sample_rate: int) -> list[Segment]:
    """Segments from phoneme-start events: leading audio is silence, ``;`` merges into its predecessor,
    stop starts move earlier by :data:`ESPEAK_STOP_ADVANCE_S` (at most half of the previous phone)."""
    starts = [(0, "_")] + [(min(s, n_samples), n) for s, n in events if n != ";"]
    bounds = [s / sample_rate for s, _ in starts] + [n_samples / sample_rate]
    for i in range(1, len(starts)):
        if starts[i][1] in ESPEAK_STOPS:
            bounds[i] -= min(ESPEAK_STOP_ADVANCE_S, (bounds[i] - bounds[i - 1]) / 2)
    return [(bounds[i], bounds[i + 1], name) for i, (_, name) in enumerate(starts) if bounds[i + 1] > bounds[i]]


# --- festival through a batch Scheme script ------------------------------------------------------

def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _read_segs(path: Path) -> list[tuple[float, str]]:
    ends = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and not line.startswith("#"):
            ends.append((float(parts[0]), parts[2]))
    return ends


def festival_batch(voice: str, utterances: list[dict], hts_alpha: float | None = None) -> list[Synthesis]:
    """Synthesize many utterances with one festival process.

    ``utterances``: dicts with ``text`` and either ``speed`` (HTS ``-r``) or ``f0_mean``, ``f0_std`` and
    ``duration_stretch`` (diphone voices). ``hts_alpha`` replaces the all-pass constant of the HTS voice
    (vocal-tract warp); festival loads the model once per process, so one alpha per call.
    """
    with tempfile.TemporaryDirectory(prefix="festival-") as tmp:
        tmp_dir = Path(tmp)
        lines = [f"(voice_{voice})",
                 ("(define (synth1 text wav segs) (let ((u (eval (list 'Utterance 'Text text))))"
                  " (utt.synth u) (utt.save.wave u wav 'riff) (utt.save.segs u segs)))")]
        if hts_alpha is not None:
            model = tmp_dir / "voice.htsvoice"
            original = HTS_VOICE.read_bytes()
            patched = original.replace(b"OPTION[MCP]:ALPHA=0.45", f"OPTION[MCP]:ALPHA={hts_alpha:.2f}".encode())
            if len(patched) != len(original):
                raise RuntimeError(f"unexpected HTS voice format in {HTS_VOICE}")
            model.write_bytes(patched)
        for i, utt in enumerate(utterances):
            if hts_alpha is not None:
                lines.append(f'(set! hts_engine_params (list (list "-m" "{model}") (list "-r" {utt["speed"]:.4f})))')
            else:
                lines.append(f"(set! int_lr_params '((target_f0_mean {utt['f0_mean']:.2f}) "
                             f"(target_f0_std {utt['f0_std']:.2f}) (model_f0_mean 170) (model_f0_std 34)))")
                lines.append(f"(Parameter.set 'Duration_Stretch {utt['duration_stretch']:.4f})")
            lines.append(f'(synth1 {_scheme_string(utt["text"])} "{tmp_dir}/{i}.wav" "{tmp_dir}/{i}.segs")')
        script = tmp_dir / "synth.scm"
        script.write_text("\n".join(lines) + "\n")
        run = subprocess.run(["festival", "--batch", str(script)], capture_output=True, text=True, check=False)
        results = []
        for i in range(len(utterances)):
            wav, segs = tmp_dir / f"{i}.wav", tmp_dir / f"{i}.segs"
            if not (wav.is_file() and segs.is_file()):
                raise RuntimeError(f"festival ({voice}) failed on {utterances[i]['text']!r}: "
                                   f"exit {run.returncode}; {run.stderr.strip()[-500:]}")
            audio, rate = sf.read(wav, dtype="float32")
            results.append(Synthesis(audio, rate, _ends_to_segments(_read_segs(segs), len(audio) / rate,
                                                                    FESTIVAL_DELAY_S)))
        return results


# --- flite -----------------------------------------------------------------------------------------

def flite_synthesize(text: str, voice: str, duration_stretch: float, f0_mean: float | None = None) -> Synthesis:
    """Synthesize with ``flite -psdur`` (phone end times on stdout); ``f0_mean`` only affects ``kal16``."""
    with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
        wav = Path(tmp) / "out.wav"
        command = ["flite", "-voice", voice, "-psdur", "--setf", f"duration_stretch={duration_stretch:.4f}"]
        if f0_mean is not None:
            command += ["--setf", f"int_f0_target_mean={f0_mean:.2f}"]
        run = subprocess.run(command + ["-t", text, "-o", str(wav)], capture_output=True, text=True, check=False)
        if run.returncode != 0 or not wav.is_file():
            raise RuntimeError(f"flite ({voice}) failed on {text!r}: exit {run.returncode}; {run.stderr[-500:]}")
        audio, rate = sf.read(wav, dtype="float32")
    ends = []
    for item in run.stdout.split():
        name, _, end = item.rpartition(":")
        if name:
            ends.append((float(end), name))
    return Synthesis(audio, rate, _ends_to_segments(ends, len(audio) / rate, 0.0))
