"""Three short example utterances shipped with the package, for trying ``sim-extract`` offline.

They are 3.5 s excerpts (16 kHz mono FLAC) of the synthetic corpus (``training/data``, seed 0): WordNet 3.0 example
sentences spoken by espeak-ng (voice en-us+zac), festival (cmu_us_slt_arctic_hts) and flite (rms). See
``LICENSES.txt`` beside them.

``python -m smooth_infomax.examples DIR`` copies them into ``DIR``.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path


def example_files() -> list[Path]:
    """Paths of the shipped example FLAC files."""
    folder = resources.files("smooth_infomax") / "examples"
    return sorted(Path(str(p)) for p in folder.iterdir() if p.name.endswith(".flac"))


def copy_examples(destination: str | Path) -> list[Path]:
    """Copy the example files into ``destination`` (created if needed); returns the new paths."""
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    return [Path(shutil.copy2(path, destination / path.name)) for path in example_files()]
