"""Writing safetensors files with the permissions any other file of the user gets.

``safetensors.torch.save_file`` creates its file with mode 0600 (readable by its owner only), whatever the umask:
a model saved into a shared folder could not be loaded by a colleague. :func:`save_tensors` writes through it and
then gives the file the mode ``open()`` would have given it (0666 less the process's umask, 0644 usually).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch


def save_tensors(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike,
                 metadata: Mapping[str, str] | None = None) -> None:
    """``safetensors.torch.save_file(tensors, path, metadata)``, then the file's mode set to 0666 less the umask."""
    from safetensors.torch import save_file

    save_file(dict(tensors), os.fspath(path), metadata=dict(metadata) if metadata is not None else None)
    os.chmod(path, 0o666 & ~current_umask())


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back at once, the only portable way)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask
