"""Training checkpoints: everything needed to continue a run exactly, written atomically.

A checkpoint is a ``torch.save`` dict of tensors and plain Python values (no classes), so it loads with
``torch.load(weights_only=True)``: encoder and predictor weights, optimiser and scheduler state, the step, the
elapsed training time and every random state (torch, numpy, Python, and the run's own generators).
"""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

_NAME = re.compile(r"^step_(\d{8})\.pt$")


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step_{step:08d}.pt"


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint of the highest step in ``run_dir``, or ``None``."""
    folder = Path(run_dir) / "checkpoints"
    found = sorted(p for p in folder.glob("step_*.pt") if _NAME.match(p.name)) if folder.is_dir() else []
    return found[-1] if found else None


def random_states(generators: dict[str, torch.Generator]) -> dict[str, Any]:
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": _to_lists(random.getstate()),
        "generators": {name: g.get_state() for name, g in generators.items()},
    }


def restore_random_states(states: dict[str, Any], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    name, keys, *rest = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    for name, generator in generators.items():
        generator.set_state(states["generators"][name])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple) else value


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # two writers never share a temporary
    with open(temporary, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def load_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Read a checkpoint this training code wrote (``weights_only=True``: no code is executed)."""
    return torch.load(path, map_location=device, weights_only=True)
