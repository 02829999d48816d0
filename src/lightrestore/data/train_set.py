"""Training patches: random crops (+ horizontal flips) of clean images, as uint8."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightrestore.data.train_loader import item_generator
from lightrestore.errors import DataError

log = logging.getLogger(__name__)

_MAX_RETRIES = 10


class RandomCropDataset(Dataset):
    """Random ``size``×``size`` crops of an image list, uint8 ``(C, size, size)``.

    Args:
        images: sequence of uint8 ``(C, H, W)`` tensors (an ``ImageList``); each
            item may decode from disk.
        size: crop side.
        length: patches per epoch; default one per image (a pass over a folder).
            Item ``k`` crops image ``k mod len(images)``.
        flip: random horizontal flips.
        seed: with an ``(epoch, k)`` index (from ``EpochSampler``) the crop position
            and flip come from a generator seeded by ``(seed, epoch, k)``, so every item
            is reproducible (resume, any number of workers); with a plain ``k`` they come
            from torch's global RNG.

    An image that fails to decode is logged, counted in ``skipped`` and replaced by
    another image; after repeated failures the error is raised.
    """

    def __init__(
        self,
        images: Sequence[Tensor],
        size: int,
        length: int | None = None,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        self.images = images
        self.size = int(size)
        self.length = int(length) if length else len(images)
        self.flip = flip
        self.seed = int(seed)
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return self.length

    def _load(self, i: int, gen: torch.Generator | None) -> Tensor:
        last: DataError | None = None
        for _ in range(_MAX_RETRIES):
            try:
                return self.images[i]
            except DataError as e:
                names = getattr(self.images, "names", None)
                name = names[i] if names is not None else str(i)
                if name not in self.skipped:
                    log.warning(
                        "skipping a training image (%d skipped so far): %s",
                        len(self.skipped) + 1,
                        e,
                    )
                self.skipped[name] = str(e)
                last = e
                i = int(torch.randint(0, len(self.images), (1,), generator=gen))
        raise DataError(f"{_MAX_RETRIES} training images in a row failed to decode; last: {last}")

    def __getitem__(self, index: int | tuple[int, int]) -> Tensor:
        if isinstance(index, tuple):
            epoch, k = index
            gen: torch.Generator | None = item_generator(self.seed, epoch, k)
        else:
            k, gen = int(index), None
        img = self._load(k % len(self.images), gen)
        _, h, w = img.shape
        s = self.size
        top = int(torch.randint(0, h - s + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - s + 1, (1,), generator=gen))
        patch = img[:, top : top + s, left : left + s]
        if self.flip and bool(torch.rand((), generator=gen) < 0.5):
            patch = patch.flip(-1)
        return patch.contiguous()
