"""A check of forced-alignment phone labels against a second, independent method.

The same normalised text is synthesised with a TTS engine that reports its own phone timings (flite ``slt`` by
default, or espeak-ng). The synthetic phone labels are projected onto the real recording through a DTW path over
MFCC frames, and compared with the PocketSphinx labels frame by frame and boundary by boundary. As a calibration,
PocketSphinx also aligns the synthetic audio itself, where the engine's timings are the truth.

All label arrays are ``(n_frames,)`` class indices of the 41-class table, one per 10 ms ("center" convention);
segments are ``(start_s, end_s, class_index)``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from smooth_infomax.audio import HOP_SAMPLES, SAMPLE_RATE
from training.data.phones import ESPEAK_MAP, PHONE_INDEX, PHONES, RADIO_MAP, SIL, TIMIT_FOLD, frame_labels, map_segments

ENGINES = ("flite", "espeak")
FLITE_VOICE = "slt"
ESPEAK_VOICE = "en-us+f2"
ESPEAK_RATE_WPM = 160
FOLD_INDEX = np.array([PHONE_INDEX[TIMIT_FOLD[name]] for name in PHONES])
"""Class index -> index of its TIMIT-fold class (AO -> AA, ZH -> SH, SPN -> SIL)."""


# --- synthesis ------------------------------------------------------------------------------------------------------

@dataclass
class SyntheticSpeech:
    """TTS audio ``(samples,)`` float32 at 16 kHz, its class segments and frame labels ``(samples // 160,)``."""

    audio: np.ndarray
    segments: list[tuple[float, float, int]]
    labels: np.ndarray


@functools.lru_cache(maxsize=1)
def _espeak(voice: str):
    """One espeak-ng per process: the library has a single global callback, so a second instance would steal the
    first one's audio (and it keeps state across voice changes, so one voice per process)."""
    from training.data.engines import Espeak

    engine = Espeak()
    engine.set_voice(voice)
    return engine


class Synthesiser:
    """One TTS engine (``flite`` or ``espeak``), 16 kHz output with phone classes."""

    def __init__(self, engine: str = "flite"):
        from training.data.engines import EngineMissing, missing_requirements

        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
        missing = missing_requirements([engine])
        if missing:
            raise EngineMissing(missing)
        self.engine = engine
        self.voice = FLITE_VOICE if engine == "flite" else ESPEAK_VOICE

    def speak(self, text: str) -> SyntheticSpeech:
        import torchaudio.functional as AF

        from training.data import engines

        if self.engine == "flite":
            synthesis, table = engines.flite_synthesize(text, FLITE_VOICE, 1.0), RADIO_MAP
        else:
            synthesis, table = _espeak(self.voice).synthesize(text, ESPEAK_RATE_WPM, 50, 50), ESPEAK_MAP
        audio = AF.resample(torch.from_numpy(synthesis.audio), synthesis.sample_rate, SAMPLE_RATE).numpy()
        segments, _ = map_segments(synthesis.segments, table)
        return SyntheticSpeech(audio.astype(np.float32), segments, frame_labels(segments, len(audio)))


# --- DTW ------------------------------------------------------------------------------------------------------------

def mfcc_frames(audio: np.ndarray) -> np.ndarray:
    """``(samples,)`` float -> ``(samples // 160, 24)``: MFCC 1-12 and their deltas, normalised per utterance
    (mean 0, std 1), frame ``i`` centred on sample ``160 i + 80``."""
    from smooth_infomax.analysis.features import MfccFeatures

    frames = MfccFeatures(n_mfcc=13, deltas=1).mfcc(torch.from_numpy(np.asarray(audio, np.float32))).numpy()
    frames = np.delete(frames, [0, 13], axis=1)  # c0 (loudness) and its delta differ between voices
    return (frames - frames.mean(0)) / (frames.std(0) + 1e-5)


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimal-cost monotonic path through ``cost (n, m)`` from ``(0, 0)`` to ``(n-1, m-1)`` with steps
    (1, 0), (0, 1) and (1, 1), the diagonal weighted twice (symmetric DTW). Returns row and column indices
    ``(path_length,)``. Vectorised over anti-diagonals."""
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    total[0, 0] = 0.0
    for diagonal in range(2, n + m + 1):  # cells (i, j), 1-based, with i + j == diagonal
        i = np.arange(max(1, diagonal - m), min(n, diagonal - 1) + 1)
        j = diagonal - i
        step = cost[i - 1, j - 1]
        total[i, j] = np.minimum(total[i - 1, j - 1] + 2 * step,
                                 np.minimum(total[i - 1, j], total[i, j - 1]) + step)
    return _backtrack(total)


def _backtrack(total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i, j = total.shape[0] - 1, total.shape[1] - 1
    rows, cols = [i - 1], [j - 1]
    while (i, j) != (1, 1):
        moves = ((total[i - 1, j - 1], i - 1, j - 1), (total[i - 1, j], i - 1, j), (total[i, j - 1], i, j - 1))
        _, i, j = min(moves, key=lambda move: move[0])
        rows.append(i - 1)
        cols.append(j - 1)
    return np.array(rows[::-1]), np.array(cols[::-1])


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, dim)``, ``(m, dim)`` -> ``(n, m)`` cosine distances (1 - cosine similarity)."""
    a = a / (np.linalg.norm(a, axis=1, keepdims=True) + 1e-9)
    b = b / (np.linalg.norm(b, axis=1, keepdims=True) + 1e-9)
    return 1.0 - a @ b.T


def project_labels(target_frames: np.ndarray, source_frames: np.ndarray, source_labels: np.ndarray) -> np.ndarray:
    """Labels ``(n_target,)`` for the target frames: each target frame takes the label of the first source
    frame the DTW path pairs it with (cosine distance). ``*_frames`` are ``(n, dim)`` features,
    ``source_labels`` ``(n_source,)``."""
    rows, cols = dtw_path(cosine_distance(target_frames, source_frames))
    first = np.full(len(target_frames), -1)
    for row, col in zip(rows[::-1], cols[::-1], strict=True):
        first[row] = col
    return source_labels[first]


# --- comparisons ----------------------------------------------------------------------------------------------------

def label_segments(labels: np.ndarray) -> list[tuple[float, float, int]]:
    """Runs of equal frame labels as segments; frame ``i`` spans ``[0.01 i, 0.01 (i + 1))`` seconds."""
    hop_s = HOP_SAMPLES / SAMPLE_RATE
    change = np.flatnonzero(np.diff(labels)) + 1
    starts, ends = np.r_[0, change], np.r_[change, len(labels)]
    return [(start * hop_s, end * hop_s, int(labels[start])) for start, end in zip(starts, ends, strict=True)]


def merge_segments(segments: Sequence[tuple[float, float, int]]) -> list[tuple[float, float, int]]:
    """Join neighbouring segments of the same class."""
    merged: list[tuple[float, float, int]] = []
    for start_s, end_s, index in segments:
        if merged and merged[-1][2] == index:
            merged[-1] = (merged[-1][0], end_s, index)
        else:
            merged.append((start_s, end_s, index))
    return merged


def _edit_alignment(ref: Sequence[int], hyp: Sequence[int]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` with ``ref[i] == hyp[j]`` on a minimal-edit (Levenshtein) alignment."""
    n, m = len(ref), len(hyp)
    dist = np.zeros((n + 1, m + 1), dtype=np.int64)
    dist[:, 0], dist[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            dist[i, j] = min(dist[i - 1, j] + 1, dist[i, j - 1] + 1, dist[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if dist[i, j] == dist[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            if ref[i - 1] == hyp[j - 1]:
                pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif dist[i, j] == dist[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


def start_offsets_s(ref: Sequence[tuple[float, float, int]], hyp: Sequence[tuple[float, float, int]]) -> list[float]:
    """``hyp start - ref start`` in seconds for every phone the two sequences share on a minimal-edit alignment
    of their classes (neighbours of one class merged; the first segments, which both start at 0, left out)."""
    ref, hyp = merge_segments(ref), merge_segments(hyp)
    pairs = _edit_alignment([s[2] for s in ref], [s[2] for s in hyp])
    return [hyp[j][0] - ref[i][0] for i, j in pairs if i > 0 and j > 0]


def frame_agreement(a: np.ndarray, b: np.ndarray, fold: bool = False) -> tuple[int, int]:
    """``(equal frames, frames)`` of two label arrays of one utterance (``fold``: after the TIMIT fold)."""
    if len(a) != len(b):
        raise ValueError(f"label arrays differ in length: {len(a)} vs {len(b)}")
    if fold:
        a, b = FOLD_INDEX[a], FOLD_INDEX[b]
    return int((a == b).sum()), len(a)


def summarise(equal: int, frames: int, equal_folded: int, offsets_s: list[float]) -> dict:
    """Frame agreement (41 classes and TIMIT-folded) and start-offset statistics in ms."""
    signed_ms = np.round(np.asarray(offsets_s, dtype=np.float64) * 1000, 3)  # 10 ms, not 10.000000001
    offsets_ms = np.abs(signed_ms)
    return {"frames": frames, "frame_agreement": round(equal / max(frames, 1), 4),
            "frame_agreement_folded": round(equal_folded / max(frames, 1), 4),
            "matched_phone_starts": len(offsets_s),
            "median_abs_start_offset_ms": round(float(np.median(offsets_ms)), 1) if len(offsets_s) else None,
            "median_start_offset_ms": round(float(np.median(signed_ms)), 1) if len(offsets_s) else None,
            "starts_within_20ms": round(float(np.mean(offsets_ms <= 20)), 4) if len(offsets_s) else None}


def non_silence(labels: np.ndarray) -> float:
    """Share of frames that are not SIL."""
    return float(np.mean(labels != SIL)) if len(labels) else 0.0


# --- the check ------------------------------------------------------------------------------------------------------

@dataclass
class Tally:
    """Running totals of one comparison over many utterances."""

    equal: int = 0
    equal_folded: int = 0
    frames: int = 0
    offsets_s: list[float] = field(default_factory=list)

    def add(self, reference: np.ndarray, other: np.ndarray) -> dict:
        """Add one utterance's labels ``(n_frames,)`` of both methods; returns its own numbers."""
        equal, frames = frame_agreement(reference, other)
        equal_folded, _ = frame_agreement(reference, other, fold=True)
        offsets = start_offsets_s(label_segments(reference), label_segments(other))
        self.equal += equal
        self.equal_folded += equal_folded
        self.frames += frames
        self.offsets_s += offsets
        return summarise(equal, frames, equal_folded, offsets)

    def summary(self) -> dict:
        return summarise(self.equal, self.frames, self.equal_folded, self.offsets_s)


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """float ``(samples,)`` in [-1, 1] -> int16 ``(samples,)`` (what PocketSphinx reads)."""
    return np.clip(np.round(np.asarray(audio) * 32768), -32768, 32767).astype(np.int16)


class AgreementCheck:
    """Compares PocketSphinx labels with DTW-projected TTS labels, and calibrates both methods on TTS audio.

    * ``pocketsphinx_vs_dtw``: on the real recording, PocketSphinx labels vs labels of ``projector`` (flite)
      speech projected through DTW;
    * ``calibration_pocketsphinx``: PocketSphinx on ``reference`` (espeak-ng) speech vs that engine's own timings;
    * ``calibration_dtw``: ``projector`` speech projected onto ``reference`` speech vs the reference timings,
      i.e. how well the DTW projection itself does between two voices.
    """

    def __init__(self, aligner, projector: str = "flite", reference: str | None = "espeak"):
        self.aligner = aligner
        self.projector = Synthesiser(projector)
        self.reference = Synthesiser(reference) if reference else None
        self.calibration_failures = 0
        self.tallies = {name: Tally() for name in ("pocketsphinx_vs_dtw", "calibration_pocketsphinx",
                                                   "calibration_dtw")}

    def add(self, audio: np.ndarray, words: list[str], labels: np.ndarray) -> dict:
        """One real utterance: ``audio (samples,)`` float, its words and PocketSphinx labels ``(samples // 160,)``."""
        text = " ".join(words)
        source = self.projector.speak(text)
        projected = project_labels(mfcc_frames(audio), mfcc_frames(source.audio), source.labels)
        result = {"pocketsphinx_vs_dtw": self.tallies["pocketsphinx_vs_dtw"].add(labels, projected)}
        if self.reference is not None:
            result.update(self._calibrate(text, words, source))
        return result

    def _calibrate(self, text: str, words: list[str], source: SyntheticSpeech) -> dict:
        from training.data.forced_align import AlignmentError

        truth = self.reference.speak(text)
        guessed = project_labels(mfcc_frames(truth.audio), mfcc_frames(source.audio), source.labels)
        result = {"calibration_dtw": self.tallies["calibration_dtw"].add(truth.labels, guessed)}
        try:  # the text matches by construction: no score floor
            alignment = self.aligner.align(to_pcm16(truth.audio), words, min_score_per_frame=-np.inf)
            aligned = alignment.frame_labels(len(truth.audio))
        except AlignmentError as error:
            self.calibration_failures += 1
            return result | {"calibration_pocketsphinx": f"failed: {error}"}
        return result | {"calibration_pocketsphinx": self.tallies["calibration_pocketsphinx"].add(truth.labels,
                                                                                                  aligned)}

    def summary(self) -> dict:
        totals = {name: tally.summary() for name, tally in self.tallies.items() if tally.frames}
        if self.reference is not None:
            totals["calibration_pocketsphinx_failures"] = self.calibration_failures
        return totals
