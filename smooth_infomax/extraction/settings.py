"""What a run computes and stores: ``RunOptions`` (the one home of every default, for the CLI and for Python
callers), the settings that decide the numbers (``FeatureSettings``), what stays fixed for the whole run
(``RunContext``: model, settings, tensor layout), and parsing of the CLI's compact option values."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..geometry import output_lengths

if TYPE_CHECKING:
    from ..encoder import SmoothInfoMaxEncoder

_WHAT_CHOICES = ("mean", "logvar", "sample")
STORE_DTYPES: dict[str, np.dtype] = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
FORMATS = ("safetensors", "npz", "npy")
_FEATURE_FORMAT_VERSION = 1
"""Version of the output layout (keys and metadata); part of every fingerprint."""

# One decoding worker per four cores, at most four: decoding costs little next to the model, and on 2 cores a
# forked worker only slows the main process (docs/performance.md).
DEFAULT_NUM_WORKERS = min(4, (os.cpu_count() or 2) // 4)

DEFAULT_PROGRESS_SECONDS = 30.0
"""Off a terminal, at least this long between two progress log lines (``--progress-seconds``)."""


class SetupError(ValueError):
    """The run cannot start (bad model, module selection, device, input list, OUT_DIR, ...); the CLI exits with
    code 2 and nothing is written."""


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0-based): the files whose path hash falls in this shard."""

    index: int = 0
    count: int = 1

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """File-name suffix of this shard's logs: empty for an unsharded run, ``-shard1of4`` otherwise."""
        return "" if self.count == 1 else f"-shard{self.index}of{self.count}"


@dataclass(frozen=True)
class RunOptions:
    """All options of one ``sim-extract`` run (see ``docs/cli.md``). These defaults are the CLI's defaults too."""

    in_dir: Path
    out_dir: Path
    model: str | None = None
    revision: str | None = None
    pattern: str | None = None
    manifest: Path | None = None
    modules: tuple[int, ...] | None = None
    what: tuple[str, ...] = ("mean",)
    dtype: str = "float32"
    fmt: str = "safetensors"
    chunk_seconds: float = 30.0
    batch_seconds: float = 60.0
    num_workers: int = DEFAULT_NUM_WORKERS
    device: str = "auto"
    bf16: bool = False
    skip_existing: bool = True
    dry_run: bool = False
    shard: Shard | None = None
    quiet: bool = False
    progress_seconds: float = DEFAULT_PROGRESS_SECONDS


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that decides the numbers written for a file; its hash is part of each output's fingerprint.

    ``model_sha256`` identifies the model by its config and weights, not by its name or path, so a moved or
    re-downloaded model does not force a recompute, while retrained weights do.
    """

    modules: tuple[int, ...]
    what: tuple[str, ...]
    dtype: str
    compute_dtype: str
    model_sha256: str
    format_version: int = _FEATURE_FORMAT_VERSION

    def sha256(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def options(self) -> dict[str, str]:
        """The settings as the options that set them (``--modules`` with the resolved indices)."""
        return {"--modules": ",".join(map(str, self.modules)), "--what": ",".join(self.what), "--dtype": self.dtype,
                "--bf16": "on" if self.compute_dtype == "bfloat16" else "off"}

    def differences(self, metadata: dict[str, str], model_name: str) -> list[str]:
        """How the output with ``metadata`` was made differently, e.g. ``"--modules 0 there, 2 now"``."""
        there = {"--modules": metadata.get("modules"), "--what": metadata.get("what"), "--dtype": metadata.get("dtype"),
                 "--bf16": "on" if metadata.get("compute_dtype") == "bfloat16" else "off"}
        found = [f"{name} {there[name]} there, {now} now" for name, now in self.options().items() if there[name] != now]
        if metadata.get("model_sha256") != self.model_sha256:
            found.append(f"--model {metadata.get('model')} (weights sha256 {str(metadata.get('model_sha256'))[:12]}) "
                         f"there, {model_name} ({self.model_sha256[:12]}) now")
        if metadata.get("format_version") != str(self.format_version):
            found.append(f"output layout version {metadata.get('format_version')} there, {self.format_version} now")
        return found or ["the settings hash differs"]


Specs = dict[str, tuple[tuple[int, int], np.dtype]]
"""Tensor key -> (shape ``(frames, dim)``, stored dtype) of one output."""


@dataclass(frozen=True)
class RunContext:
    """What is the same for every file of a run: the model (a ``SmoothInfoMaxEncoder``), the settings and their
    hash, and the model's name and revision as stored in the metadata."""

    encoder: SmoothInfoMaxEncoder
    settings: FeatureSettings
    settings_sha256: str
    model_name: str
    model_revision: str

    def module_keys(self, module: int) -> list[str]:
        """Tensor keys stored for ``module``: ``module{m}.mean``, and ``.logvar``/``.sample`` for Gaussian ones."""
        gaussian = self.encoder.config.modules[module].is_gaussian
        return [f"module{module}.{what}" for what in self.settings.what if what == "mean" or gaussian]

    def specs(self, samples: int) -> Specs:
        """Shape ``(frames, dim)`` and dtype of every stored tensor for an input of ``samples`` (16 kHz)."""
        lengths, dims = output_lengths(self.encoder.config, samples), self.encoder.output_dims
        dtype = STORE_DTYPES[self.settings.dtype]
        return {key: ((int(lengths[m]), dims[m]), dtype) for m in self.settings.modules for key in self.module_keys(m)}


def parse_what(text: str) -> tuple[str, ...]:
    """``"mean,logvar"`` -> ``("mean", "logvar")`` in canonical order; unknown names are a ``ValueError``."""
    names = {part.strip() for part in text.split(",") if part.strip()}
    unknown = sorted(names - set(_WHAT_CHOICES))
    if unknown or not names:
        raise ValueError(f"expected a comma-separated subset of {','.join(_WHAT_CHOICES)}, got {text!r}")
    return tuple(name for name in _WHAT_CHOICES if name in names)


def parse_modules(text: str) -> tuple[int, ...] | None:
    """``"all"`` -> ``None`` (every module); ``"0,2,-1"`` -> ``(0, 2, -1)`` (negative counts from the end)."""
    if text.strip().lower() == "all":
        return None
    try:
        modules = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected 'all' or comma-separated module indices such as 0,2,-1, got {text!r}") from None
    if not modules:
        raise ValueError("no module index given")
    return modules


def parse_shard(text: str) -> Shard:
    """``"1/4"`` -> ``Shard(1, 4)``: shard indices are 0-based, ``0 <= I < N``."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"expected I/N such as 0/4, got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard I/N needs N >= 1 and 0 <= I < N, got {text!r}")
    return Shard(index, count)


def format_modules(modules: tuple[int, ...] | None) -> str:
    """The ``--modules`` text of ``modules``: the inverse of ``parse_modules``."""
    return "all" if modules is None else ",".join(map(str, modules))


def format_what(what: tuple[str, ...]) -> str:
    """The ``--what`` text of ``what``: the inverse of ``parse_what``."""
    return ",".join(what)
