"""Whole-image test sets (Set5, Set14, BSD100, Urban100, ...): every image of a folder,
degraded at each test level, evaluated one image at a time (their sizes differ).

The usual layout is ``<root>/<name>/`` holding the ground-truth images, or
``<root>/<name>/HR/`` (EDSR's ``benchmark`` folder). Images are cropped to a multiple of
the scale (``modcrop``, the field's convention) before degradation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lightrestore.data.eval_set import _split_seed
from lightrestore.data.images import has_image_extension, load_image
from lightrestore.degradations.base import Degradation
from lightrestore.errors import DataError


@dataclass
class ImageTestSet:
    """Pairs of whole images, one per (image, level).

    Attributes:
        clean: uint8 ``(C, H, W)`` per pair.
        degraded: float ``(C, h, w)`` in [0, 1] per pair.
        level, params: the pair's level and degradation parameters.
        names: the source file of each pair.
        checksum: SHA-256 over the clean images, levels and uint8-rounded inputs.
    """

    clean: list[Tensor]
    degraded: list[Tensor]
    level: list[int]
    params: list[dict[str, Tensor]]
    names: list[str]
    checksum: str

    def __len__(self) -> int:
        return len(self.level)

    @property
    def levels(self) -> list[int]:
        return sorted(set(self.level))

    @property
    def per_level(self) -> int:
        return len(self) // max(1, len(self.levels))


def benchmark_folder(root: str | Path, name: str) -> Path:
    """``<root>/<name>/HR`` if it exists, else ``<root>/<name>``; DataError if neither."""
    base = Path(root).expanduser() / name
    for folder in (base / "HR", base):
        if folder.is_dir():
            return folder
    raise DataError(
        f"benchmark test set '{name}' not found: expected the folder {base} (or {base}/HR) with its "
        f"ground-truth images; set data.benchmark_root=<folder holding {name}/> or drop '{name}' "
        "from data.benchmark_sets"
    )


def build_image_test_set(
    folder: Path,
    degradation: Degradation,
    levels: Sequence[int],
    channels: int,
    modcrop: int,
    seed: int,
) -> ImageTestSet:
    """Load every image of ``folder`` (sorted), crop to a multiple of ``modcrop``, and
    degrade it at each level with per-image seeded parameters (on the CPU)."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and has_image_extension(p))
    if not files:
        raise DataError(
            f"no images (png, jpg, bmp, tif, webp, ppm, pgm) in test set folder '{folder}'"
        )
    degradation.ladder.check_levels(levels)
    clean, degraded, level, params, names = [], [], [], [], []
    h = hashlib.sha256()
    for i, f in enumerate(files):
        img = load_image(f, channels)
        hh, ww = (s - s % modcrop for s in img.shape[1:])
        if hh < 1 or ww < 1:
            raise DataError(f"test image '{f}' is smaller than the scale {modcrop}: remove it")
        img = img[:, :hh, :ww].contiguous()
        for lv in levels:
            g = torch.Generator().manual_seed(
                _split_seed(seed + 1_000_003 * (i + 1), "test", int(lv))
            )
            lvl = torch.tensor([int(lv)])
            p = degradation.sample(lvl, img.shape, g)
            y = degradation.apply(img[None].float() / 255.0, p)[0].clamp(0.0, 1.0)
            clean.append(img)
            degraded.append(y)
            level.append(int(lv))
            params.append({k: v[0] for k, v in p.items()})
            names.append(str(f.relative_to(folder)))
            h.update(img.numpy().tobytes())
            h.update(str(int(lv)).encode())
            h.update((y * 255).round().to(torch.uint8).numpy().tobytes())
    return ImageTestSet(clean, degraded, level, params, names, h.hexdigest())


class ImagePairs(Dataset):
    """Map-style view of an :class:`ImageTestSet` (use batch size 1)."""

    def __init__(self, test_set: ImageTestSet) -> None:
        self.set = test_set

    def __len__(self) -> int:
        return len(self.set)

    def __getitem__(self, k: int) -> dict:
        s = self.set
        return {
            "clean": s.clean[k],
            "degraded": s.degraded[k],
            "level": torch.tensor(s.level[k]),
            "params": s.params[k],
        }
