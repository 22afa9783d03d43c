"""Writing one input's features: metadata, tensor layout, rows (with seeded samples) and the atomic commit."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .audio_io import DecodedAudio
from .chunking import FrameRows
from .fingerprint import output_fingerprint, seed_from_fingerprint
from .metadata import RunContext, file_metadata
from .paths import OutputTree
from .plan import WorkItem
from .sampling import draw_sample
from .settings import STORE_DTYPES
from .writers import open_writer


def write_output(
    context: RunContext,
    fmt: str,
    tree: OutputTree,
    item: WorkItem,
    audio: DecodedAudio,
    source_sha256: str,
    chunks: Iterable[dict[int, FrameRows]],
) -> dict[str, str]:
    """Compute (by consuming ``chunks``) and write ``item.output``; returns its metadata.

    Nothing appears under the output name unless every row of every tensor was written.
    """
    fingerprint = output_fingerprint(context.settings_sha256, source_sha256)
    seed = seed_from_fingerprint(fingerprint)
    metadata = file_metadata(context, item, audio, source_sha256, fingerprint, seed)
    specs = context.specs(int(audio.waveform.shape[0]))
    tree.ensure_folder(item.output.parent)
    writer = open_writer(fmt, item.output, specs, metadata)
    try:
        written = dict.fromkeys(specs, 0)
        for rows in chunks:
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


def _write_module(writer, context: RunContext, module: int, rows: FrameRows, seed: int, written: dict) -> None:
    dtype = STORE_DTYPES[context.settings.dtype]
    mean = rows.mean.float().cpu()
    for key in context.module_keys(module):
        what = key.rsplit(".", 1)[1]
        if what == "mean":
            values = mean
        elif what == "logvar":
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
