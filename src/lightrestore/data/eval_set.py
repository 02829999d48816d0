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
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightrestore.data.batch import RestorationBatch
from lightrestore.degradations.base import Degradation

_SPLIT_SALT = {"train": 0, "val": 1, "test": 2}
_CHUNK = 256


def _split_seed(seed: int, split: str, level: int = 0) -> int:
    return (int(seed) * 1_000_003 + _SPLIT_SALT.get(split, 3) * 10_007 + level * 101) % (2**63)


@dataclass
class EvalSet:
    """Evaluation pairs for several levels.

    Attributes:
        clean: ``(M, C, S, S)`` uint8 — the ``M`` distinct clean patches.
        degraded: ``(L·M, C, S, S)`` float32 in [0, 1] — level-major.
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
        return self.clean.shape[0]

    def __len__(self) -> int:
        return self.level.shape[0]

    def batch(self, rows: Tensor) -> RestorationBatch:
        """The pairs at ``rows`` as a float batch (clean in [0, 1])."""
        return RestorationBatch(
            clean=self.clean[self.index[rows]].float() / 255.0,
            degraded=self.degraded[rows],
            level=self.level[rows],
            params={k: v[rows] for k, v in self.params.items()},
        )

    def examples(self, k: int) -> dict[int, RestorationBatch]:
        """The first ``k`` pairs of each level: ``{level: batch}``."""
        return {lv: self.batch((self.level == lv).nonzero().flatten()[:k]) for lv in self.levels}


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
) -> EvalSet:
    """Generate the fixed pairs on the CPU (see module doc)."""
    degradation.ladder.check_levels(levels)
    gen = torch.Generator().manual_seed(_split_seed(seed, split))
    clean, which = crop_patches(images, per_level, size, gen)
    clean_f = clean.float() / 255.0
    degraded, params_rows, level_rows = [], [], []
    for lv in levels:
        g = torch.Generator().manual_seed(_split_seed(seed, split, lv))
        lvl = torch.full((per_level,), int(lv), dtype=torch.long)
        params = degradation.sample(lvl, clean.shape[1:], g)
        out = [
            degradation.apply(clean_f[i : i + _CHUNK], _slice(params, i, i + _CHUNK))
            for i in range(0, per_level, _CHUNK)
        ]
        degraded.append(torch.cat(out).clamp_(0.0, 1.0))
        params_rows.append(params)
        level_rows.append(lvl)
    params = {k: torch.cat([p[k] for p in params_rows]) for k in params_rows[0]}
    level = torch.cat(level_rows)
    index = torch.arange(per_level).repeat(len(levels))
    degraded_t = torch.cat(degraded).contiguous()
    return EvalSet(
        clean=clean,
        degraded=degraded_t,
        level=level,
        index=index,
        params=params,
        names=[str(names[i]) for i in which],
        checksum=checksum(clean, degraded_t, level),
    )


def _slice(params: dict[str, Tensor], a: int, b: int) -> dict[str, Tensor]:
    return {k: v[a:b] for k, v in params.items()}


def checksum(clean: Tensor, degraded: Tensor, level: Tensor) -> str:
    h = hashlib.sha256()
    h.update(clean.contiguous().numpy().tobytes())
    h.update(level.contiguous().numpy().tobytes())
    h.update((degraded * 255.0).round().to(torch.uint8).contiguous().numpy().tobytes())
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
