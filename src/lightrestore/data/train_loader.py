"""A deterministic, resumable training loader.

Every training item is a pure function of ``(seed, epoch, position)``: the order of an
epoch is a permutation seeded by ``(seed, epoch)`` and each dataset item seeds its own
random crop and flip from ``(seed, epoch, index)``. The loader can therefore resume in
the middle of an epoch by skipping the batches already trained, and an interrupted run
resumed from its checkpoint sees exactly the images of the uninterrupted run.

* :class:`EpochSampler` yields ``(epoch, index)`` pairs (the dataset receives the epoch
  with every index, also inside persistent worker processes) and shards them across DDP
  ranks itself (it is a ``DistributedSampler``, so Lightning leaves it in place).
* :class:`ResumableLoader` implements Lightning's ``state_dict``/``load_state_dict``
  loader protocol: Lightning saves its state in the checkpoint and restores it before
  the first ``iter()`` of a resumed run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, epoch, index)`` (SplitMix-style mixing)."""
    x = (
        int(seed) * 0x9E3779B97F4A7C15
        + int(epoch) * 0xBF58476D1CE4E5B9
        + int(index) * 0x94D049BB133111EB
    )
    x &= (1 << 63) - 1
    return torch.Generator().manual_seed(x)


class EpochSampler(DistributedSampler):
    """Seeded per-epoch permutation of ``range(len(dataset))`` as ``(epoch, index)`` pairs.

    Args:
        dataset: the training dataset (only its length is used).
        seed: seeds every epoch's permutation together with the epoch.
        num_replicas, rank: DDP sharding (rank ``r`` takes positions ``r::num_replicas``
            of the permutation, padded like ``DistributedSampler`` to equal lengths).
        shuffle: permute (else the identity order).

    :meth:`resume_at` makes the iteration of one epoch start after the first ``n`` items
    of this rank (mid-epoch resume); Lightning sets the epoch (``set_epoch``) before
    each iteration, after restoring the loader's state.
    """

    def __init__(self, dataset: Dataset, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 shuffle: bool = True) -> None:  # fmt: skip
        super().__init__(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=False,
        )
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, items: int) -> None:
        """Skip the first ``items`` of ``epoch`` (only in that epoch's next iteration)."""
        self._resume = (int(epoch), max(0, int(items)))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        n = len(self.dataset)
        if self.shuffle:
            g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + int(self.epoch))
            order = torch.randperm(n, generator=g).tolist()
        else:
            order = list(range(n))
        total = math.ceil(n / self.num_replicas) * self.num_replicas
        order += order[: total - n]  # pad so every rank gets the same number of items
        mine = order[self.rank : total : self.num_replicas]
        epoch = int(self.epoch)
        start = 0
        if self._resume is not None:
            start = self._resume[1] if self._resume[0] == epoch else 0
            self._resume = None
        return iter([(epoch, i) for i in mine[start:]])


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSampler` that Lightning can resume mid-epoch.

    ``state_dict()`` records the epoch and how many batches of it were trained,
    read from ``progress()`` (the DataModule passes Lightning's batch progress, which
    counts only batches whose optimisation step finished, so prefetched batches are not
    counted). ``load_state_dict()`` makes the next iteration of that epoch skip them.
    """

    def __init__(
        self, *args: Any, progress: Callable[[], tuple[int, int]] | None = None, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self._progress = progress

    def state_dict(self) -> dict[str, int]:
        epoch, batches = self._progress() if self._progress is not None else (0, 0)
        return {"epoch": int(epoch), "batches": int(batches)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if isinstance(self.sampler, EpochSampler):
            items = int(state.get("batches", 0)) * int(self.batch_size or 1)
            self.sampler.resume_at(int(state.get("epoch", -1)), items)
