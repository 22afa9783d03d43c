"""Run logs: a CSV of per-module losses, TensorBoard scalars (when installed) and a tqdm progress bar."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import torch
from tqdm import tqdm


class RunLogger:
    """Writes ``metrics.csv`` (one row per logged step and split) and TensorBoard events under ``run_dir``.

    Columns: ``step, split, loss, lr, steps_per_s, audio_s_per_s`` then ``m{i}_nce, m{i}_kl, m{i}_acc`` per module.
    """

    def __init__(self, run_dir: Path, n_modules: int, total_steps: int, start_step: int, enabled: bool,
                 tensorboard: bool):
        self.enabled = enabled
        self.columns = ["step", "split", "loss", "lr", "steps_per_s", "audio_s_per_s"]
        self.columns += [f"m{i}_{name}" for i in range(n_modules) for name in ("nce", "kl", "acc")]
        self.path = run_dir / "metrics.csv"
        self.writer = _tensorboard(run_dir) if enabled and tensorboard else None
        self.bar = tqdm(total=total_steps, initial=start_step, disable=not enabled, unit="step", dynamic_ncols=True)
        if enabled and not self.path.exists():
            with open(self.path, "w", newline="") as handle:
                csv.writer(handle).writerow(self.columns)

    def log(self, step: int, split: str, loss: float, modules: torch.Tensor, lr: float = 0.0,
            steps_per_s: float = 0.0, audio_s_per_s: float = 0.0) -> None:
        """``modules``: ``(n_modules, 3)`` of (nce, kl, accuracy)."""
        if not self.enabled:
            return
        values = [step, split, loss, lr, steps_per_s, audio_s_per_s, *modules.flatten().tolist()]
        with open(self.path, "a", newline="") as handle:
            csv.writer(handle).writerow([f"{v:.6g}" if isinstance(v, float) else v for v in values])
        if self.writer is not None:
            for name, value in zip(self.columns[2:], values[2:], strict=True):
                self.writer.add_scalar(f"{split}/{name}", value, step)
        if split == "train":
            self.bar.set_postfix(loss=f"{loss:.3f}", steps_s=f"{steps_per_s:.2f}", audio_s_s=f"{audio_s_per_s:.0f}")

    def advance(self, steps: int = 1) -> None:
        self.bar.update(steps)

    def close(self) -> None:
        self.bar.close()
        if self.writer is not None:
            self.writer.close()


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("tensorboard is not installed (pip install 'smooth-infomax[train]'); logging to CSV only",
                      stacklevel=2)
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))
