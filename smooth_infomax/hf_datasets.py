"""Hugging Face ``datasets`` glue: SIM features of an ``Audio`` column with ``Dataset.map``, and the outputs of
``sim-extract`` as a ``Dataset``. ``datasets`` is an optional extra (``pip install "smooth-infomax[datasets]"``),
imported only when one of these runs; importing ``smooth_infomax`` never imports it.

Audio is decoded with soundfile, not through the ``Audio`` feature: recent ``datasets`` decode with torchcodec
(which needs FFmpeg), so ``add_features`` reads the column with ``Audio(decode=False)`` (the file's path or bytes)
and restores the column's feature afterwards. Each clip keeps its own rate and is resampled by ``extract``, so the
features equal ``encoder.extract([audio.T], sample_rate=rate)`` and ``sim-extract`` on the same file. Columns are
named as ``sim-extract`` names its arrays: ``module{m}.mean``, ``module{m}.logvar``; each row holds the item's
valid frames ``(frames, dim)`` (``datasets.Array2D`` with a variable first axis).
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from torch import nn

if TYPE_CHECKING:
    import datasets

    from .encoder import SmoothInfoMaxEncoder

__all__ = ["ExtractFeatures", "add_features", "load_features_dataset"]

INSTALL_HINT = 'this needs the optional `datasets` package: pip install "smooth-infomax[datasets]"'
_WHAT = ("mean", "logvar")


def import_datasets() -> Any:
    """The ``datasets`` module, or an ``ImportError`` naming the extra that installs it."""
    try:
        import datasets
    except ImportError as err:
        raise ImportError(f"smooth_infomax.hf_datasets: {INSTALL_HINT}") from err
    return datasets


class ExtractFeatures:
    """The function for ``Dataset.map(..., batched=True)``: SIM features of the clips in ``audio_column``.

    Reads each value as the ``Audio`` feature gives it: ``{"path", "bytes"}`` (``Audio(decode=False)``; decoded
    with soundfile), ``{"array", "sampling_rate"}`` (older ``datasets``, or plain dicts; ``array`` is
    ``(samples,)`` or ``(channels, samples)``), or a torchcodec ``AudioDecoder`` (``Audio()`` with torchcodec
    installed). Clips of one rate are extracted together; results do not depend on the batch.

    Example:
        >>> mapper = ExtractFeatures(encoder, modules=[2])
        >>> ds = ds.cast_column("audio", Audio(decode=False)).map(mapper, batched=True, features=...)
    """

    def __init__(self, encoder: SmoothInfoMaxEncoder, audio_column: str = "audio",
                 modules: Sequence[int] | int | None = None, what: Sequence[str] = ("mean",)):
        unknown = [w for w in what if w not in _WHAT] if not isinstance(what, str) else [what]
        if unknown or not what:
            raise ValueError(f"what must be a non-empty list of {_WHAT}, got {what!r}")
        self.encoder = encoder
        self.audio_column = audio_column
        self.modules = encoder.resolve_modules(modules)
        self.what = tuple(what)

    def columns(self) -> dict[str, tuple[int, int]]:
        """``column -> (module, dim)`` for the columns this adds; ``logvar`` only for Gaussian modules."""
        dims, configs = self.encoder.output_dims, self.encoder.config.modules
        return {f"module{m}.{w}": (m, dims[m]) for m in self.modules for w in self.what
                if w == "mean" or configs[m].is_gaussian}

    def features(self) -> dict[str, Any]:
        """``column -> datasets.Array2D((None, dim), "float32")``, to pass to ``map(features=...)``."""
        datasets = import_datasets()
        return {name: datasets.Array2D((None, dim), "float32") for name, (_, dim) in self.columns().items()}

    def __call__(self, batch: dict[str, list]) -> dict[str, list[np.ndarray]]:
        """``batch[audio_column]`` (a list) -> ``{column: [(frames, dim) float32 per item]}``."""
        if any(m.training for m in self.encoder.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)):
            raise ValueError("the encoder is in train mode, where BatchNorm uses batch statistics and features "
                             "depend on the batch; call encoder.eval() first")
        clips = [_decode(value, i) for i, value in enumerate(batch[self.audio_column])]
        columns = self.columns()
        out: dict[str, list[np.ndarray]] = {name: [np.empty(0)] * len(clips) for name in columns}
        for rate in sorted({rate for _, rate in clips}):
            indices = [i for i, (_, r) in enumerate(clips) if r == rate]
            extraction = self.encoder.extract([clips[i][0] for i in indices], sample_rate=rate, modules=self.modules,
                                              logvar="logvar" in self.what)
            for name, (module, _) in columns.items():
                what = name.rsplit(".", 1)[1]
                for row, i in enumerate(indices):
                    out[name][i] = extraction[module].unpad(row, what).float().cpu().numpy()
        return out


def add_features(dataset: datasets.Dataset | datasets.DatasetDict, encoder: SmoothInfoMaxEncoder,
                 audio_column: str = "audio", modules: Sequence[int] | int | None = None,
                 what: Sequence[str] = ("mean",), batch_size: int = 8, **map_kwargs: Any) -> Any:
    """``dataset`` with SIM feature columns ``module{m}.{what}`` added by ``Dataset.map(batched=True)``.

    Args:
        dataset: a ``datasets.Dataset`` (or ``DatasetDict``: every split) whose ``audio_column`` is an ``Audio``
            feature at any sampling rate (its ``sampling_rate`` is not used: each file is read at its own rate and
            resampled by ``extract``), or holds ``{"array", "sampling_rate"}`` dicts.
        encoder: in eval mode (as ``from_pretrained`` returns it).
        modules: module indices (default all); ``what``: any of ``mean``, ``logvar`` (Gaussian modules only).
        batch_size: clips per ``extract`` call; ``map_kwargs`` go to ``Dataset.map`` (``num_proc``,
            ``remove_columns``, ``desc``, ...).

    Returns:
        The mapped dataset; the audio column keeps its original feature. Each new column holds ``(frames, dim)``
        float32 per row (valid frames only): ``ds.with_format("torch", columns=[...])`` gives tensors.
    """
    datasets = import_datasets()
    if isinstance(dataset, datasets.DatasetDict):
        return datasets.DatasetDict({split: add_features(part, encoder, audio_column, modules, what, batch_size,
                                                         **map_kwargs) for split, part in dataset.items()})
    if audio_column not in dataset.column_names:
        raise ValueError(f"no column {audio_column!r}; the dataset has {dataset.column_names}")
    mapper = ExtractFeatures(encoder, audio_column, modules, what)
    feature = dataset.features[audio_column]
    encoded = isinstance(feature, datasets.Audio)
    source = dataset.cast_column(audio_column, datasets.Audio(decode=False)) if encoded else dataset
    features = source.features.copy()
    removed = map_kwargs.get("remove_columns") or []
    for name in [removed] if isinstance(removed, str) else removed:
        features.pop(name, None)
    features.update(mapper.features())
    mapped = source.map(mapper, batched=True, batch_size=batch_size, features=features, **map_kwargs)
    if encoded and audio_column in mapped.column_names:
        mapped = mapped.cast_column(audio_column, feature)
    return mapped


def _decode(value: Any, index: int) -> tuple[np.ndarray, int]:
    """One ``Audio`` value as ``(channels, samples)`` float32 (or ``(samples,)``) and its rate in Hz."""
    if isinstance(value, dict) and value.get("array") is not None:
        if value.get("sampling_rate") is None:
            raise ValueError(f"batch item {index}: an audio dict with 'array' needs 'sampling_rate'")
        return np.asarray(value["array"]), int(value["sampling_rate"])
    if isinstance(value, dict) and (value.get("bytes") is not None or value.get("path") is not None):
        return _read_encoded(value, index)
    if hasattr(value, "get_all_samples"):  # a torchcodec AudioDecoder (datasets >= 4 with decoding on)
        samples = value.get_all_samples()
        return samples.data.numpy(), int(samples.sample_rate)
    raise ValueError(f"batch item {index}: cannot read audio from a {type(value).__name__}; expected an Audio "
                     "feature value ({'path', 'bytes'} or {'array', 'sampling_rate'})")


def _read_encoded(value: dict, index: int) -> tuple[np.ndarray, int]:
    """Decode ``{"path", "bytes"}`` with soundfile: the bytes if present, else the (local or remote) path."""
    import soundfile as sf

    path = value.get("path")
    try:
        if value.get("bytes") is not None:
            audio, rate = sf.read(io.BytesIO(value["bytes"]), dtype="float32", always_2d=True)
        elif path is None:
            raise ValueError("the value holds neither bytes nor a path")
        elif os.path.exists(path):
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
        else:
            with _xopen()(path, "rb") as handle:  # hf://, zip://...::, https:// paths of Hub datasets
                audio, rate = sf.read(io.BytesIO(handle.read()), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError, RuntimeError, OSError, ...
        raise ValueError(f"batch item {index} ({path or 'embedded bytes'}): cannot decode audio with soundfile "
                         f"({err})") from err
    return audio.T, int(rate)


def _xopen() -> Any:
    """``datasets``' ``xopen``, which opens the remote and archive paths of Hub datasets."""
    try:
        from datasets.utils.file_utils import xopen
    except ImportError:  # datasets < 2.17 kept it here
        from datasets.download.streaming_download_manager import xopen
    return xopen


def load_features_dataset(out_dir: str | os.PathLike, format: str | None = None,
                          keys: Sequence[str] | None = None, cache_dir: str | None = None,
                          **kwargs: Any) -> datasets.Dataset:
    """The outputs of ``sim-extract`` under ``out_dir`` as a ``datasets.Dataset``, one row per output.

    Columns: ``source`` (the input's key, e.g. ``spk1/utt1.wav``), ``output`` (the output's path relative to
    ``out_dir``) and one column per stored array (``module2.mean`` ...), each row ``(frames, dim)`` in the stored
    dtype (``Array2D``), exactly what ``extraction.load_features`` returns. Rows are sorted by output path.
    Built with ``Dataset.from_generator``, so it is written to the ``datasets`` cache (``cache_dir``) and not
    held in memory; the cache is reused until an output file changes.

    Args:
        format: ``safetensors``, ``npz`` or ``npy``; needed only if ``out_dir`` holds several formats.
        keys: the arrays to load (default all of the first output's arrays); every output must have them.
        kwargs: passed to ``Dataset.from_generator`` (``keep_in_memory``, ``num_proc``, ...).
    """
    datasets = import_datasets()
    out_dir = Path(out_dir)
    outputs = _find_outputs(out_dir, format)
    from .extraction import load_features

    arrays, _ = load_features(outputs[0])
    keys = tuple(sorted(arrays) if keys is None else keys)
    missing = [key for key in keys if key not in arrays]
    if missing:
        raise ValueError(f"{outputs[0]} has no arrays {missing}; it has {sorted(arrays)}")
    features = datasets.Features({"source": datasets.Value("string"), "output": datasets.Value("string"),
                                  **{key: _array_feature(datasets, arrays[key]) for key in keys}})
    files = [(str(path), path.relative_to(out_dir).as_posix(), *_stamp(path)) for path in outputs]
    return datasets.Dataset.from_generator(_output_rows, features=features, cache_dir=cache_dir,
                                           gen_kwargs={"files": files, "keys": keys}, **kwargs)


def _array_feature(datasets: Any, array: np.ndarray) -> Any:
    if array.ndim != 2:
        raise ValueError(f"expected (frames, dim) arrays, got shape {array.shape}")
    return datasets.Array2D((None, array.shape[1]), str(array.dtype))


def _stamp(path: Path) -> tuple[int, int]:
    """Size and modification time (ns) of an output (the newest file inside an ``npy`` folder), so that the
    ``datasets`` cache fingerprint changes when an output is rewritten."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    stats = [p.stat() for p in files]
    return sum(s.st_size for s in stats), max(s.st_mtime_ns for s in stats)


def _output_rows(files: list[tuple[str, str, int, int]], keys: tuple[str, ...]) -> Iterator[dict[str, Any]]:
    """One row per output file (the ``Dataset.from_generator`` generator)."""
    from .extraction import load_features

    for path, relative, _, _ in files:
        arrays, metadata = load_features(path)
        missing = [key for key in keys if key not in arrays]
        if missing:
            raise ValueError(f"{path} has no arrays {missing} (made with other --modules/--what?); pass keys=")
        yield {"source": metadata.get("source", relative), "output": relative, **{key: arrays[key] for key in keys}}


def _find_outputs(out_dir: Path, format: str | None) -> list[Path]:
    """Output files (``npy``: folders) of one format under ``out_dir``, sorted; hidden names (temporary files)
    are skipped."""
    from .extraction.sources import OUTPUT_SUFFIXES

    if format is not None and format not in OUTPUT_SUFFIXES:
        raise ValueError(f"format must be one of {sorted(OUTPUT_SUFFIXES)}, got {format!r}")
    if not out_dir.is_dir():
        raise FileNotFoundError(f"{out_dir} is not a folder")
    found: dict[str, list[Path]] = {}
    for folder, subfolders, names in os.walk(out_dir):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in [*names, *subfolders]:
            fmt = next((f for f, suffix in OUTPUT_SUFFIXES.items() if name.endswith(suffix)), None)
            is_dir = name in subfolders
            if fmt and not name.startswith(".") and is_dir == (fmt == "npy"):
                found.setdefault(fmt, []).append(Path(folder) / name)
        subfolders[:] = [d for d in subfolders if not d.endswith(OUTPUT_SUFFIXES["npy"])]
    return _one_format(out_dir, found, format)


def _one_format(out_dir: Path, found: dict[str, list[Path]], format: str | None) -> list[Path]:
    if format is None and len(found) > 1:
        raise ValueError(f"{out_dir} holds outputs in several formats ({', '.join(sorted(found))}); "
                         "pass format=")
    outputs = found.get(format, []) if format else next(iter(found.values()), [])
    if not outputs:
        raise FileNotFoundError(f"no sim-extract outputs{f' in format {format}' if format else ''} under {out_dir}")
    return sorted(outputs)
