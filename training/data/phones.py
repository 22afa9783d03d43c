"""The 41-class phone table and the mappings from TTS-engine phones to it.

Index 0 is SIL, 1-39 are the CMU/ARPAbet phones in alphabetical order and 40 is SPN (reserved, never
emitted by the generator). GIM/CPC also use 41 classes, but the index order of their label file is not
published, so this order is our own. Every generated corpus carries it as ``phones.txt``.

Labels are one per :data:`~smooth_infomax.audio.HOP_SAMPLES` samples ("center" convention): frame ``i``
gets the phone at sample ``HOP_SAMPLES * i + HOP_SAMPLES // 2``, so an utterance of ``n`` samples has
``n // HOP_SAMPLES`` labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from smooth_infomax.audio import HOP_SAMPLES, SAMPLE_RATE

CMU_PHONES = (
    "AA AE AH AO AW AY B CH D DH EH ER EY F G HH IH IY JH K L M N NG OW OY P R S SH T TH UH UW V W Y Z ZH"
).split()
PHONES: tuple[str, ...] = ("SIL", *CMU_PHONES, "SPN")
"""Class names by index (41)."""
SIL = 0
SPN = len(PHONES) - 1
PHONE_INDEX = {name: i for i, name in enumerate(PHONES)}

TIMIT_FOLD = {name: name for name in PHONES} | {"AO": "AA", "ZH": "SH", "SPN": "SIL"}
"""Lee & Hon folding restricted to what the CMU set can express (37 phones + SIL remain)."""

SPLIT_FRACTION = 0.6
"""Two-phone units (e.g. festival ``el``, espeak ``A@``) are split 60 % / 40 % in time."""

_SIL_NAMES = ("pau", "h#", "brth", "#")
RADIO_MAP: dict[str, tuple[str, ...]] = (
    {p.lower(): (p,) for p in CMU_PHONES}
    | {s: ("SIL",) for s in _SIL_NAMES}
    | {"ax": ("AH",), "axr": ("ER",), "nx": ("N",), "hv": ("HH",), "dx": ("T",)}
    | {"el": ("AH", "L"), "em": ("AH", "M"), "en": ("AH", "N")}
)
"""festival/flite ``radio`` phone set -> one or two classes."""

_ESPEAK_GROUPS = {
    "SIL": "_ _: _! _| _^_ _#",
    "AA": "0 A A:", "AE": "a aa", "AH": "@ @- @2 @5 V a#", "AO": "O O2 O:", "AW": "aU",
    "AY": "aI aI2", "B": "b", "CH": "tS", "D": "d d#", "DH": "D", "EH": "E e",
    "ER": "3 3: @r IR VR", "EY": "eI", "F": "f", "G": "g", "HH": "h", "IH": "I I# I2",
    "IY": "i i:", "JH": "dZ", "K": "k x", "L": "l", "M": "m", "N": "n", "NG": "N",
    "OW": "o oU oU#", "OY": "OI", "P": "p", "R": "r r-", "S": "s", "SH": "S",
    "T": "t t# t2 t[ ?", "TH": "T", "UH": "U", "UW": "u u:", "V": "v", "W": "w w#",
    "Y": "j", "Z": "z", "ZH": "Z",
}
ESPEAK_MAP: dict[str, tuple[str, ...]] = {
    m: (cls,) for cls, mnemonics in _ESPEAK_GROUPS.items() for m in mnemonics.split()
} | {
    "A@": ("AA", "R"), "aI@": ("AY", "AH"), "aI3": ("AY", "ER"), "aU@": ("AW", "ER"),
    "e@": ("EH", "R"), "i@": ("IY", "AH"), "i@3": ("IH", "R"), "O@": ("AO", "R"), "o@": ("AO", "R"),
    "U@": ("UH", "R"), "@L": ("AH", "L"), "n-": ("AH", "N"), "m-": ("AH", "M"),
}
"""espeak-ng English phoneme mnemonics -> one or two classes (``;`` is merged before mapping)."""

ESPEAK_STOPS = frozenset("p t k b d g t# t2 t[ d#".split())
"""espeak mnemonics whose event fires at the release; their start is moved earlier (see engines)."""

Segment = tuple[float, float, str]
"""(start_s, end_s, phone name) on an engine's timeline."""


def map_segments(segments: Iterable[Segment], table: dict[str, tuple[str, ...]]) -> tuple[list, int]:
    """Map engine phones to class indices, splitting two-phone units 60/40.

    Returns ``([(start_s, end_s, class_index), ...], n_unknown)``; unknown names become SPN.
    """
    out, n_unknown = [], 0
    for start_s, end_s, name in segments:
        classes = table.get(name)
        if classes is None:
            n_unknown += 1
            classes = ("SPN",)
        if len(classes) == 1:
            out.append((start_s, end_s, PHONE_INDEX[classes[0]]))
            continue
        mid_s = start_s + SPLIT_FRACTION * (end_s - start_s)
        out.append((start_s, mid_s, PHONE_INDEX[classes[0]]))
        out.append((mid_s, end_s, PHONE_INDEX[classes[1]]))
    return out, n_unknown


def frame_labels(segments: Sequence[tuple[float, float, int]], n_samples: int,
                 sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Frame labels ``(n_samples // HOP_SAMPLES,)`` int16 from class segments (seconds); gaps are SIL."""
    n_frames = n_samples // HOP_SAMPLES
    centres_s = (np.arange(n_frames) * HOP_SAMPLES + HOP_SAMPLES // 2) / sample_rate
    labels = np.full(n_frames, SIL, dtype=np.int16)
    for start_s, end_s, index in segments:
        lo, hi = np.searchsorted(centres_s, [start_s, end_s], side="left")
        labels[lo:hi] = index
    return labels


def write_phone_table(path: str | Path) -> None:
    """Write ``index class timit_fold`` lines for all 41 classes."""
    lines = [f"{i} {name} {TIMIT_FOLD[name]}\n" for i, name in enumerate(PHONES)]
    Path(path).write_text("".join(lines), encoding="utf-8")


def read_phone_table(path: str | Path) -> list[str]:
    """Read a phone table written by :func:`write_phone_table`; returns class names by index."""
    names: dict[int, str] = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{number}: expected 'index class [fold]', got {line!r}")
        names[int(parts[0])] = parts[1]
    if sorted(names) != list(range(len(names))):
        raise ValueError(f"{path}: phone indices are not 0..{len(names) - 1}")
    return [names[i] for i in range(len(names))]
