"""The timed paths of ``extraction`` and ``tricks``: the plain stack, ``extract`` and ``sim-extract`` over a list of
clips, each returning every clip's per-module means ``(frames, dim)``, and how far two such results are apart."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch

from smooth_infomax.cli import main as sim_extract
from smooth_infomax.extraction import load_features
from smooth_infomax.inference import piece_groups
from training.benchmarks.common import SAMPLE_RATE
from training.benchmarks.plain import PlainStack


def autocast(bf16: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()


def run_plain(plain: PlainStack, wavs, bf16: bool) -> list[list[torch.Tensor]]:
    with autocast(bf16):
        return [plain.features(wav) for wav in wavs]


def run_extract(encoder, wavs, bf16: bool, batch_seconds: float | None, **kwargs) -> list[list[torch.Tensor]]:
    """Means of every clip: length-sorted calls of at most ``batch_seconds`` of padded audio (``None``: one clip
    per call); ``kwargs`` go to ``extract``."""
    outputs: list = [None] * len(wavs)
    limit = int(batch_seconds * SAMPLE_RATE) if batch_seconds else 0
    batches = piece_groups([len(w) for w in wavs], limit) if limit else [[i] for i in range(len(wavs))]
    for batch in batches:
        with autocast(bf16):
            extraction = encoder.extract([wavs[i] for i in batch], sample_rate=SAMPLE_RATE, **kwargs)
        for row, i in enumerate(batch):
            outputs[i] = [f.unpad(row) for f in extraction]
    return outputs


def run_cli(model: str, in_dir: Path, out_dir: Path, bf16: bool, options: tuple[str, ...] = ()) -> None:
    """``sim-extract`` in this process, its summary line kept off the benchmark's output (unless it fails)."""
    args = [str(in_dir), str(out_dir), "--model", model, "--force", "--quiet", *options]
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = sim_extract(args + (["--bf16"] if bf16 else []), standalone_mode=False)
    if code:
        raise RuntimeError(f"sim-extract {' '.join(args)} exited with {code}:\n{output.getvalue()}")


def read_cli(out_dir: Path, paths: list[Path], num_modules: int) -> list[list[torch.Tensor]]:
    outputs = []
    for path in paths:
        arrays, _ = load_features(out_dir / f"{path.name}.safetensors")
        outputs.append([torch.from_numpy(arrays[f"module{m}.mean"]) for m in range(num_modules)])
    return outputs


def difference(outputs, reference) -> tuple[float, float]:
    """Largest absolute difference, and the largest per-module relative error ``|a - b| / |b|`` (Frobenius)."""
    max_abs, max_rel = 0.0, 0.0
    for got_file, want_file in zip(outputs, reference, strict=True):
        for got, want in zip(got_file, want_file, strict=True):
            delta = got.float() - want.float()
            max_abs = max(max_abs, float(delta.abs().max()))
            max_rel = max(max_rel, float(delta.norm() / want.float().norm().clamp_min(1e-12)))
    return max_abs, max_rel
