"""Training batches indexed by step, so that a resumed or multi-process run sees exactly the same data.

Epoch ``e`` visits the training utterances in the order of a permutation seeded by ``(seed, e)``; step ``s`` is
batch ``s % batches_per_epoch`` of epoch ``s // batches_per_epoch``. With ``world`` processes each global batch
is split by rank. Crop offsets come from ``(seed, epoch, index)`` (``CropDataset``), so neither the number of
DataLoader workers nor a restart changes what a step trains on.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset, Sampler

from training.data.librispeech import CropDataset, seed_worker


def split_validation(utterance_ids: Sequence[str], fraction: float) -> tuple[list[str], list[str]]:
    """Split ids into (train, validation) by a hash of each id: stable across runs and list orders."""
    held_out = {u for u in utterance_ids if zlib.crc32(u.encode()) % 10_000 < fraction * 10_000}
    return [u for u in utterance_ids if u not in held_out], [u for u in utterance_ids if u in held_out]


class StepBatches(Sampler[list[tuple[int, int]]]):
    """Yields, for steps ``start_step .. total_steps - 1``, this rank's ``(epoch, index)`` pairs."""

    def __init__(self, n_items: int, batch_size: int, total_steps: int, seed: int, start_step: int = 0,
                 rank: int = 0, world: int = 1):
        self.global_batch = batch_size * world
        self.batches_per_epoch = n_items // self.global_batch
        if self.batches_per_epoch == 0:
            raise ValueError(f"{n_items} training utterances cannot fill one batch of {batch_size} x {world} processes")
        self.n_items, self.total_steps, self.seed = n_items, total_steps, seed
        self.start_step, self.rank, self.world = start_step, rank, world

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for step in range(self.start_step, self.total_steps):
            epoch, position = divmod(step, self.batches_per_epoch)
            order = np.random.default_rng((self.seed, epoch)).permutation(self.n_items)
            rows = order[position * self.global_batch : (position + 1) * self.global_batch][self.rank :: self.world]
            yield [(epoch, int(i)) for i in rows]


class MixedCrops(Dataset):
    """Several ``CropDataset``s as one, each given a share of every epoch's items.

    An epoch holds ``ceil(len(corpus) / share)`` items for the corpus that needs most, and every corpus fills its
    share of them by visiting its utterances in order, wrapping around when the share exceeds its size. The
    ``r``-th visit of an utterance in epoch ``e`` takes the crop of the corpus's epoch ``e * visits + r``, so
    repeated utterances get new crops and the result stays a function of ``(seed, epoch, index)``.
    """

    def __init__(self, corpora: Sequence[CropDataset], shares: Sequence[float]):
        if len(corpora) != len(shares) or not math.isclose(sum(shares), 1.0) or min(shares) <= 0:
            raise ValueError(f"need one positive share per corpus, summing to 1; got {list(shares)}")
        self.corpora = list(corpora)
        total = max(math.ceil(len(c) / share) for c, share in zip(corpora, shares, strict=True) if len(c))
        self.counts = [round(total * share) for share in shares]
        self.starts = [sum(self.counts[:i]) for i in range(len(self.counts))]
        self.visits = [math.ceil(n / len(c)) if len(c) else 0 for n, c in zip(self.counts, corpora, strict=True)]
        empty = [i for i, (n, c) in enumerate(zip(self.counts, corpora, strict=True)) if n and not len(c)]
        if empty:
            raise ValueError(f"corpus {empty[0]} has no utterances but a share of the batches")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return sum(self.counts)

    def __getitem__(self, index: int):
        corpus = max(i for i, start in enumerate(self.starts) if index >= start)
        position = index - self.starts[corpus]
        crops = self.corpora[corpus]
        visit, item = divmod(position, len(crops))
        crops.set_epoch(self.epoch * self.visits[corpus] + visit)
        return crops[item]


class EpochCrops(Dataset):
    """A ``CropDataset`` indexed by ``(epoch, index)``, so each worker draws the crop of the right epoch."""

    def __init__(self, crops: CropDataset | MixedCrops):
        self.crops = crops

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, key: tuple[int, int]):
        epoch, index = key
        self.crops.set_epoch(epoch)
        return self.crops[index]


def step_loader(crops: CropDataset | MixedCrops, sampler: StepBatches, num_workers: int) -> DataLoader:
    return DataLoader(EpochCrops(crops), batch_sampler=sampler, num_workers=num_workers, worker_init_fn=seed_worker,
                      persistent_workers=False, pin_memory=False)
