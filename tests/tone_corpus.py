"""A hermetic stand-in for the synthetic speech corpus: labelled tone-and-noise "speech" made in numpy.

Tests whose subject is not the TTS corpus itself (loaders, training, probes, docs examples, fine-tuning) need some
labelled speech-like audio, not espeak-ng, festival and flite. This corpus has the layout that
:mod:`training.data.synth` writes and :class:`training.data.librispeech.CorpusPaths` reads::

    LibriSpeech/train-clean-100/<spk>/<chap>/<spk>-<chap>-<utt>.flac   16 kHz mono PCM_16
    LibriSpeech/train-clean-100/<spk>/<chap>/<spk>-<chap>.trans.txt
    LibriSpeech/SPEAKERS.TXT
    LibriSpeech100_labels_split/converted_aligned_phones.txt             one label per 160 samples (frame centres)
    LibriSpeech100_labels_split/{train_split,test_split,train_val_train,train_val_val}.txt
    phones.txt  speakers.tsv  utterances.tsv

What the audio carries, so that probes have something to find:

* a **speaker** is a pitch (f0), a vocal-tract scale of every formant, a spectral tilt of the voiced source, a
  channel that colours everything it says (a pass band of its own, 40 dB down outside, and six resonances of up
  to +20 dB at frequencies of its own inside), and a background noise colour (white, pink or brown noise);
* a **phone** is a spectral shape: a vowel-like class is the speaker's harmonic series weighted by three formant
  peaks, a fricative-like class is noise in its own band; each utterance is silence, a run of 40-150 ms phones,
  silence, with 5 ms ramps between segments.

Speakers are numbered 1000, 1001, ... with one chapter each (as in the TTS corpus); per speaker one utterance is in
the test split and the rest in the train split, and one train utterance per speaker is in ``train_val_val``.
The same arguments give the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from training.data.phones import PHONE_INDEX, PHONES, frame_labels, write_phone_table

SAMPLE_RATE = 16000
VOWELS = {"AA": (730, 1090, 2440), "IY": (270, 2290, 3010), "UW": (300, 870, 2240), "EH": (530, 1840, 2480),
          "AE": (660, 1720, 2410), "ER": (490, 1350, 1690), "OW": (570, 840, 2410), "M": (250, 1200, 2200)}
"""Vowel-like classes: three formant centres in Hz (Peterson & Barney averages; a nasal murmur for M)."""
FRICATIVES = {"S": (4000, 7500), "SH": (2000, 4500), "F": (1000, 7800), "HH": (300, 3000)}
"""Fricative-like classes: the noise band in Hz."""
SPEAKERS = ((110.0, 1.00, 1.2, (80, 3400), 0.0), (165.0, 1.15, 0.6, (300, 7800), 1.0),
            (230.0, 1.30, 0.0, (150, 5500), 2.0), (135.0, 1.08, 0.9, (200, 4500), 0.5),
            (195.0, 1.22, 0.3, (100, 6500), 1.5))
"""Per speaker: f0 in Hz, formant scale, source tilt (harmonic ``k`` has amplitude ``k ** -tilt``), the pass band of
its channel in Hz, and its background noise colour (power falls as ``1 / f ** colour``)."""


def _ramp(segment: np.ndarray, ramp_samples: int = 80) -> np.ndarray:
    ramp = np.minimum(1.0, np.minimum(np.arange(len(segment)) + 1, np.arange(len(segment))[::-1] + 1) / ramp_samples)
    return segment * ramp


def _vowel(n: int, f0_hz: float, formants_hz: tuple[float, ...], scale: float, tilt: float,
           rng: np.random.Generator) -> np.ndarray:
    t = np.arange(n) / SAMPLE_RATE
    f0 = f0_hz * (1 + 0.03 * rng.standard_normal()) * (1 + 0.02 * np.sin(2 * np.pi * 4 * t))  # a little vibrato
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    wave = np.zeros(n)
    for k in range(1, int(SAMPLE_RATE / 2 / f0_hz)):
        harmonic_hz = k * f0_hz
        gain = sum(np.exp(-0.5 * ((harmonic_hz - scale * f) / (60 + 0.05 * f)) ** 2) for f in formants_hz)
        wave += (gain + 0.02) * k ** -tilt * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    return wave / (np.abs(wave).max() + 1e-9)


def _band_noise(n: int, low_hz: float, high_hz: float, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum[(freqs < low_hz) | (freqs > high_hz)] = 0
    noise = np.fft.irfft(spectrum, n)
    return noise / (np.abs(noise).max() + 1e-9)


def _coloured_noise(n: int, colour: float, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    spectrum *= np.maximum(freqs, 20.0) ** (-colour / 2)
    noise = np.fft.irfft(spectrum, n)
    return noise / (noise.std() + 1e-12)


def speaker_channel(speaker: int, freqs: np.ndarray) -> np.ndarray:
    """The gain of ``speaker``'s channel at ``freqs`` (Hz): its pass band times six resonances drawn for it."""
    low_hz, high_hz = SPEAKERS[speaker % len(SPEAKERS)][3]
    band = 0.01 + 1 / ((1 + np.exp((low_hz - freqs) / 30)) * (1 + np.exp((freqs - high_hz) / 100)))
    rng = np.random.default_rng([7, speaker])
    centres, gains, widths = rng.uniform(200, 7000, 6), rng.uniform(2, 9, 6), rng.uniform(100, 300, 6)
    resonances = (g * np.exp(-0.5 * ((freqs - c) / w) ** 2) for c, g, w in zip(centres, gains, widths, strict=True))
    return band * (1 + sum(resonances))


def utterance(speaker: int, rng: np.random.Generator, seconds: float) -> tuple[np.ndarray, list]:
    """Audio ``(samples,)`` float32 and its class segments ``[(start_s, end_s, class_index)]``."""
    f0_hz, scale, tilt, _, colour = SPEAKERS[speaker % len(SPEAKERS)]
    n_total = int(seconds * SAMPLE_RATE)
    audio, segments = np.zeros(n_total), []
    names = list(VOWELS) + list(FRICATIVES)
    position = int(rng.uniform(0.10, 0.20) * SAMPLE_RATE)  # leading silence
    end = n_total - int(rng.uniform(0.10, 0.20) * SAMPLE_RATE)
    while position < end:
        n = min(int(rng.uniform(0.04, 0.15) * SAMPLE_RATE), end - position)
        name = names[rng.integers(len(names))]
        if name in VOWELS:
            piece = 0.5 * _vowel(n, f0_hz, VOWELS[name], scale, tilt, rng)
        else:
            low, high = FRICATIVES[name]
            piece = 0.15 * _band_noise(n, low * scale, min(high * scale, 7900.0), rng)
        audio[position:position + n] = _ramp(piece * rng.uniform(0.6, 1.0))
        segments.append((position / SAMPLE_RATE, (position + n) / SAMPLE_RATE, PHONE_INDEX[name]))
        position += n
    audio += 0.02 * _coloured_noise(n_total, colour, rng)
    freqs = np.fft.rfftfreq(n_total, 1 / SAMPLE_RATE)
    channel = speaker_channel(speaker, freqs)
    audio = np.fft.irfft(np.fft.rfft(audio) * channel / channel.max(), n_total)
    return audio.astype(np.float32), segments


def _lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def write_tone_corpus(out: Path, speakers: int = 3, utterances: int = 3, seed: int = 0,
                      seconds: tuple[float, float] = (2.0, 3.0)) -> Path:
    """Write the corpus under ``out`` (``speakers`` x ``utterances``, each ``seconds`` long); returns ``out``."""
    out = Path(out)
    audio_root, labels_dir = out / "LibriSpeech" / "train-clean-100", out / "LibriSpeech100_labels_split"
    labels_dir.mkdir(parents=True, exist_ok=True)
    label_lines, table, splits = [], [], {"train_split": [], "test_split": [], "train_val_train": [],
                                          "train_val_val": []}
    for s in range(speakers):
        speaker_id, chapter_id = 1000 + s, 100 + s
        folder = audio_root / str(speaker_id) / str(chapter_id)
        folder.mkdir(parents=True, exist_ok=True)
        ids, transcripts = [], []
        for u in range(utterances):
            rng = np.random.default_rng([seed, s, u])
            audio, segments = utterance(s, rng, rng.uniform(*seconds))
            utt_id = f"{speaker_id}-{chapter_id}-{u:04d}"
            sf.write(folder / f"{utt_id}.flac", audio, SAMPLE_RATE, subtype="PCM_16")
            labels = frame_labels(segments, len(audio))
            label_lines.append(f"{utt_id} {' '.join(map(str, labels.tolist()))}")
            transcripts.append(f"{utt_id} {' '.join(PHONES[c] for _, _, c in segments)}")
            rms_dbfs = 20 * np.log10(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
            table.append(f"{utt_id}\t{len(audio)}\t{len(labels)}\t{rms_dbfs:.2f}\t{np.abs(audio).max():.4f}\t"
                         f"{transcripts[-1].split(' ', 1)[1]}")
            ids.append(utt_id)
        _lines(folder / f"{speaker_id}-{chapter_id}.trans.txt", transcripts)
        order = [ids[i] for i in np.random.default_rng([seed, s, 4]).permutation(len(ids))]
        n_test = 1 if len(ids) >= 2 else 0
        train, n_val = sorted(order[n_test:]), 1 if len(ids) - n_test >= 2 else 0
        splits["test_split"] += order[:n_test]
        splits["train_split"] += train
        splits["train_val_val"] += train[:n_val]
        splits["train_val_train"] += train[n_val:]
    _lines(labels_dir / "converted_aligned_phones.txt", label_lines)
    for name, ids in splits.items():
        _lines(labels_dir / f"{name}.txt", ids)
    write_phone_table(out / "phones.txt")
    _lines(out / "speakers.tsv", ["speaker_id\tchapter_id\tengine\tvoice\tsex\tsettings"] + [
        f"{1000 + s}\t{100 + s}\ttones\tf0={SPEAKERS[s % len(SPEAKERS)][0]:g}\t-\t{{}}" for s in range(speakers)])
    _lines(out / "LibriSpeech" / "SPEAKERS.TXT", ["; ID | SEX | SUBSET | MINUTES | NAME"] + [
        f"{1000 + s} | - | train-clean-100 | 0.10 | tones {s}" for s in range(speakers)])
    _lines(out / "utterances.tsv", ["utterance_id\tn_samples\tn_labels\trms_dbfs\tpeak\ttext"] + table)
    return out
