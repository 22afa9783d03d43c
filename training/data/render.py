"""Worker side of the corpus generator: synthesize one speaker's utterances and write them.

Runs in a fresh process per speaker (libespeak-ng keeps state across voices), single-threaded, so the
output does not depend on scheduling or on the number of worker processes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from smooth_infomax.audio import SAMPLE_RATE
from training.data import engines
from training.data.phones import ESPEAK_MAP, RADIO_MAP, frame_labels, map_segments
from training.data.speakers import Speaker

RESAMPLE_STEP_HZ = 100
"""The claimed input rate ``native * speed_factor`` is rounded to this, to keep resampling kernels small."""
PEAK_LIMIT = 0.97


def _synthesize(speaker: Speaker, texts: list[str], plans: list[dict]) -> list[engines.Synthesis]:
    if speaker.engine == "espeak":
        espeak = engines.Espeak()
        espeak.set_voice(speaker.voice)
        return [espeak.synthesize(text, **plan["engine"]) for text, plan in zip(texts, plans, strict=True)]
    if speaker.engine == "festival":
        jobs = [{"text": text, **plan["engine"]} for text, plan in zip(texts, plans, strict=True)]
        return engines.festival_batch(speaker.voice, jobs, hts_alpha=speaker.settings.get("hts_alpha"))
    return [engines.flite_synthesize(text, speaker.voice, **plan["engine"])
            for text, plan in zip(texts, plans, strict=True)]


def render(synthesis: engines.Synthesis, table: dict, settings: dict, plan: dict,
           noise_rng: np.random.Generator) -> tuple[np.ndarray, list, int]:
    """Resample with the speed factor, pad, set the level, add a noise floor.

    Returns ``(audio (samples,) int16 at 16 kHz, [(start_s, end_s, class_index)], n_unknown_phones)``.
    """
    native = synthesis.sample_rate
    claimed = round(native * settings["speed_factor"] / RESAMPLE_STEP_HZ) * RESAMPLE_STEP_HZ
    speech = AF.resample(torch.from_numpy(synthesis.audio), claimed, SAMPLE_RATE).numpy().astype(np.float64)
    time_scale = native / claimed
    pad_front = round(plan["pad_front_s"] * SAMPLE_RATE)
    pad_back = round(plan["pad_back_s"] * SAMPLE_RATE)
    offset_s = pad_front / SAMPLE_RATE
    classes, n_unknown = map_segments(synthesis.segments, table)
    segments = [(start * time_scale + offset_s, end * time_scale + offset_s, c) for start, end, c in classes]

    rms = float(np.sqrt(np.mean(speech**2))) or 1.0
    gain = 10 ** (plan["level_dbfs"] / 20) / rms
    gain = min(gain, PEAK_LIMIT / max(float(np.max(np.abs(speech))), 1e-9))
    audio = np.zeros(pad_front + len(speech) + pad_back)
    audio[pad_front:pad_front + len(speech)] = speech * gain
    audio += noise_rng.standard_normal(len(audio)) * 10 ** (settings["noise_dbfs"] / 20)
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    return pcm, segments, n_unknown


def transcript(text: str) -> str:
    """LibriSpeech-style transcript: upper case, letters, apostrophes and spaces only."""
    kept = "".join(ch if ch.isalpha() or ch in "' " else " " for ch in text.upper())
    return " ".join(kept.split())


def synthesize_speaker(task: dict) -> list[dict]:
    """Synthesize, render and write all utterances of one speaker; returns one metadata row per utterance.

    ``task``: ``speaker`` (dict of :class:`Speaker`), ``texts``, ``plans``, ``seed``, ``audio_dir``,
    ``audio_format`` ("flac" or "wav").
    """
    torch.set_num_threads(1)
    speaker = Speaker(**task["speaker"])
    table = ESPEAK_MAP if speaker.engine == "espeak" else RADIO_MAP
    chapter_dir = Path(task["audio_dir"]) / str(speaker.speaker_id) / str(speaker.chapter_id)
    chapter_dir.mkdir(parents=True, exist_ok=True)
    syntheses = _synthesize(speaker, task["texts"], task["plans"])
    rows = []
    for i, (text, plan, synthesis) in enumerate(zip(task["texts"], task["plans"], syntheses, strict=True)):
        utt_id = f"{speaker.speaker_id}-{speaker.chapter_id}-{i:04d}"
        noise_rng = np.random.default_rng([task["seed"], speaker.index, i, 3])
        pcm, segments, n_unknown = render(synthesis, table, speaker.settings, plan, noise_rng)
        path = chapter_dir / f"{utt_id}.{task['audio_format']}"
        sf.write(path, pcm, SAMPLE_RATE, format=task["audio_format"].upper(), subtype="PCM_16")
        labels = frame_labels(segments, len(pcm))
        level = 20 * np.log10(max(float(np.sqrt(np.mean((pcm / 32768.0) ** 2))), 1e-9))
        rows.append({"utterance_id": utt_id, "speaker_index": speaker.index, "n_samples": len(pcm),
                     "labels": " ".join(map(str, labels.tolist())), "text": text, "n_unknown": n_unknown,
                     "rms_dbfs": round(level, 2), "peak": round(float(np.max(np.abs(pcm))) / 32768.0, 4),
                     "segments": [(round(s, 4), round(e, 4), c) for s, e, c in segments]})
    lines = [f"{row['utterance_id']} {transcript(row['text'])}\n" for row in rows]
    (chapter_dir / f"{speaker.speaker_id}-{speaker.chapter_id}.trans.txt").write_text("".join(lines))
    return rows
