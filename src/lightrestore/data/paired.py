"""Data for paired data sets (GoPro): degraded / clean pairs read from files.

* training: aligned random ``crop_size`` crops of a pair (the same window of both images)
  with random horizontal and vertical flips, every item seeded by ``(seed, epoch, index)``
  like the synthetic data (so runs resume exactly);
* validation: ``val_per_level`` fixed, seeded aligned crops of the validation pairs;
* test: every test pair, whole (one image at a time), or, with ``test_tile=S``, cut into
  ``S``×``S`` tiles that cover every pixel (the last row and column of tiles are aligned
  with the image's edges and overlap their neighbours); read lazily from the files, the
  checksum taken over the files' bytes.

Batches are :class:`~lightrestore.data.batch.RestorationBatch` like every other data set,
with one level (the task's :class:`~lightrestore.degradations.real.RealPairs`) and no
degradation parameters.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightrestore.data.datamodule import DEFAULT, RestorationDataModule
from lightrestore.data.eval_set import EvalSet, _split_seed, checksum
from lightrestore.data.image_test_set import ImageTestSet
from lightrestore.data.sources.paired_folder import PairedFolderSource, PairedImageList
from lightrestore.data.train_loader import item_generator
from lightrestore.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def _crop(img: Tensor, top: int, left: int, size: int) -> Tensor:
    return img[:, top : top + size, left : left + size]


def aligned_crop(pairs: PairedImageList, i: int, size: int, gen: torch.Generator | None,
                 flips: bool = True) -> tuple[Tensor, Tensor]:  # fmt: skip
    """The same random ``size``×``size`` window of pair ``i``'s clean and degraded images
    (uint8 ``(C, size, size)`` each), flipped alike horizontally and vertically at random."""
    clean, degraded = pairs[i], pairs.degraded(i)
    _, h, w = clean.shape
    if min(h, w) < size:
        raise DataError(f"image '{pairs.location(i)}' is {h}x{w}, smaller than the {size}x{size} "
                        "crop: lower data.crop_size")  # fmt: skip
    top = int(torch.randint(0, h - size + 1, (1,), generator=gen))
    left = int(torch.randint(0, w - size + 1, (1,), generator=gen))
    clean, degraded = _crop(clean, top, left, size), _crop(degraded, top, left, size)
    if flips:
        for dim in (-1, -2):
            if bool(torch.rand((), generator=gen) < 0.5):
                clean, degraded = clean.flip(dim), degraded.flip(dim)
    return clean.contiguous(), degraded.contiguous()


class PairedCropDataset(Dataset):
    """Training items: aligned random crops of the pairs (see the module docstring); item
    ``k`` crops pair ``k mod len(pairs)``. Items are dicts of ``clean``, ``degraded`` (uint8
    ``(C, S, S)``), ``level`` (1) and empty ``params``."""

    def __init__(self, pairs: PairedImageList, size: int, length: int | None = None,
                 flips: bool = True, seed: int = 0) -> None:  # fmt: skip
        self.pairs, self.size, self.flips, self.seed = pairs, int(size), bool(flips), int(seed)
        self.length = int(length) if length else len(pairs)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(index, tuple):
            epoch, k = index
            gen: torch.Generator | None = item_generator(self.seed, epoch, k)
        else:
            k, gen = int(index), None
        clean, degraded = aligned_crop(self.pairs, k % len(self.pairs), self.size, gen, self.flips)
        return {"clean": clean, "degraded": degraded, "level": torch.tensor(1), "params": {}}


def tile_starts(length: int, tile: int) -> list[int]:
    """Starts of ``tile``-long windows covering ``0..length`` (the last one ends at the edge)."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile))
    return starts + [length - tile]


class _LazyPairs(Sequence):
    """The clean or degraded images of a paired test set, read on access (one decoded
    image kept, so consecutive tiles of an image decode it once)."""

    def __init__(self, pairs: PairedImageList, windows: list[tuple[int, int, int, int]],
                 degraded: bool) -> None:  # fmt: skip
        self.pairs, self.windows, self.is_degraded = pairs, windows, degraded
        self._cache: tuple[int, Tensor] | None = None

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, k: int) -> Tensor:
        i, top, left, size = self.windows[k]
        if self._cache is None or self._cache[0] != i:
            img = self.pairs.degraded(i) if self.is_degraded else self.pairs[i]
            self._cache = (i, img)
        img = self._cache[1]
        return img if size == 0 else _crop(img, top, left, size).contiguous()


def paired_test_set(pairs: PairedImageList, tile: int | None = None) -> ImageTestSet:
    """Every pair of ``pairs`` as a whole-image test set (or ``tile``×``tile`` tiles that
    cover every pixel), read lazily; the checksum covers the files' bytes and the tiling."""
    windows: list[tuple[int, int, int, int]] = []
    names: list[str] = []
    digest = hashlib.sha256(f"tile={tile}".encode())
    for i, (h, w) in enumerate(pairs.sizes()):
        for path in (pairs.paths[i], pairs.degraded_paths[i]):
            with open(path, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
        if tile is None:
            windows.append((i, 0, 0, 0))
            names.append(pairs.names[i])
            continue
        if min(h, w) < tile:
            raise DataError(f"test image '{pairs.location(i)}' is {h}x{w}, smaller than "
                            f"data.test_tile={tile}: lower it, or test whole images (null)")  # fmt: skip
        for top in tile_starts(h, tile):
            for left in tile_starts(w, tile):
                windows.append((i, top, left, tile))
                names.append(f"{pairs.names[i]}@{top},{left}")
    n = len(windows)
    return ImageTestSet(
        clean=_LazyPairs(pairs, windows, degraded=False),  # type: ignore[arg-type]
        degraded=_LazyPairs(pairs, windows, degraded=True),  # type: ignore[arg-type]
        level=[1] * n,
        params=[{} for _ in range(n)],
        names=names,
        checksum=digest.hexdigest(),
    )


class PairedDataModule(RestorationDataModule):
    """A :class:`RestorationDataModule` over degraded / clean pairs from files.

    Args:
        source: a :class:`~lightrestore.data.sources.paired_folder.PairedFolderSource`.
        degradation: the task's :class:`~lightrestore.degradations.real.RealPairs` (one level).
        crop_size, batch_size, eval_batch_size, train_samples_per_epoch, val_per_level,
        num_workers, pin_memory, seed, eval_seed: as :class:`RestorationDataModule`.
        flip: random horizontal and vertical flips of the training crops (Golf, GoPro).
        test_tile: ``None``: test on whole images (one at a time); ``S``: on ``S``×``S``
            tiles covering every pixel.
    """

    def __init__(self, source: PairedFolderSource, degradation: Any, crop_size: int = 256,
                 batch_size: int = 4, eval_batch_size: int | None = None,
                 train_samples_per_epoch: int | None = None, val_per_level: int = 100,
                 test_tile: int | None = None, flip: bool = True, num_workers: int | str = 0,
                 pin_memory: bool | None = None, seed: int = 0, eval_seed: int | None = None,
                 **unused: Any) -> None:  # fmt: skip
        if not hasattr(source, "split") or not callable(
            getattr(source.split("train"), "degraded", None)
        ):
            raise ConfigError(
                "data=gopro (PairedDataModule) needs a paired source "
                "(lightrestore.data.sources.paired_folder.PairedFolderSource)"
            )
        ignored = sorted(k for k, v in unused.items() if v not in (None, [], {}, ()))
        if ignored:
            log.info("paired data: ignoring %s (synthetic-data settings)", ", ".join(ignored))
        super().__init__(
            source, degradation, crop_size=crop_size, batch_size=batch_size,
            eval_batch_size=eval_batch_size, train_samples_per_epoch=train_samples_per_epoch,
            val_per_level=val_per_level, test_per_level=1, num_workers=num_workers,
            pin_memory=pin_memory, flip=flip, seed=seed, eval_seed=eval_seed,
        )  # fmt: skip
        self.test_tile = None if test_tile is None else int(test_tile)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            pairs = self.source.split("train")
            self.train_set = PairedCropDataset(
                pairs, self.crop_size, self.train_samples_per_epoch, self.flip, self.seed
            )
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self._paired_crops("val", self.val_per_level)
        if stage in (None, "test") and not self.test_sets:
            ts = paired_test_set(self.source.split("test"), self.test_tile)
            log.info("test set: %d %s, checksum %s", len(ts),
                     "whole images" if self.test_tile is None else f"{self.test_tile} px tiles",
                     ts.checksum[:16])  # fmt: skip
            self.test_sets[DEFAULT] = ts

    def _paired_crops(self, split: str, n: int) -> EvalSet:
        """``n`` fixed aligned crops (pair ``k mod len``), seeded by ``eval_seed``."""
        pairs = self.source.split(split)
        gen = torch.Generator().manual_seed(_split_seed(self.eval_seed, split))
        crops = [
            aligned_crop(pairs, k % len(pairs), self.crop_size, gen, flips=False) for k in range(n)
        ]
        clean = torch.stack([c for c, _ in crops])
        degraded = torch.stack([d for _, d in crops])
        level = torch.ones(n, dtype=torch.long)
        es = EvalSet(clean=clean, degraded=degraded, level=level, index=torch.arange(n),
                     params={}, names=[pairs.names[k % len(pairs)] for k in range(n)],
                     checksum=checksum(clean, degraded, level))  # fmt: skip
        log.info("%s set: %d aligned crops, checksum %s", split, n, es.checksum[:16])
        return es

    def use_static_pool(self, size: int) -> EvalSet:
        raise ConfigError("hard mining's static pool corrupts clean images, and paired data "
                          "comes degraded: use another curriculum with data=gopro")  # fmt: skip

    def describe(self) -> dict[str, Any]:
        doc = super().describe()
        doc["test_tile"] = self.test_tile
        doc["paired"] = True
        return doc
