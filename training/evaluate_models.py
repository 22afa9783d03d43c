"""The feature sources ``training.evaluate`` compares: trained encoders (from a model folder, a run folder, a
checkpoint or a ``from_pretrained`` name), seeded random initialisations and MFCC, each a :class:`Candidate`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from smooth_infomax import SmoothInfoMaxEncoder
from smooth_infomax.analysis.features import EncoderFeatures, LateFeatures, MfccFeatures

if TYPE_CHECKING:
    from training.evaluate import EvalSettings


def load_encoder(spec: str, device: str = "cpu") -> tuple[SmoothInfoMaxEncoder, str]:
    """An encoder in eval mode from a ``save_pretrained`` folder, a run folder (latest checkpoint), a checkpoint
    file, or a ``from_pretrained`` name; and a description of where it came from."""
    from smooth_infomax.hub import load_for_cli

    path = Path(spec)
    if path.is_dir() and (path / "config.json").is_file():
        return load_for_cli(str(path), device=device), f"pretrained folder {path}"
    if path.is_dir() and (path / "checkpoints").is_dir() or path.is_file():
        from training.checkpoint import latest_checkpoint
        from training.export import encoder_from_checkpoint

        checkpoint = latest_checkpoint(path) if path.is_dir() else path
        if checkpoint is None:
            raise FileNotFoundError(f"{path}: no checkpoints")
        encoder, state = encoder_from_checkpoint(checkpoint)
        return encoder.to(device).eval(), f"checkpoint {checkpoint} (step {state.get('step')})"
    return load_for_cli(spec, device=device), f"from_pretrained({spec!r})"


def random_encoder(preset: str, seed: int, device: str = "cpu") -> SmoothInfoMaxEncoder:
    """A randomly initialised encoder of ``preset``, reproducible from ``seed`` (eval mode)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = SmoothInfoMaxEncoder.from_preset(preset)
    return encoder.to(device).eval()


@dataclass
class Candidate:
    """A row group of the results: a name, a feature source and where it came from."""

    name: str
    kind: str  # "trained", "random-init" or "mfcc"
    description: str
    make: object  # () -> FeatureSource


def candidates_from_args(args: argparse.Namespace, settings: EvalSettings) -> list[Candidate]:
    """The feature sources to evaluate, in table order: trained models, random inits, MFCC."""
    candidates = []
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model wants NAME=PATH, got {spec!r}")
        encoder, description = load_encoder(path, settings.device)  # fail early on a bad path
        candidates.append(Candidate(name, "trained", description, lambda e=encoder: EncoderFeatures(e)))
    for preset_name in args.random_init:
        description = f"from_preset({preset_name!r}) after torch.manual_seed({settings.seed})"
        candidates.append(Candidate(f"random {preset_name}", "random-init", description,
                                    lambda p=preset_name: EncoderFeatures(random_encoder(p, settings.seed,
                                                                                         settings.device))))
    if args.mfcc:
        candidates.append(Candidate("MFCC", "mfcc", "torchaudio MFCC-13 + deltas",
                                    lambda: MfccFeatures(context=args.mfcc_context)))
    if not candidates:
        raise SystemExit("nothing to evaluate: give --model, --random-init and/or --mfcc")
    if args.frames_late:
        if 0 in args.frames_late:
            raise SystemExit("--frames-late wants non-zero shifts (0 is the plain feature set)")
        candidates = [replace(c, make=lambda make=c.make: LateFeatures(make(), args.frames_late)) for c in candidates]
    return candidates
