"""Phone labels for real English speech by forced alignment with PocketSphinx 5 (PyPI wheel: en-us acoustic model
and CMU dictionary included, no download).

    aligner = PocketsphinxAligner()
    words = normalise_text("Press 1 for help, * to cancel.", aligner.knows)  # ['press', 'one', ..., 'star', ...]
    result = aligner.align(audio_int16, words)                                  # AlignmentError when it fails
    labels = result.frame_labels(len(audio_int16))                              # (n_samples // 160,) int16

Timing convention. PocketSphinx frame ``j`` is a 410-sample window (``wlen`` 25.625 ms) starting at sample
``160 j``, so its centre is sample ``160 j + 205``. A phone of frames ``[s, e)`` is turned into seconds with its
boundaries half-way between frame centres, ``(160 s + 125) / 16000`` (the first phone starts at 0, the last one
ends with the audio), and then into one label per 160 samples with the "center" convention of
:mod:`training.data.phones` (label ``i`` is the phone at sample ``160 i + 80``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from smooth_infomax.audio import HOP_SAMPLES, SAMPLE_RATE
from training.data.phones import CMU_PHONES, frame_labels, map_segments

POCKETSPHINX_MAP: dict[str, tuple[str, ...]] = (
    {p: (p,) for p in CMU_PHONES} | {"SIL": ("SIL",), "+NSN+": ("SIL",), "+SPN+": ("SPN",)}
)
"""PocketSphinx en-us phones -> classes: the 39 CMU phones as they are, SIL and noise (+NSN+) -> SIL,
speech-like noise (+SPN+) -> SPN."""

MIN_SCORE_PER_FRAME = -30.0
"""An alignment whose acoustic score (PocketSphinx units, relative to the best senone of each frame) averages
below this per frame is taken as failed: the text does not match the recording. Measured on the English test
split of data/real: the 83 aligned prompts score -21.4 to -4.1; the same recordings aligned with another prompt's
text fail the search 40 times in 90, and 47 of the other 50 score below -30 (espeak-ng speech: -23.5 to -14.4)."""

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
         "seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SYMBOLS = {"*": " star ", "#": " pound ", "&": " and ", "%": " percent ", "+": " plus ", "@": " at "}


class AlignmentError(RuntimeError):
    """PocketSphinx could not align a text to a recording; the message says why."""


# --- text -----------------------------------------------------------------------------------------------------------

def number_words(number: int) -> list[str]:
    """``105`` -> ``['one', 'hundred', 'five']`` for 0 <= number < 10**6 (digit strings read as a number)."""
    if not 0 <= number < 10**6:
        raise ValueError(f"number out of range for reading out: {number}")
    if number < 20:
        return [_ONES[number]]
    if number < 100:
        return [_TENS[number // 10]] + ([_ONES[number % 10]] if number % 10 else [])
    if number < 1000:
        rest = number_words(number % 100) if number % 100 else []
        return [_ONES[number // 100], "hundred"] + rest
    rest = number_words(number % 1000) if number % 1000 else []
    return number_words(number // 1000) + ["thousand"] + rest


def _token_words(token: str, knows: Callable[[str], bool]) -> list[str]:
    """One whitespace token (punctuation already gone) -> dictionary-style words."""
    if token.isdigit():
        return number_words(int(token))
    word = token.lower().strip("'")
    if len(token) > 1 and token.isupper() and token.isalpha() and not knows(word):
        return list(word)  # an acronym the dictionary lacks: spelled out (MGCP -> m g c p)
    return [word] if word else []


def normalise_text(text: str, knows: Callable[[str], bool] = lambda word: True) -> list[str]:
    """Prompt text -> lower-case dictionary words: digits read out, ``*`` -> star, ``#`` -> pound, letters and
    digits split (``3D`` -> three d), hyphens and punctuation away, apostrophes inside words kept (``i'm``),
    acronyms that ``knows`` rejects spelled out. Words are not checked against the dictionary here."""
    for symbol, spoken in _SYMBOLS.items():
        text = text.replace(symbol, spoken)
    text = re.sub(r"(?<=\d)(?=[A-Za-z])|(?<=[A-Za-z])(?=\d)", " ", text)
    text = re.sub(r"[^A-Za-z0-9' ]+", " ", text)
    return [word for token in text.split() for word in _token_words(token, knows)]


# --- alignment ------------------------------------------------------------------------------------------------------

@dataclass
class PhoneAlignment:
    """PocketSphinx phones ``[(name, start_frame, n_frames), ...]`` covering ``n_frames`` 10 ms frames, with the
    acoustic score per frame and the frame geometry needed to turn frames into seconds."""

    phones: list[tuple[str, int, int]]
    n_frames: int
    score_per_frame: float
    hop_samples: int
    window_samples: int

    def segments_s(self, n_samples: int, sample_rate: int = SAMPLE_RATE) -> list[tuple[float, float, str]]:
        """``[(start_s, end_s, name)]``: boundaries half-way between frame centres, clipped to the audio."""
        shift = self.window_samples // 2 - self.hop_samples // 2  # frame centre minus half a hop (125 samples)
        duration_s = n_samples / sample_rate
        segments = []
        for index, (name, start, length) in enumerate(self.phones):
            start_s = 0.0 if index == 0 else (start * self.hop_samples + shift) / sample_rate
            last = index == len(self.phones) - 1
            end_s = duration_s if last else min(((start + length) * self.hop_samples + shift) / sample_rate,
                                                 duration_s)
            if end_s > start_s:
                segments.append((start_s, end_s, name))
        return segments

    def frame_labels(self, n_samples: int) -> np.ndarray:
        """``(n_samples // 160,)`` int16 class indices of the 41-class table (unknown phones -> SPN)."""
        classes, _ = map_segments(self.segments_s(n_samples), POCKETSPHINX_MAP)
        labels = frame_labels(classes, n_samples)
        if len(labels) != n_samples // HOP_SAMPLES:
            raise AlignmentError(f"{len(labels)} labels for {n_samples} samples")
        return labels


def _base_word(word: str) -> str:
    """``your(2)`` -> ``your`` (PocketSphinx marks alternative pronunciations)."""
    return word.split("(", 1)[0]


class PocketsphinxAligner:
    """Two-pass forced alignment (``set_align_text``, then ``set_alignment``) with the wheel's en-us model.

    One decoder is reused for every utterance. Never call ``Decoder.hyp()`` after the second pass: PocketSphinx
    5.1.1 crashes (segmentation fault) there.
    """

    def __init__(self, min_score_per_frame: float = MIN_SCORE_PER_FRAME):
        from pocketsphinx import Decoder

        # bestpath (on by default) segments words from a lattice, which can give a phone fewer frames than its
        # HMM has states, so the second pass fails ("Alignment failed in frame N"); pocketsphinx PR #354 / #500
        self.decoder = Decoder(lm=None, bestpath=False, loglevel="ERROR")
        config = self.decoder.get_config()
        if int(config["samprate"]) != SAMPLE_RATE:
            raise AlignmentError(f"PocketSphinx model expects {config['samprate']} Hz, not {SAMPLE_RATE}")
        self.hop_samples = round(SAMPLE_RATE / int(config["frate"]))
        self.window_samples = round(float(config["wlen"]) * SAMPLE_RATE)
        self.min_score_per_frame = min_score_per_frame

    def knows(self, word: str) -> bool:
        """Whether ``word`` (lower case) is in the CMU dictionary of the model."""
        return self.decoder.lookup_word(word) is not None

    def _decode(self, audio: np.ndarray) -> None:
        self.decoder.start_utt()
        self.decoder.process_raw(audio.tobytes(), full_utt=True)
        self.decoder.end_utt()

    def align(self, audio: np.ndarray, words: list[str], min_score_per_frame: float | None = None) -> PhoneAlignment:
        """Align ``words`` to ``audio`` ``(n_samples,)`` int16 at 16 kHz; raises :class:`AlignmentError` when a
        word is not in the dictionary, the search does not reach the end of the text, or the score per frame is
        below ``min_score_per_frame`` (default: the aligner's; ``-inf`` when the text is known to match)."""
        missing = [word for word in words if not self.knows(word)]
        if missing or not words:
            raise AlignmentError(f"not in the dictionary: {' '.join(missing)}" if missing else "no words")
        audio = np.ascontiguousarray(audio, dtype=np.int16)
        try:
            self.decoder.set_align_text(" ".join(words))
            self._decode(audio)
            hypothesis = self.decoder.hyp()
            found = [] if hypothesis is None else [_base_word(w) for w in hypothesis.hypstr.split()]
            if found != words:
                raise AlignmentError(f"the search did not reach the end of the text (got {len(found)} of "
                                     f"{len(words)} words)")
            self.decoder.set_alignment()
            self._decode(audio)
            entries = list(self.decoder.get_alignment().phones())
        except RuntimeError as error:
            raise AlignmentError(f"PocketSphinx failed: {error}") from error
        floor = self.min_score_per_frame if min_score_per_frame is None else min_score_per_frame
        return self._checked(entries, self.decoder.n_frames(), floor)

    def _checked(self, entries, n_frames: int, min_score_per_frame: float) -> PhoneAlignment:
        phones = [(entry.name, entry.start, entry.duration) for entry in entries]
        starts = [start for _, start, _ in phones]
        ends = np.cumsum([length for _, _, length in phones]).tolist()
        # contiguous from frame 0 to the end; PocketSphinx may leave the last (partial) frame out
        if not phones or starts != [0] + ends[:-1] or ends[-1] not in (n_frames - 1, n_frames):
            raise AlignmentError(f"the phones do not tile the {n_frames} frames")
        score = sum(entry.score for entry in entries) / n_frames
        if score < min_score_per_frame:
            raise AlignmentError(f"acoustic score {score:.1f} per frame < {min_score_per_frame} "
                                 "(text and recording probably differ)")
        return PhoneAlignment(phones, n_frames, score, self.hop_samples, self.window_samples)
