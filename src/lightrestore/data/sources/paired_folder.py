"""Paired data sets: degraded / clean image pairs read from files (GoPro's blurred and
sharp frames), instead of clean images corrupted on the fly.

GoPro's layout (Nah et al. 2017; the Golf Optimizer trains and tests on it)::

    <root>/train/<sequence>/blur/000001.png     <root>/train/<sequence>/sharp/000001.png
    <root>/test/<sequence>/blur/...              <root>/test/<sequence>/sharp/...

A pair is the two files with the same name in ``<degraded_dir>/`` and ``<clean_dir>/`` of
one sequence; a file without its partner, or two partners of different sizes, is a
:class:`~lightrestore.errors.DataError` naming them. Splits: ``train`` and ``test`` are
the two folders; ``val`` is the last ``val_sequences`` sequences of ``train`` (sorted by
name), held out of training (GoPro has no validation split).

``split(name)`` returns a :class:`PairedImageList`: a file-backed image list of the clean
images (``names``, ``sizes()``, ``[i]``), whose ``degraded(i)`` is the partner, the same
shape, uint8 ``(C, H, W)`` in [0, 255].
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from lightrestore.data.images import (
    check_channels,
    check_load_size,
    has_image_extension,
    load_image,
    read_size,
)
from lightrestore.data.sources.base import ImageSource, check_split
from lightrestore.data.sources.image_list import FileImageList
from lightrestore.errors import ConfigError, DataError


class PairedImageList(FileImageList):
    """Clean images (the list's items) with their degraded partners (:meth:`degraded`)."""

    def __init__(self, names, clean_paths, degraded_paths, sizes, channels: int,
                 load_size: int | None = None) -> None:  # fmt: skip
        super().__init__(names, clean_paths, sizes, channels, load_size)
        self.degraded_paths = [os.fspath(p) for p in degraded_paths]

    def degraded(self, i: int) -> torch.Tensor:
        """The degraded partner of image ``i``, uint8 ``(C, H, W)`` like ``self[i]``."""
        return load_image(self.degraded_paths[i], self.channels, self.load_size)


def _images(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file() and has_image_extension(p)}


class PairedFolderSource(ImageSource):
    """Degraded / clean pairs in GoPro's layout (see the module docstring).

    Args:
        root: the folder holding ``train/`` and ``test/``.
        channels: 3 (RGB) or 1 (grey).
        degraded_dir, clean_dir: the sub-folders of every sequence (``blur``, ``sharp``).
        val_sequences: the last training sequences held out for validation (>= 1).
        load_size: resize both images of a pair so their shorter side is this (``None``:
            native size, the paper's).
    """

    def __init__(self, root: str, channels: int = 3, degraded_dir: str = "blur",
                 clean_dir: str = "sharp", val_sequences: int = 1,
                 load_size: int | None = None) -> None:  # fmt: skip
        if root in (None, "", "???"):
            raise ConfigError(
                "a paired data set needs data.source.root=<folder holding train/ and test/> "
                "(GoPro: train/<sequence>/blur/*.png and train/<sequence>/sharp/*.png)"
            )
        self.root = Path(str(root)).expanduser()
        if not self.root.is_dir():
            raise DataError(
                f"paired data folder '{self.root}' does not exist: set data.source.root"
            )
        self.channels = check_channels(channels)
        self.load_size = check_load_size(load_size)
        self.degraded_dir, self.clean_dir = str(degraded_dir), str(clean_dir)
        self.val_sequences = int(val_sequences)
        if self.val_sequences < 1:
            raise ConfigError(f"data.source.val_sequences must be >= 1, got {val_sequences}")
        train = self._sequences("train")
        if len(train) <= self.val_sequences:
            raise DataError(
                f"'{self.root / 'train'}' has {len(train)} sequence(s): keep at least one for "
                f"training besides the {self.val_sequences} held out for validation "
                "(lower data.source.val_sequences)"
            )
        self._split_sequences = {
            "train": train[: -self.val_sequences],
            "val": train[-self.val_sequences :],
            "test": self._sequences("test"),
        }
        self._lists: dict[str, PairedImageList] = {}

    def _sequences(self, split_dir: str) -> list[Path]:
        folder = self.root / split_dir
        if not folder.is_dir():
            raise DataError(
                f"'{folder}' is missing: a paired data set needs {split_dir}/<sequence>/"
                f"{{{self.degraded_dir},{self.clean_dir}}}/ under data.source.root={self.root}"
            )
        seqs = [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]
        if not seqs:
            raise DataError(f"'{folder}' holds no sequence folders (<sequence>/{self.clean_dir}/)")
        return seqs

    def _pairs(self, seq: Path) -> list[tuple[str, Path, Path]]:
        folders = [seq / self.degraded_dir, seq / self.clean_dir]
        for f in folders:
            if not f.is_dir():
                raise DataError(f"sequence '{seq}' has no '{f.name}/' folder (expected "
                                f"{self.degraded_dir}/ and {self.clean_dir}/)")  # fmt: skip
        degraded, clean = _images(folders[0]), _images(folders[1])
        lone = sorted(set(degraded) ^ set(clean))
        if lone:
            where = folders[0] if lone[0] in degraded else folders[1]
            raise DataError(
                f"'{where / lone[0]}' has no partner in the other folder of '{seq}' "
                f"({len(lone)} unpaired file(s)): every {self.degraded_dir}/ image needs a "
                f"{self.clean_dir}/ image of the same name"
            )
        return [(f"{seq.parent.name}/{seq.name}/{n}", degraded[n], clean[n]) for n in sorted(clean)]

    def split(self, name: str) -> PairedImageList:
        check_split(name)
        if name not in self._lists:
            names, clean, degraded, sizes = [], [], [], []
            for seq in self._split_sequences[name]:
                for pair_name, d, c in self._pairs(seq):
                    hw, hw_d = read_size(c, self.load_size), read_size(d, self.load_size)
                    if hw != hw_d:
                        raise DataError(f"'{d}' is {hw_d[0]}x{hw_d[1]} but its partner '{c}' is "
                                        f"{hw[0]}x{hw[1]} (HxW): the pair must be aligned")  # fmt: skip
                    names.append(pair_name)
                    clean.append(c)
                    degraded.append(d)
                    sizes.append(hw)
            if not names:
                raise DataError(f"no image pairs in the {name} split under '{self.root}'")
            self._lists[name] = PairedImageList(names, clean, degraded, sizes, self.channels,
                                                self.load_size)  # fmt: skip
        return self._lists[name]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "paired_folder",
            "root": str(self.root),
            "channels": self.channels,
            "load_size": self.load_size,
            "pairs": f"{self.degraded_dir}/ -> {self.clean_dir}/",
            "sequences": {k: [p.name for p in v] for k, v in self._split_sequences.items()},
            "sizes": {k: len(self.split(k)) for k in ("train", "val", "test")},
        }

    def __repr__(self) -> str:
        return f"PairedFolderSource(root={self.root}, {self.degraded_dir}/ -> {self.clean_dir}/)"
