"""Storing one input's features: the output folder (never outside OUT_DIR), the metadata, the rows with their
seeded samples, and the atomic commit; also the removal of temporary files left by killed runs.

``write_output`` returns ``Written`` or a ``Failure``: stage ``write`` for its own errors, stage ``compute`` for a
``ComputeError`` raised while a long file's rows were computed during the write.

Samples ``mean + exp(logvar / 2) * eps`` do not depend on batching or chunking: the noise ``eps`` of module ``m``
is drawn in fixed blocks of 1024 frames; block ``b`` is ``torch.randn(1024, dim)`` from a CPU ``torch.Generator``
seeded with the first 16 hex digits of ``sha256(f"{seed}:{m}:{b}")``, where ``seed`` is the per-file seed stored
in the output's metadata (docs/cli.md). So the samples can be recomputed from the stored mean, logvar and seed, and
are the same whichever rows a chunk covers.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import __version__
from ..audio import SAMPLE_RATE
from ..geometry import output_lengths
from ..outputs import FrameRows
from .compute import Computed, ComputeError
from .formats import FeatureWriter, TempName, open_writer, parse_temp_name, remove_path
from .plan import Failure, WorkItem, failure_for, output_fingerprint, seed_from_fingerprint
from .settings import STORE_DTYPES, RunContext
from .sources import OutsideOutputDir, display

_FORMAT_NAME = "smooth-infomax-features"
_NOISE_BLOCK_FRAMES = 1024


@dataclass(frozen=True)
class Written:
    """An output written: its work ``item``, ``metadata``, bytes on disk and the seconds of audio it covers."""

    item: WorkItem
    metadata: dict[str, str]
    size_bytes: int
    audio_s: float


def write_output(context: RunContext, fmt: str, tree: OutputTree, computed: Computed) -> Written | Failure:
    """Write ``computed`` (consuming its rows, so a long file is computed here) to its item's output path.

    Nothing appears under the output name unless every row of every tensor was written.
    """
    decoded = computed.decoded
    item = decoded.item
    try:
        metadata = _write(context, fmt, tree, computed)
        return Written(item, metadata, output_size_bytes(item.output), decoded.audio.info.duration_s)
    except ComputeError as err:
        return failure_for(item.source, str(err), "compute")
    except Exception as err:  # noqa: BLE001 -- a file's failure must not stop the run
        return failure_for(item.source, f"{type(err).__name__}: {err}", "write")


def _write(context: RunContext, fmt: str, tree: OutputTree, computed: Computed) -> dict[str, str]:
    decoded = computed.decoded
    fingerprint = output_fingerprint(context.settings_sha256, decoded.source_sha256)
    seed = seed_from_fingerprint(fingerprint)
    metadata = _file_metadata(context, computed, fingerprint, seed)
    specs = context.specs(decoded.samples)
    tree.ensure_folder(decoded.item.output.parent)
    writer = open_writer(fmt, decoded.item.output, specs, metadata)
    try:
        written = dict.fromkeys(specs, 0)
        for rows in computed.rows:
            for module, frame_rows in rows.items():
                _write_module(writer, context, module, frame_rows, seed, written)
        incomplete = {k: (n, specs[k][0][0]) for k, n in written.items() if n != specs[k][0][0]}
        if incomplete:
            raise RuntimeError(f"rows written != frames expected for {incomplete}; this is a bug")
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    return metadata


def _write_module(writer: FeatureWriter, context: RunContext, module: int, rows: FrameRows, seed: int,
                  written: dict[str, int]) -> None:
    dtype = STORE_DTYPES[context.settings.dtype]
    mean = rows.mean.float().cpu()
    for key in context.module_keys(module):
        what = key.rsplit(".", 1)[1]
        if what == "mean":
            values = mean
        else:
            # module_keys lists logvar and sample only for Gaussian modules, whose rows carry a log-variance
            assert rows.logvar is not None
            if what == "logvar":
                values = rows.logvar.float().cpu()
            else:
                values = draw_sample(mean, rows.logvar.cpu(), seed, module, rows.start_frame)
        writer.write_rows(key, rows.start_frame, values.numpy().astype(dtype, copy=False))
        written[key] += values.shape[0]


def output_size_bytes(path: Path) -> int:
    """Bytes on disk of an output file, or of all files in an ``npy`` output folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    return path.stat().st_size


# ---- metadata -----------------------------------------------------------------------------------------------------

def _file_metadata(context: RunContext, computed: Computed, fingerprint: str, seed: int) -> dict[str, str]:
    """The metadata of one output (``str -> str``, as safetensors requires). Flat string fields for quick access,
    and ``json`` with all of them plus the per-module geometry (hop, receptive field, frames, dim, keys) as real
    JSON types."""
    item, audio, samples = computed.decoded.item, computed.decoded.audio, computed.decoded.samples
    settings = context.settings
    fields = {
        "format": _FORMAT_NAME,
        "format_version": settings.format_version,
        "smooth_infomax_version": __version__,
        "model": context.model_name,
        "model_revision": context.model_revision,
        "model_sha256": settings.model_sha256,
        "modules": ",".join(str(m) for m in settings.modules),
        "what": ",".join(settings.what),
        "dtype": settings.dtype,
        "compute_dtype": settings.compute_dtype,
        "sample_rate": SAMPLE_RATE,
        "hop_samples": ",".join(str(context.encoder.geometries[m].hop_samples) for m in settings.modules),
        "samples": samples,
        "source": display(item.source.key),
        "source_key_hex": os.fsencode(str(item.source.key)).hex(),
        "source_duration_s": round(audio.info.duration_s, 6),
        "source_sample_rate": audio.info.sample_rate,
        "source_channels": audio.info.channels,
        "source_frames": audio.info.frames,
        "source_format": f"{audio.file_format}/{audio.subtype}",
        "source_sha256": computed.decoded.source_sha256,
        "source_size_bytes": item.status.size_bytes,
        "source_mtime_ns": item.status.mtime_ns,
        "downmix": "mean of channels" if audio.info.channels > 1 else "",
        "resampler": audio.resampler,
        "settings_sha256": context.settings_sha256,
        "fingerprint": fingerprint,
        "seed": seed,
    }
    flat = {key: str(value) for key, value in fields.items()}
    flat["json"] = json.dumps({**fields, "module_info": _modules_json(context, samples)}, sort_keys=True)
    return flat


def _modules_json(context: RunContext, samples: int) -> list[dict]:
    lengths = output_lengths(context.encoder.config, samples)
    out = []
    for m in context.settings.modules:
        geometry = context.encoder.geometries[m]
        out.append({"index": m, "frames": int(lengths[m]), "dim": context.encoder.output_dims[m],
                    "hop_samples": geometry.hop_samples, "frame_rate_hz": geometry.frame_rate_hz,
                    "receptive_field_samples": geometry.receptive_field_samples,
                    "conv_receptive_field_samples": geometry.conv_receptive_field_samples,
                    "first_sample": geometry.first_sample, "recurrent": geometry.recurrent,
                    "keys": context.module_keys(m)})
    return out


# ---- samples ------------------------------------------------------------------------------------------------------

def _block_seed(seed: int, module: int, block: int) -> int:
    """64-bit seed of noise block ``block`` of module ``module``: the first 16 hex digits of
    ``sha256(f"{seed}:{module}:{block}")``."""
    return int(hashlib.sha256(f"{seed}:{module}:{block}".encode()).hexdigest()[:16], 16)


def noise_rows(seed: int, module: int, start_frame: int, stop_frame: int, dim: int) -> torch.Tensor:
    """Standard normal noise ``(stop_frame - start_frame, dim)`` float32 for frames ``[start_frame, stop_frame)``."""
    pieces = []
    for block in range(start_frame // _NOISE_BLOCK_FRAMES, -(-stop_frame // _NOISE_BLOCK_FRAMES)):
        generator = torch.Generator().manual_seed(_block_seed(seed, module, block))
        noise = torch.randn(_NOISE_BLOCK_FRAMES, dim, generator=generator)
        first = block * _NOISE_BLOCK_FRAMES
        pieces.append(noise[max(start_frame, first) - first: min(stop_frame, first + _NOISE_BLOCK_FRAMES) - first])
    return torch.cat(pieces) if pieces else torch.zeros(0, dim)


def draw_sample(mean: torch.Tensor, logvar: torch.Tensor, seed: int, module: int, start_frame: int) -> torch.Tensor:
    """``mean + exp(logvar / 2) * eps`` in float32 for rows ``(rows, dim)`` starting at ``start_frame``."""
    eps = noise_rows(seed, module, start_frame, start_frame + mean.shape[0], mean.shape[1])
    return mean.float() + torch.exp(0.5 * logvar.float()) * eps


# ---- OUT_DIR ------------------------------------------------------------------------------------------------------

class OutputTree:
    """Creates output folders under OUT_DIR one level at a time, refusing any level that resolves (through a
    symlink) outside the resolved OUT_DIR, so nothing is ever created outside it. Checked folders are cached."""

    def __init__(self, out_dir: Path):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.real = os.path.realpath(self.out_dir)
        self._checked: set[Path] = {self.out_dir}

    def contains(self, real: str) -> bool:
        return real == self.real or real.startswith(self.real.rstrip(os.sep) + os.sep)

    def ensure_folder(self, folder: Path) -> None:
        """Create ``folder`` (which must be under OUT_DIR) level by level; ``OutsideOutputDir`` if a level is
        a symlink leading outside OUT_DIR."""
        current = self.out_dir
        for part in Path(folder).relative_to(self.out_dir).parts:
            current = current / part
            if current in self._checked:
                continue
            if not current.is_dir():
                current.mkdir(exist_ok=True)
            real = os.path.realpath(current)
            if not self.contains(real):
                raise OutsideOutputDir(f"output folder {display(current)} resolves to {display(real)}, "
                                       f"outside OUT_DIR {display(self.real)}")
            self._checked.add(current)


def clean_temporaries(out_dir: Path, outputs: list[Path], removable: Callable[[TempName], bool]) -> None:
    """Delete the temporary files of ``outputs`` (this shard's: other shards may be writing theirs right now) for
    which ``removable`` is true, only in folders that resolve inside OUT_DIR. ``TempName.abandoned`` never holds
    for a live process, so a concurrent run's file being written is never removed."""
    tree = OutputTree(out_dir)
    by_folder: dict[Path, set[str]] = {}
    for output in outputs:
        by_folder.setdefault(output.parent, set()).add(output.name)
    for folder, names in by_folder.items():
        if not folder.is_dir() or not tree.contains(os.path.realpath(folder)):
            continue
        for entry in os.scandir(folder):
            temp = parse_temp_name(entry.name)
            if temp is not None and temp.target in names and removable(temp):
                remove_path(Path(entry.path))
