"""Training patches: random crops (+ horizontal flips) of clean images, as uint8."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

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

    Crop positions and flips use torch's global RNG (seeded per worker by
    Lightning's ``seed_everything(workers=True)``). An image that fails to decode
    is logged, counted in ``skipped`` and replaced by another random image; after
    repeated failures the error is raised.
    """

    def __init__(
        self, images: Sequence[Tensor], size: int, length: int | None = None, flip: bool = True
    ):
        self.images = images
        self.size = int(size)
        self.length = int(length) if length else len(images)
        self.flip = flip
        self.skipped: dict[str, str] = {}

    def __len__(self) -> int:
        return self.length

    def _load(self, i: int) -> Tensor:
        last: DataError | None = None
        for _ in range(_MAX_RETRIES):
            try:
                return self.images[i]
            except DataError as e:
                name = getattr(self.images, "names", [str(i)] * (i + 1))[i]
                if name not in self.skipped:
                    log.warning(
                        "skipping training image (%d skipped so far): %s", len(self.skipped) + 1, e
                    )
                self.skipped[name] = str(e)
                last = e
                i = int(torch.randint(0, len(self.images), (1,)))
        raise DataError(f"{_MAX_RETRIES} training images in a row failed to decode; last: {last}")

    def __getitem__(self, k: int) -> Tensor:
        img = self._load(k % len(self.images))
        _, h, w = img.shape
        s = self.size
        top = int(torch.randint(0, h - s + 1, (1,)))
        left = int(torch.randint(0, w - s + 1, (1,)))
        patch = img[:, top : top + s, left : left + s]
        if self.flip and bool(torch.rand(()) < 0.5):
            patch = patch.flip(-1)
        return patch.contiguous()
