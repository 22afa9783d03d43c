"""Decoding in DataLoader workers, and batches built from files of similar length."""

from __future__ import annotations

from dataclasses import dataclass

from torch.utils.data import DataLoader, Dataset

from .audio_io import BadAudio, DecodedAudio, decode
from .fingerprint import file_sha256
from .plan import WorkItem


@dataclass(frozen=True)
class Decoded:
    """A decoded work item: ``audio`` (mono float32 16 kHz) and the sha256 of the file's bytes."""

    index: int
    audio: DecodedAudio
    source_sha256: str


@dataclass(frozen=True)
class DecodeFailed:
    index: int
    reason: str


class DecodeDataset(Dataset):
    """``dataset[i]`` decodes work item ``i``; a bad file gives a ``DecodeFailed`` instead of raising, so one bad
    file never stops a worker or the run."""

    def __init__(self, items: list[WorkItem]):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Decoded | DecodeFailed:
        path = self.items[index].source.path
        try:
            return Decoded(index, decode(path), file_sha256(path))
        except BadAudio as bad:
            return DecodeFailed(index, bad.reason)
        except Exception as err:  # noqa: BLE001 -- a worker must survive anything a file can do to a decoder
            return DecodeFailed(index, f"cannot decode ({type(err).__name__}: {err})")


def length_batches(items: list[WorkItem], batch_samples: int, chunk_samples: int) -> list[list[int]]:
    """Indices of ``items`` grouped into batches.

    Files up to ``chunk_samples`` long are sorted by length and packed so that a batch's padded size
    (``count * longest``) stays within ``batch_samples`` (a batch always holds at least one file). Longer files
    get a batch of their own and are processed in chunks.
    """
    lengths = [item.info.samples_16k for item in items]
    short = sorted((i for i, n in enumerate(lengths) if n <= chunk_samples), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in short:
        if current and (len(current) + 1) * lengths[index] > batch_samples:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches + [[i] for i, n in enumerate(lengths) if n > chunk_samples]


def make_loader(items: list[WorkItem], batches: list[list[int]], num_workers: int) -> DataLoader:
    """A loader yielding, per batch, a list of ``Decoded``/``DecodeFailed`` in batch order."""
    return DataLoader(
        DecodeDataset(items), batch_sampler=batches, num_workers=num_workers, collate_fn=_as_list,
        prefetch_factor=2 if num_workers else None,
    )


def _as_list(batch: list) -> list:
    return batch
