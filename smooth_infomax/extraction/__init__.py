"""The file-level pipeline behind ``sim-extract``: find audio, map paths, plan, decode, compute (batched or in
chunks), write atomically, and log.

Modules: ``discovery`` (walk / manifest), ``paths`` (input -> output mapping, OUT_DIR containment),
``audio_io`` (soundfile decoding and bad-file reasons), ``plan`` (sharding, skip-existing), ``loading``
(DataLoader, length batches), ``compute`` (model, device, batches), ``chunking`` (long files), ``sampling``
(seeded samples), ``metadata``/``store``/``writers``/``safetensors_stream`` (outputs), ``readers``,
``fingerprint``, ``logs`` (manifest and failures), ``report``, ``models`` (``--list-models``), ``runner``.
"""

from .compute import SetupError
from .readers import load_features, read_metadata
from .runner import RunInterrupted, run
from .settings import RunOptions, Shard

__all__ = ["RunInterrupted", "RunOptions", "SetupError", "Shard", "load_features", "read_metadata", "run"]
