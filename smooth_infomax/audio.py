"""Audio front-end constants shared by the encoder, the CLI and the training tree."""

SAMPLE_RATE = 16_000
"""Sample rate (Hz) every SIM model runs at; other rates are resampled to it."""

HOP_SAMPLES = 160
"""Samples per output frame of the full CPC conv stack: 5 * 4 * 2 * 2 * 2 (10 ms at 16 kHz)."""

FRAME_RATE_HZ = SAMPLE_RATE / HOP_SAMPLES
"""Frames per second after the full conv stack (100 Hz)."""
