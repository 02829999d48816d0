"""Image lists: one split of a source, as a read-only sequence of image tensors.

``lst[i]`` is a fresh uint8 ``(C, H, W)`` tensor with values in [0, 255] (the caller may
modify it); ``lst.names`` are stable identifiers and ``lst.sizes()`` gives every ``(h, w)``
without decoding pixels.

* :class:`TensorImageList`: images held in memory (the embedded photos).
* :class:`FileImageList`: image files decoded on every access (a folder source).
* :class:`ResizedImageList`: another list with every image resized to ``S × S`` (not
  cropped: DL-Net's 64×64 CelebA; ``data.resize_to``).
"""

from __future__ import annotations

import abc
import operator
import os
from collections.abc import Sequence

import torch

from lightrestore.data.images import check_channels, load_image, resize_exact
from lightrestore.errors import DataError


class ImageList(Sequence):
    """One split of a source: a sequence of uint8 ``(C, H, W)`` tensors in [0, 255].

    Attributes:
        names: stable identifiers, one per image (relative paths or ``skimage:<photo>``).
        load_size: the shorter side images were resized to, or ``None`` (native size).
    """

    def __init__(self, names: Sequence[str], load_size: int | None = None) -> None:
        self.names: list[str] = list(names)
        self.load_size = load_size

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> torch.Tensor:
        """Image ``i`` as a uint8 ``(C, H, W)`` tensor the caller may modify."""
        index = operator.index(i)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"image index {i} out of range for {len(self)} images")
        return self._load(index)

    @abc.abstractmethod
    def _load(self, i: int) -> torch.Tensor:
        """Image ``i`` (``0 <= i < len(self)``) as a fresh uint8 ``(C, H, W)`` tensor."""

    @abc.abstractmethod
    def sizes(self) -> list[tuple[int, int]]:
        """``(h, w)`` of every image after ``load_size``, without decoding pixels."""

    def location(self, i: int) -> str:
        """Where image ``i`` comes from, for messages (a file path, or its name)."""
        return self.names[i]

    def check_min_size(self, size: int, what: str = "crop") -> None:
        """Raise :class:`DataError` if any image is smaller than ``size`` on either side.

        The message names the first too-small image, its size, how many are too small,
        and the fixes (a larger ``data.source.load_size``, a smaller ``data.crop_size``,
        or removing the image).
        """
        small = [(i, hw) for i, hw in enumerate(self.sizes()) if min(hw) < size]
        if not small:
            return
        i, (h, w) = small[0]
        if self.load_size is None:
            how = "native size; data.source.load_size is unset"
        else:
            how = f"after resizing the shorter side to data.source.load_size={self.load_size}"
        raise DataError(
            f"image '{self.location(i)}' is {h}x{w} pixels (HxW, {how}), smaller than the "
            f"{size}x{size} {what} ({len(small)} of {len(self)} images in this split are too "
            f"small). Set data.source.load_size>={size} (resizes the shorter side), lower "
            f"data.crop_size, or remove the image."
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} images, load_size={self.load_size})"


class TensorImageList(ImageList):
    """Images held in memory as uint8 ``(C, H, W)`` tensors; ``[i]`` returns a copy."""

    def __init__(
        self,
        names: Sequence[str],
        images: Sequence[torch.Tensor],
        load_size: int | None = None,
    ) -> None:
        super().__init__(names, load_size)
        if len(images) != len(self.names):
            raise ValueError(f"{len(self.names)} names but {len(images)} images")
        self.images: list[torch.Tensor] = list(images)

    def _load(self, i: int) -> torch.Tensor:
        return self.images[i].clone()  # the cache is shared: never hand it out

    def sizes(self) -> list[tuple[int, int]]:
        return [(int(t.shape[-2]), int(t.shape[-1])) for t in self.images]


class FileImageList(ImageList):
    """Image files decoded on every access (no caching).

    Attributes:
        paths: absolute file paths, parallel to ``names``.
        channels: 1 or 3.
    """

    def __init__(
        self,
        names: Sequence[str],
        paths: Sequence[str | os.PathLike],
        sizes: Sequence[tuple[int, int]],
        channels: int,
        load_size: int | None = None,
    ) -> None:
        super().__init__(names, load_size)
        self.paths: list[str] = [os.fspath(p) for p in paths]
        self._sizes: list[tuple[int, int]] = [(int(h), int(w)) for h, w in sizes]
        if not len(self.paths) == len(self._sizes) == len(self.names):
            raise ValueError("names, paths and sizes must have the same length")
        self.channels = check_channels(channels)

    def _load(self, i: int) -> torch.Tensor:
        """Decode file ``i``; raises :class:`DataError` naming the file if that fails."""
        return load_image(self.paths[i], self.channels, self.load_size)

    def sizes(self) -> list[tuple[int, int]]:
        return list(self._sizes)

    def location(self, i: int) -> str:
        return self.paths[i]


class ResizedImageList(ImageList):
    """Every image of ``base`` resized to ``size × size`` (aspect ratio not kept, nothing
    cropped away), on access: Pillow bicubic with antialiasing (:func:`resize_exact`)."""

    def __init__(self, base: ImageList, size: int) -> None:
        super().__init__(base.names, base.load_size)
        self.base, self.size = base, int(size)

    def _load(self, i: int) -> torch.Tensor:
        return resize_exact(self.base[i], self.size)

    def sizes(self) -> list[tuple[int, int]]:
        return [(self.size, self.size)] * len(self)

    def location(self, i: int) -> str:
        return self.base.location(i)

    def __repr__(self) -> str:
        return f"ResizedImageList({len(self)} images resized to {self.size}x{self.size})"
