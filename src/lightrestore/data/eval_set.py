"""Fixed, seeded evaluation pairs per level, identical for every method and machine.

The clean patches are seeded crops of the split's images (patch ``k`` comes from
image ``k mod n_images``); every level corrupts the *same* clean patches, so the
per-level differences come from the corruption alone. Corruption parameters come
from a CPU generator seeded per (seed, split, level), so adding a level does not
change the others. A SHA-256 checksum over the uint8-quantised pairs is logged and
written into results files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightrestore.data.batch import RestorationBatch
from lightrestore.data.train_loader import item_generator
from lightrestore.degradations.base import Degradation

_SPLIT_SALT = {"train": 0, "val": 1, "test": 2}
_CHUNK = 256


def _split_seed(seed: int, split: str, level: int = 0) -> int:
    return (int(seed) * 1_000_003 + _SPLIT_SALT.get(split, 3) * 10_007 + level * 101) % (2**63)


@dataclass
class EvalSet:
    """Evaluation pairs for several levels.

    Attributes:
        clean: ``(M, C, S, S)`` uint8 — the distinct clean patches (``M = per_level``
            when every level shares them).
        degraded: ``(L·M, C, S, S)`` float32 in [0, 1] — level-major (uint8 when
            quantised: a training pool).
        level: ``(L·M,)`` int64 level of each pair.
        index: ``(L·M,)`` int64 row of ``clean`` of each pair.
        params: per-pair degradation parameters, leading dim ``L·M``.
        names: the source image of each clean patch, ``M`` strings.
        checksum: hex SHA-256 over the clean patches, levels and uint8-rounded
            degraded images.
    """

    clean: Tensor
    degraded: Tensor
    level: Tensor
    index: Tensor
    params: dict[str, Tensor]
    names: list[str]
    checksum: str

    @property
    def levels(self) -> list[int]:
        return sorted(set(self.level.tolist()))

    @property
    def per_level(self) -> int:
        return len(self) // max(1, len(self.levels))

    def __len__(self) -> int:
        return self.level.shape[0]

    def batch(self, rows: Tensor) -> RestorationBatch:
        """The pairs at ``rows`` as a float batch in [0, 1]."""
        return RestorationBatch(
            clean=self.clean[self.index[rows]].float() / 255.0,
            degraded=as_float(self.degraded[rows]),
            level=self.level[rows],
            params={k: v[rows] for k, v in self.params.items()},
        )

    def examples(self, k: int) -> dict[int, RestorationBatch]:
        """The first ``k`` pairs of each level: ``{level: batch}``."""
        return {lv: self.batch((self.level == lv).nonzero().flatten()[:k]) for lv in self.levels}


def as_float(images: Tensor) -> Tensor:
    """uint8 images to float in [0, 1]; float images unchanged."""
    return images.float().div_(255.0) if images.dtype == torch.uint8 else images


def crop_patches(
    images: Sequence[Tensor], n: int, size: int, generator: torch.Generator
) -> tuple[Tensor, list[int]]:
    """``n`` seeded random ``size``×``size`` crops, patch ``k`` from image ``k mod len``.

    Args:
        images: a sequence of uint8 ``(C, H, W)`` tensors (an ``ImageList``).
    Returns:
        ``(n, C, size, size)`` uint8 patches and the image index of each.
    """
    patches, which = [], []
    cache: dict[int, Tensor] = {}
    for k in range(n):
        i = k % len(images)
        if i not in cache:
            cache = {i: images[i]}  # decode each image once per pass, keep one in memory
        img = cache[i]
        _, h, w = img.shape
        top = int(torch.randint(0, h - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, w - size + 1, (1,), generator=generator))
        patches.append(img[:, top : top + size, left : left + size].clone())
        which.append(i)
    return torch.stack(patches), which


def build_eval_set(
    images: Sequence[Tensor],
    names: Sequence[str],
    degradation: Degradation,
    levels: Sequence[int],
    per_level: int,
    size: int,
    seed: int,
    split: str,
    fixed: Mapping[str, object] | None = None,
    shared_clean: bool = True,
    quantize: bool = False,
) -> EvalSet:
    """Generate fixed pairs on the CPU (see module doc).

    Args:
        images, names: the split's images (uint8 ``(C, H, W)``) and their names.
        degradation: corrupts the patches; ``fixed`` is passed to its ``sample``
            (test variants such as centred holes).
        levels: levels to generate, ``per_level`` pairs each, ``size``×``size`` patches.
        seed, split: seed the crops and each level's corruption.
        shared_clean: every level corrupts the same ``per_level`` clean patches
            (evaluation); otherwise each level gets its own patches (a training pool).
        quantize: store the degraded images as uint8 (a pool of "saved" corrupted
            images, 4× smaller) instead of float32.
    """
    degradation.ladder.check_levels(levels)
    gen = torch.Generator().manual_seed(_split_seed(seed, split))
    n_clean = per_level if shared_clean else per_level * len(levels)
    clean, which = crop_patches(images, n_clean, size, gen)
    clean_f = clean.float() / 255.0
    degraded, params_rows, level_rows, index_rows = [], [], [], []
    for j, lv in enumerate(levels):
        g = torch.Generator().manual_seed(_split_seed(seed, split, lv))
        lvl = torch.full((per_level,), int(lv), dtype=torch.long)
        rows = torch.arange(per_level) + (0 if shared_clean else j * per_level)
        params = degradation.sample(lvl, clean.shape[1:], g, fixed=fixed)
        out = [
            degradation.apply(clean_f[rows[i : i + _CHUNK]], _slice(params, i, i + _CHUNK))
            for i in range(0, per_level, _CHUNK)
        ]
        deg = torch.cat(out).clamp_(0.0, 1.0)
        degraded.append(deg.mul_(255).round_().to(torch.uint8) if quantize else deg)
        params_rows.append(params)
        level_rows.append(lvl)
        index_rows.append(rows)
    params = {k: torch.cat([p[k] for p in params_rows]) for k in params_rows[0]}
    level = torch.cat(level_rows)
    degraded_t = torch.cat(degraded).contiguous()
    return EvalSet(
        clean=clean,
        degraded=degraded_t,
        level=level,
        index=torch.cat(index_rows),
        params=params,
        names=[str(names[i]) for i in which],
        checksum=checksum(clean, degraded_t, level),
    )


def _slice(params: dict[str, Tensor], a: int, b: int) -> dict[str, Tensor]:
    return {k: v[a:b] for k, v in params.items()}


def checksum(clean: Tensor, degraded: Tensor, level: Tensor) -> str:
    """SHA-256 over the clean patches, the levels and the uint8-rounded degraded images."""
    h = hashlib.sha256()
    h.update(clean.contiguous().numpy().tobytes())
    h.update(level.contiguous().numpy().tobytes())
    if degraded.dtype != torch.uint8:
        degraded = (degraded * 255.0).round().to(torch.uint8)
    h.update(degraded.contiguous().numpy().tobytes())
    return h.hexdigest()


class EvalPairs(Dataset):
    """Map-style view of an :class:`EvalSet`: item ``k`` is a dict of
    ``clean`` (uint8), ``degraded`` (float), ``level`` and every param."""

    def __init__(self, eval_set: EvalSet) -> None:
        self.set = eval_set

    def __len__(self) -> int:
        return len(self.set)

    def __getitem__(self, k: int) -> dict:
        s = self.set
        item = {"clean": s.clean[s.index[k]], "degraded": s.degraded[k], "level": s.level[k]}
        item["params"] = {name: v[k] for name, v in s.params.items()}
        return item


class PoolDataset(Dataset):
    """A static pool of pre-corrupted pairs served as a training set (hard mining).

    Item ``k`` is a uniformly random pair of the pool, so an epoch has ``length`` items
    whatever the pool size: every policy sees the same number of training images. With
    an ``(epoch, k)`` index the pick is seeded by ``(seed, epoch, k)`` (reproducible);
    with a plain ``k`` it uses torch's global RNG.
    """

    def __init__(self, pool: EvalSet, length: int, seed: int = 0) -> None:
        self.pairs = EvalPairs(pool)
        self.length = int(length)
        self.seed = int(seed)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int | tuple[int, int]) -> dict:
        gen = item_generator(self.seed, *index) if isinstance(index, tuple) else None
        return self.pairs[int(torch.randint(0, len(self.pairs), (1,), generator=gen))]


class ResidentEvalLoader:
    """Batches of an :class:`EvalSet` whose tensors were moved to ``device`` once.

    Used for validation/testing on a GPU: no host-to-device copy per batch. Under DDP
    rank ``r`` takes pairs ``r::world`` (no padding duplicates). Yields the same dicts
    as ``DataLoader(EvalPairs(...))``.
    """

    def __init__(
        self,
        eval_set: EvalSet,
        device: torch.device,
        batch_size: int,
        rank: int = 0,
        world: int = 1,
    ):
        self.batch_size = int(batch_size)
        self.rows = torch.arange(len(eval_set))[rank::world].to(device)
        self.clean = eval_set.clean.to(device)
        self.degraded = eval_set.degraded.to(device)
        self.level = eval_set.level.to(device)
        self.index = eval_set.index.to(device)
        self.params = {k: v.to(device) for k, v in eval_set.params.items()}

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __iter__(self):
        for i in range(0, len(self.rows), self.batch_size):
            r = self.rows[i : i + self.batch_size]
            yield {
                "clean": self.clean[self.index[r]],
                "degraded": self.degraded[r],
                "level": self.level[r],
                "params": {k: v[r] for k, v in self.params.items()},
            }
