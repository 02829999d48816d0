"""The source contract: the split names and the :class:`ImageSource` interface.

Every source hands out one :class:`~lightrestore.data.sources.image_list.ImageList` per
split in :data:`SPLITS`; an image list is a read-only sequence of uint8 ``(C, H, W)``
tensors (values in [0, 255], ``C`` = the source's ``channels``).
"""

from __future__ import annotations

import abc
from typing import Any

from lightrestore.data.sources.image_list import ImageList

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Split names every source provides."""


def check_split(name: str) -> str:
    """Return ``name`` if it is one of :data:`SPLITS`, else raise ``ValueError``."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
    return name


class ImageSource(abc.ABC):
    """Provides the train / val / test :class:`ImageList` of one data set."""

    channels: int
    load_size: int | None

    @abc.abstractmethod
    def split(self, name: str) -> ImageList:
        """The images of split ``name`` ("train", "val" or "test")."""

    @abc.abstractmethod
    def describe(self) -> dict[str, Any]:
        """Plain JSON-able description (kind, root, split sizes, channels, load_size)."""
