"""The file-level pipeline behind ``sim-extract``, one file per stage (dependencies point up this list):

- ``settings``: ``RunOptions`` (every default, shared by the CLI and Python callers), the settings that decide the
  numbers, and what stays fixed for a run (``RunContext``: model, settings, tensor layout).
- ``sources``: the inputs (a walk of IN_DIR or a manifest) and their keys, the mirrored paths under OUT_DIR.
- ``audio_io``: decoding a file to mono float32 at 16 kHz (``smooth_infomax.audio``), failures as ``BadAudio``.
- ``formats``: safetensors (written row by row), npz and npy; atomic writes under temporary names; readers.
- ``plan``: sharding, fingerprints and ``--skip-existing``, header probes, length batches; ``Failure``.
- ``compute``: loading the model, decoding in DataLoader workers, and the encoder (batched, or chunked for long
  files).
- ``store``: one output: folder inside OUT_DIR, metadata, rows with seeded samples, atomic commit.
- ``report``: progress, summary, dry run, and the logs ``manifest.jsonl`` / ``failures.jsonl``.
- ``runner``: ``run``, a flat loop of decode -> compute -> write. Each stage returns a value or a ``Failure`` whose
  ``stage`` says where the file failed (``input``, ``decode``, ``compute`` or ``write``).
"""

from .formats import load_features, read_metadata
from .runner import RunInterrupted, run
from .settings import RunOptions, SetupError, Shard

__all__ = ["RunInterrupted", "RunOptions", "SetupError", "Shard", "load_features", "read_metadata", "run"]
