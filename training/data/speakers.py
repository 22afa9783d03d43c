"""Synthetic speaker roster and per-utterance plans: every random choice is drawn from the seed.

A speaker is an engine voice plus settings: accent/variant/pitch (espeak), vocal-tract warp ``hts_alpha``
(festival HTS), F0 (festival and flite diphone voices), and for everyone a resampling ``speed_factor``
(F0 and formants times f, durations divided by f; the engine's own rate compensates, so the speaking
tempo is set separately), a speaking ``tempo``, a level and a noise floor. Engines are interleaved so
that small rosters cover all of them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

ENGINES = ("espeak", "festival", "flite")
ESPEAK_ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                  "en-029", "en-us-nyc")
ESPEAK_MALE = ("m1 m2 m3 m4 m5 m6 m7 m8 Alex Andy AnxiousAndy Denis Diogo Henrique Hugo Lee Mike adam "
               "antonio benjamin boris david edward gustave max michel miguel paul quincy rob victor zac").split()
ESPEAK_FEMALE = "f1 f2 f3 f4 f5 Andrea Annie aunty belinda grandma linda shelby steph steph2 steph3 anika".split()
ESPEAK_VARIANTS = tuple((v, "M") for v in ESPEAK_MALE) + tuple((v, "F") for v in ESPEAK_FEMALE)
"""48 variants; echo/robot/whisper variants are left out."""
FESTIVAL_VOICES = (("cmu_us_slt_arctic_hts", "F"), ("kal_diphone", "M"), ("cmu_us_slt_arctic_hts", "F"),
                   ("ked_diphone", "M"))
FLITE_VOICES = (("rms", "M"), ("slt", "F"), ("awb", "M"), ("kal16", "M"))
ESPEAK_BASE_RATE_WPM = 175
DIPHONE_BASE_STRETCH = 1.1


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker; ``speaker_id``/``chapter_id`` form LibriSpeech-style ids."""

    index: int
    speaker_id: int
    chapter_id: int
    engine: str
    voice: str
    sex: str
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def _uniform(rng: np.random.Generator, low: float, high: float, decimals: int = 3) -> float:
    return round(float(rng.uniform(low, high)), decimals)


def _espeak_voice(j: int, seed: int, rng: np.random.Generator) -> tuple[str, str, dict]:
    # (accent, variant) pairs are unique for the first 384 espeak speakers; variants are seeded.
    order = np.random.default_rng([seed, 7]).permutation(len(ESPEAK_VARIANTS))
    n = len(ESPEAK_VARIANTS)
    variant, sex = ESPEAK_VARIANTS[int(order[(j % n + j // n) % n])]
    accent = ESPEAK_ACCENTS[j % len(ESPEAK_ACCENTS)]
    settings = {"pitch": int(rng.integers(20, 81)), "pitch_range": int(rng.integers(20, 81))}
    return f"{accent}+{variant}", sex, settings


def _festival_voice(j: int, rng: np.random.Generator) -> tuple[str, str, dict]:
    voice, sex = FESTIVAL_VOICES[j % len(FESTIVAL_VOICES)]
    if voice.endswith("_hts"):
        return voice, sex, {"hts_alpha": _uniform(rng, 0.35, 0.57, 2)}
    return voice, sex, {"f0_mean": _uniform(rng, 85.0, 150.0, 1), "f0_std": _uniform(rng, 10.0, 25.0, 1)}


def _flite_voice(j: int, rng: np.random.Generator) -> tuple[str, str, dict]:
    voice, sex = FLITE_VOICES[j % len(FLITE_VOICES)]
    return voice, sex, ({"f0_mean": _uniform(rng, 85.0, 150.0, 1)} if voice == "kal16" else {})


def make_roster(n_speakers: int, seed: int, engines: tuple[str, ...] = ENGINES) -> list[Speaker]:
    """``n_speakers`` speakers, engines interleaved in the order given."""
    roster = []
    for k in range(n_speakers):
        engine, j = engines[k % len(engines)], k // len(engines)
        rng = np.random.default_rng([seed, k, 1])
        if engine == "espeak":
            voice, sex, settings = _espeak_voice(j, seed, rng)
        elif engine == "festival":
            voice, sex, settings = _festival_voice(j, rng)
        elif engine == "flite":
            voice, sex, settings = _flite_voice(j, rng)
        else:
            raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
        settings |= {"speed_factor": _uniform(rng, 0.82, 1.18), "tempo": _uniform(rng, 0.9, 1.1),
                     "level_dbfs": _uniform(rng, -28.0, -18.0, 1), "noise_dbfs": _uniform(rng, -68.0, -52.0, 1)}
        roster.append(Speaker(k, 1000 + k, 100 + k, engine, voice, sex, settings))
    return roster


def engine_parameters(speaker: Speaker, tempo: float, f0_factor: float) -> dict:
    """Engine call parameters for one utterance, given its jittered tempo and F0 factor."""
    s, f = speaker.settings, speaker.settings["speed_factor"]
    if speaker.engine == "espeak":
        return {"rate_wpm": round(ESPEAK_BASE_RATE_WPM * tempo / f),
                "pitch": int(np.clip(round(s["pitch"] * f0_factor), 0, 99)), "pitch_range": s["pitch_range"]}
    if speaker.engine == "festival" and "hts_alpha" in s:
        return {"speed": round(tempo / f, 4)}
    if speaker.engine == "festival":
        return {"duration_stretch": round(DIPHONE_BASE_STRETCH * f / tempo, 4),
                "f0_mean": round(s["f0_mean"] * f0_factor, 2), "f0_std": s["f0_std"]}
    params = {"duration_stretch": round(f / tempo, 4)}
    if "f0_mean" in s:
        params["f0_mean"] = round(s["f0_mean"] * f0_factor, 2)
    return params


def plan_utterance(speaker: Speaker, utt_index: int, seed: int) -> dict:
    """Per-utterance jitter (tempo +-6 %, F0 +-5 %, level +-2 dB) and padding (50-300 ms each side)."""
    rng = np.random.default_rng([seed, speaker.index, utt_index, 2])
    tempo = speaker.settings["tempo"] * _uniform(rng, 0.94, 1.06)
    f0_factor = _uniform(rng, 0.95, 1.05)
    return {"engine": engine_parameters(speaker, tempo, f0_factor),
            "level_dbfs": round(speaker.settings["level_dbfs"] + _uniform(rng, -2.0, 2.0, 2), 2),
            "pad_front_s": _uniform(rng, 0.05, 0.3), "pad_back_s": _uniform(rng, 0.05, 0.3)}
