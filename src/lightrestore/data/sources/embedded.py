"""The embedded data set: scikit-image's bundled photographs (no files, no download).

Split by image (:data:`EMBEDDED_COLOUR_SPLITS`, plus :data:`EMBEDDED_GREY_EXTRA` when
``channels == 1``); each split is decoded once per process, converted to uint8
``(C, H, W)`` tensors in [0, 255], resized so the shorter side is ``load_size``, and kept
in memory. The photo lists are pinned by tests/test_constants.py: changing them changes
every embedded evaluation set.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from lightrestore.data.images import (
    check_channels,
    check_load_size,
    resize_shorter,
    to_uint8_chw,
)
from lightrestore.data.sources.base import SPLITS, ImageSource, check_split
from lightrestore.data.sources.image_list import TensorImageList
from lightrestore.errors import DataError

EMBEDDED_COLOUR_SPLITS: dict[str, tuple[str, ...]] = {
    "train": (
        "rocket",
        "coffee",
        "hubble_deep_field",
        "immunohistochemistry",
        "motorcycle_left",
        "motorcycle_right",
    ),
    "val": ("chelsea",),
    "test": ("astronaut",),
}
"""scikit-image colour photographs per split (used for every ``channels``)."""

EMBEDDED_GREY_EXTRA: dict[str, tuple[str, ...]] = {
    "train": ("brick", "grass", "gravel", "moon", "page", "text", "coins", "clock"),
    "val": (),
    "test": ("camera",),
}
"""scikit-image greyscale photographs added to each split when ``channels == 1``."""


def embedded_photo_names(split: str, channels: int) -> tuple[str, ...]:
    """scikit-image photo names of ``split`` (without the ``skimage:`` prefix)."""
    check_split(split)
    names = EMBEDDED_COLOUR_SPLITS[split]
    return names + EMBEDDED_GREY_EXTRA[split] if check_channels(channels) == 1 else names


@cache
def _stereo_motorcycle() -> tuple[np.ndarray, np.ndarray]:
    """Left and right views of ``skimage.data.stereo_motorcycle()``, (500, 741, 3) uint8."""
    import skimage.data

    left, right, _disparity = skimage.data.stereo_motorcycle()
    return left, right


@cache
def _embedded_photo(name: str) -> np.ndarray:
    """A bundled photograph as ``(H, W)`` or ``(H, W, 3)`` array, decoded once per process."""
    try:
        if name == "motorcycle_left":
            return _stereo_motorcycle()[0]
        if name == "motorcycle_right":
            return _stereo_motorcycle()[1]
        import skimage.data

        return getattr(skimage.data, name)()
    except Exception as exc:
        raise DataError(
            f"the bundled photograph 'skimage:{name}' cannot be loaded ({type(exc).__name__}: "
            f"{exc}). Reinstall scikit-image, or use your own images with data=folder and "
            f"data.source.root=<folder of images>."
        ) from exc


@cache
def _embedded_list(split: str, channels: int, load_size: int | None) -> TensorImageList:
    """The decoded, converted, resized images of one embedded split (cached per process)."""
    photos = embedded_photo_names(split, channels)
    images = [resize_shorter(to_uint8_chw(_embedded_photo(p), channels), load_size) for p in photos]
    return TensorImageList([f"skimage:{p}" for p in photos], images, load_size)


class EmbeddedSource(ImageSource):
    """scikit-image's bundled photographs, split by image; nothing is downloaded.

    Colour (``channels=3``): train = rocket, coffee, hubble_deep_field,
    immunohistochemistry, motorcycle_left, motorcycle_right; val = chelsea;
    test = astronaut. Grey (``channels=1``): the same photos as luma, plus brick,
    grass, gravel, moon, page, text, coins, clock in train and camera in test.

    Images are resized so their shorter side is ``load_size`` (``None``: native size),
    decoded on first use and cached per process, so several sources (or DataModules)
    with the same settings share one copy and ``split()`` returns the same object.
    """

    def __init__(self, channels: int = 3, load_size: int | None = 256) -> None:
        self.channels = check_channels(channels)
        self.load_size = check_load_size(load_size)

    def split(self, name: str) -> TensorImageList:
        return _embedded_list(check_split(name), self.channels, self.load_size)

    def describe(self) -> dict[str, Any]:
        names = {
            s: [f"skimage:{p}" for p in embedded_photo_names(s, self.channels)] for s in SPLITS
        }
        return {
            "kind": "embedded",
            "root": "skimage.data",
            "channels": self.channels,
            "load_size": self.load_size,
            "split_mode": "fixed",
            "splits": {s: len(n) for s, n in names.items()},
            "names": names,
        }

    def __repr__(self) -> str:
        return f"EmbeddedSource(channels={self.channels}, load_size={self.load_size})"
