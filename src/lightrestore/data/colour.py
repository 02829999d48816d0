"""Colour spaces for the data: the Y channel of super-resolution's Y-channel models.

SRCNN, VDSR, DRRN and LapSRN are Y-channel models in their papers: trained and tested on
the Y of ITU-R BT.601 *studio range* as MATLAB's ``rgb2ycbcr`` computes it on 8-bit
images, ``Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255)`` with ``R, G, B`` in
0..255 (so ``Y`` in 16..235), the Y the SR metric measures
(:mod:`lightrestore.metrics.sr`). It is *not* the grey of a ``channels=1`` source
(Pillow's full-range luma ``.299 R + .587 G + .114 B``, no offset), so a Y-channel
experiment reads RGB and converts:

* :func:`convert` / :func:`ycbcr_y`: one uint8 ``(3, H, W)`` image -> uint8 ``(1, H, W)``;
* :class:`ColourSource`: any RGB :class:`~lightrestore.data.sources.ImageSource` seen in
  another colour space (its image lists convert on access);
* :class:`ColourDataModule`: the :class:`RestorationDataModule` with ``colour``
  (``data.colour``): every split, the hard-mining pool and the whole-image benchmark
  sets are converted. An experiment selects it with ``data._target_``, ``data.colour:
  ycbcr_y``, ``data.source.channels: 3`` (read RGB) and ``task.channels: 1`` (the model).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

import torch
from torch import Tensor

from lightrestore.data.datamodule import RestorationDataModule
from lightrestore.data.image_test_set import (
    ImageTestSet,
    benchmark_folder,
    build_image_test_set,
)
from lightrestore.data.sources import ImageList, ImageSource
from lightrestore.errors import ConfigError

log = logging.getLogger(__name__)

#: MATLAB ``rgb2ycbcr`` Y row for R, G, B in [0, 1], giving Y in [0, 255] (the same as
#: :data:`lightrestore.metrics.sr.Y_COEFFS`; data sits below metrics, so it is repeated).
Y_COEFFS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0

#: ``rgb``: images as read; ``ycbcr_y``: the studio-range BT.601 Y (MATLAB ``rgb2ycbcr``)
COLOURS = ("rgb", "ycbcr_y")
_CHANNELS = {"rgb": 3, "ycbcr_y": 1}


def check_colour(colour: str) -> str:
    if colour not in COLOURS:
        raise ConfigError(f"data.colour must be one of {COLOURS}, got {colour!r}")
    return colour


def ycbcr_y(image: Tensor) -> Tensor:
    """MATLAB ``rgb2ycbcr``'s Y of a uint8 RGB image: ``(..., 3, H, W)`` -> ``(..., 1, H, W)``
    uint8 in 16..235, ``round(16 + (65.481 R + 128.553 G + 24.966 B) / 255)``. A 1-channel
    image is taken as grey (``R = G = B``)."""
    if image.dtype != torch.uint8:
        raise TypeError(f"ycbcr_y expects a uint8 image, got {image.dtype}")
    c = image.shape[-3]
    if c not in (1, 3):
        raise ValueError(f"ycbcr_y needs 1 or 3 channels, got {c}")
    if c == 1:
        image = image.expand(*image.shape[:-3], 3, *image.shape[-2:])
    w = torch.tensor(Y_COEFFS, dtype=torch.float64).view(3, 1, 1) / 255.0
    y = (image.double() * w).sum(dim=-3, keepdim=True) + Y_OFFSET
    return y.round_().clamp_(0, 255).to(torch.uint8)


def convert(image: Tensor, colour: str) -> Tensor:
    """A uint8 ``(3, H, W)`` image in ``colour`` (``rgb``: unchanged)."""
    return image if check_colour(colour) == "rgb" else ycbcr_y(image)


class ColourImageList(ImageList):
    """An image list seen in another colour space (converted on every access)."""

    def __init__(self, images: ImageList, colour: str) -> None:
        super().__init__(images.names, images.load_size)
        self.images, self.colour = images, check_colour(colour)

    def _load(self, i: int) -> Tensor:
        return convert(self.images[i], self.colour)

    def sizes(self) -> list[tuple[int, int]]:
        return self.images.sizes()

    def location(self, i: int) -> str:
        return self.images.location(i)


class ColourSource(ImageSource):
    """An RGB source (``channels=3``) whose images come out in ``colour``.

    ``channels`` is that of the colour (``ycbcr_y``: 1); ``describe()`` adds ``colour``.
    """

    def __init__(self, source: ImageSource, colour: str = "ycbcr_y") -> None:
        self.colour = check_colour(colour)
        if int(source.channels) != 3:
            raise ConfigError(
                f"data.colour={colour} converts RGB images: set data.source.channels=3 (the "
                f"model's channels are task.channels), got {source.channels}"
            )
        self.source = source
        self.channels = _CHANNELS[self.colour]
        self.load_size = source.load_size

    def split(self, name: str) -> ImageList:
        return ColourImageList(self.source.split(name), self.colour)

    def describe(self) -> dict[str, Any]:
        return {**self.source.describe(), "channels": self.channels, "colour": self.colour}

    def __repr__(self) -> str:
        return f"ColourSource({self.source!r}, colour={self.colour!r})"


def convert_test_set(
    test_set: ImageTestSet, degradation: Any, colour: str
) -> ImageTestSet:
    """A whole-image test set in ``colour``: the clean images converted, each degraded
    again with its pair's own (seeded) parameters; checksum over the new pairs."""
    clean, degraded = [], []
    h = hashlib.sha256(f"{colour}:{test_set.checksum}".encode())
    for img, lv, p in zip(test_set.clean, test_set.level, test_set.params):
        c = convert(img, colour)
        batched = {k: v[None] if isinstance(v, Tensor) else v for k, v in p.items()}
        y = degradation.apply(c[None].float() / 255.0, batched)[0].clamp(0.0, 1.0)
        clean.append(c)
        degraded.append(y)
        h.update(c.numpy().tobytes())
        h.update(str(int(lv)).encode())
        h.update((y * 255).round().to(torch.uint8).numpy().tobytes())
    return ImageTestSet(
        clean, degraded, list(test_set.level), list(test_set.params), list(test_set.names),
        h.hexdigest(),
    )  # fmt: skip


class ColourDataModule(RestorationDataModule):
    """:class:`RestorationDataModule` whose images are converted to ``colour``.

    Args:
        source: an RGB source (``channels=3``).
        colour: ``rgb`` (as read) or ``ycbcr_y`` (MATLAB ``rgb2ycbcr`` Y, 1 channel).
        the rest: as :class:`RestorationDataModule`.
    """

    def __init__(self, source: ImageSource, *args: Any, colour: str = "rgb", **kwargs: Any) -> None:
        self.colour = check_colour(colour)
        if self.colour != "rgb":
            source = ColourSource(source, self.colour)
        super().__init__(source, *args, **kwargs)

    def setup(self, stage: str | None = None) -> None:
        if self.colour == "rgb" or not self.benchmark_sets:
            super().setup(stage)
            return
        build_benchmarks = stage in (None, "test") and not self.test_sets
        names, self.benchmark_sets = self.benchmark_sets, []
        try:
            super().setup(stage)
        finally:
            self.benchmark_sets = names
        if not build_benchmarks:
            return
        scale = int(getattr(self.degradation, "scale", 1))
        for name in names:
            folder = benchmark_folder(self.benchmark_root, name)
            rgb = build_image_test_set(
                folder, self.degradation, self.test_levels, 3, scale, self.seed
            )
            ts = convert_test_set(rgb, self.degradation, self.colour)
            log.info(
                "test set %s (%s): %d images from %s, checksum %s",
                name, self.colour, len(ts) // len(ts.levels), folder, ts.checksum[:16],
            )  # fmt: skip
            self.test_sets[name] = ts

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "colour": self.colour}
