"""DIV2K (Agustsson & Timofte, 2017) as an image source, split by image number.

DIV2K's high-resolution images are ``DIV2K_train_HR/0001.png .. 0800.png`` and
``DIV2K_valid_HR/0801.png .. 0900.png`` (https://data.vision.ee.ethz.ch/cvl/DIV2K/).
:class:`Div2kSource` picks the images of each split by the number in their file name,
so a folder that also holds other files (``0001x2.png``, notes, ...) still works.

The default split is LIRA's (lifelong image restoration of blended distortions, §4.1,
after RL-Restore): images 1-750 train, 751-800 test. The paper has no validation split:
ours holds the last 10 training images (741-750) out of training unless
``val_ids`` says otherwise. So, by default:

========  ==========  ===============================================
split     images      rule
========  ==========  ===============================================
train     0001-0740   ``train_ids`` minus ``val_ids``
val       0741-0750   ``val_ids`` (default: the last 10 of ``train_ids``)
test      0751-0800   ``test_ids``
========  ==========  ===============================================

Every range is ``[first, last]``, inclusive, 1-based (``data.source.test_ids=[751,800]``).
``root`` is the folder holding ``DIV2K_train_HR/`` (and, for ids above 800,
``DIV2K_valid_HR/``) or the image folder itself. Everything else (lazy decoding, the
image lists, crop-size checks) is :class:`~lightrestore.data.sources.folder.FolderSource`'s:
this is that source with an explicit file list per split.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from lightrestore.data.sources.folder import FolderSource
from lightrestore.data.sources.folder_scan import _examples, _is_hidden, _read_headers
from lightrestore.data.sources.image_list import FileImageList
from lightrestore.errors import ConfigError, DataError

DIV2K_URL = "https://data.vision.ee.ethz.ch/cvl/DIV2K/"
#: the image folders looked for under ``root`` (else ``root`` itself is the image folder)
IMAGE_FOLDERS = ("DIV2K_train_HR", "DIV2K_valid_HR")
#: LIRA's split (§4.1): images 1-750 train, 751-800 test
TRAIN_IDS = (1, 750)
TEST_IDS = (751, 800)
#: validation, when ``val_ids`` is not set: the last this many of ``train_ids``
VAL_HELD_OUT = 10
_LAST_TRAIN_HR = 800  # ids above this are in DIV2K_valid_HR
_NUMBERED = re.compile(r"\d+")


def check_ids(value: Sequence[int] | None, key: str) -> tuple[int, int] | None:
    """An inclusive ``[first, last]`` range of image numbers (``None`` passes through)."""
    if value is None:
        return None
    values = list(value) if not isinstance(value, str | bytes) else [value]
    ok = len(values) == 2 and all(
        not isinstance(v, bool) and isinstance(v, int | float) and int(v) == v and v >= 1
        for v in values
    )
    if not ok or int(values[0]) > int(values[1]):
        raise ConfigError(
            f"data.source.{key} must be [first, last]: an inclusive range of DIV2K image "
            f"numbers, 1 <= first <= last (e.g. [751, 800] for 0751.png..0800.png), got {value!r}"
        )
    return int(values[0]), int(values[1])


def id_ranges(ids: Iterable[int]) -> str:
    """``[1, 2, 3, 7, 9, 10]`` -> ``'0001-0003, 0007, 0009-0010'``."""
    out: list[str] = []
    run: list[int] = []
    for i in sorted(set(ids)):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(_run(run))
        run = [i]
    if run:
        out.append(_run(run))
    return ", ".join(out)


def _run(run: list[int]) -> str:
    return f"{run[0]:04d}" if len(run) == 1 else f"{run[0]:04d}-{run[-1]:04d}"


def _layout(ids: Iterable[int]) -> str:
    """What the root should hold for ``ids``, e.g. ``DIV2K_train_HR/0001.png..0800.png``."""
    ids = sorted(set(ids))
    train = [i for i in ids if i <= _LAST_TRAIN_HR]
    valid = [i for i in ids if i > _LAST_TRAIN_HR]
    parts = []
    if train:
        parts.append(f"{IMAGE_FOLDERS[0]}/{train[0]:04d}.png..{train[-1]:04d}.png")
    if valid:
        parts.append(f"{IMAGE_FOLDERS[1]}/{valid[0]:04d}.png..{valid[-1]:04d}.png")
    return " and ".join(parts)


class Div2kImageList(FileImageList):
    """A DIV2K split: decoded on access like any folder split; a file that does not decode
    raises a :class:`DataError` that names it and says where to get a good copy."""

    def __init__(self, *args: Any, split: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.split = split

    def _load(self, i: int) -> torch.Tensor:
        try:
            return super()._load(i)
        except DataError as exc:
            raise DataError(
                f"DIV2K image '{self.paths[i]}' ({self.split} split) does not decode: replace "
                f"it with the original from {DIV2K_URL} (check the download: unzip -t), or "
                f"leave its number out of data.source.{self.split}_ids. Decoder: {exc}"
            ) from exc


class Div2kSource(FolderSource):
    """DIV2K's images, split by the number in their file names (see the module docstring).

    Args:
        root: the folder holding ``DIV2K_train_HR/`` (and ``DIV2K_valid_HR/`` for ids
            above 800), or the image folder itself.
        channels: 3 (RGB) or 1 (grey).
        load_size: resize every image so its shorter side is this (``None``: native,
            about 1400 px on the shorter side).
        train_ids: ``[first, last]`` training images (LIRA: ``[1, 750]``), minus ``val_ids``.
        val_ids: ``[first, last]`` validation images, held out of training; ``None``: the
            last 10 of ``train_ids`` (741-750).
        test_ids: ``[first, last]`` test images (LIRA: ``[751, 800]``).
        extensions: file suffixes counted as images (default: every image format; DIV2K
            ships PNG).

    Raises:
        ConfigError: ``root`` unset; a malformed range; a training split left empty.
        DataError: ``root`` missing; an image of the requested ranges missing (the message
            says how many and which); two files with the same number; a file whose header
            does not decode (at construction) or whose pixels do not (when read).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        channels: int = 3,
        load_size: int | None = None,
        train_ids: Sequence[int] = TRAIN_IDS,
        val_ids: Sequence[int] | None = None,
        test_ids: Sequence[int] = TEST_IDS,
        extensions: Iterable[str] | None = None,
    ) -> None:
        self.train_ids = check_ids(train_ids, "train_ids")
        self.test_ids = check_ids(test_ids, "test_ids")
        if self.train_ids is None or self.test_ids is None:
            raise ConfigError(
                "data.source.train_ids and data.source.test_ids must be [first, last] ranges "
                f"(LIRA: {list(TRAIN_IDS)} and {list(TEST_IDS)}); only val_ids may be null"
            )
        given_val = check_ids(val_ids, "val_ids")
        first, last = self.train_ids
        self.val_ids = given_val or (max(first, last - VAL_HELD_OUT + 1), last)
        self.split_ids = self._split_ids()
        _check_div2k_root(root)
        super().__init__(root, channels=channels, load_size=load_size, extensions=extensions)

    # ------------------------------------------------------------------ the split

    def _split_ids(self) -> dict[str, list[int]]:
        (a, b), (c, d), (e, f) = self.train_ids, self.val_ids, self.test_ids
        val = list(range(c, d + 1))
        held = set(val)
        train = [i for i in range(a, b + 1) if i not in held]
        if not train:
            raise ConfigError(
                f"data.source.train_ids={list(self.train_ids)} leaves no training image once "
                f"the validation images {id_ranges(val)} are held out: widen train_ids, or set "
                f"data.source.val_ids to other images"
            )
        ids = {"train": train, "val": val, "test": list(range(e, f + 1))}
        for x, y in (("train", "test"), ("val", "test"), ("train", "val")):
            common = sorted(set(ids[x]) & set(ids[y]))
            if common:
                warnings.warn(
                    f"DIV2K images {id_ranges(common)} are in both the {x} and the {y} split "
                    f"(data.source.{x}_ids / {y}_ids): scores on {y} will be optimistic.",
                    stacklevel=4,
                )
        return ids

    # ------------------------------------------------------------------ FolderSource hooks

    def _choose_mode(self, lists: dict[str, Any], partition_file: Any) -> str:
        return "div2k"

    def _build(self, lists: dict[str, Any], partition_file: Any) -> dict[str, FileImageList]:
        folders = self.image_folders()
        found = self._numbered_files(folders)
        needed = sorted({i for ids in self.split_ids.values() for i in ids})
        missing = [i for i in needed if i not in found]
        if missing:
            where = " and ".join(f"'{f}'" for f in folders)
            raise DataError(
                f"{len(missing)} of the {len(needed)} DIV2K images the split needs are not in "
                f"{where}: missing {id_ranges(missing)} (the split: train {id_ranges(self.split_ids['train'])}, "
                f"val {id_ranges(self.split_ids['val'])}, test {id_ranges(self.split_ids['test'])}). "
                f"data.source.root={self.root} should hold {_layout(needed)} (download "
                f"DIV2K_train_HR.zip from {DIV2K_URL} and unzip it there), or set "
                f"data.source.train_ids / val_ids / test_ids to the images you have."
            )
        self._mode_info["ids"] = {s: id_ranges(ids) for s, ids in self.split_ids.items()}
        self._mode_info["image_folders"] = [str(f) for f in folders]
        return {split: self._list(split, [found[i] for i in ids])
                for split, ids in self.split_ids.items()}  # fmt: skip

    def _list(self, split: str, names: list[str]) -> Div2kImageList:
        """The split's files, every header read now (a bad one is an error, not a skip)."""
        paths = [self._path(n) for n in names]
        _, sizes, failed = _read_headers(paths, self.load_size)
        if failed:
            bad = [paths[i] for i in failed]
            raise DataError(
                f"{len(bad)} DIV2K image(s) of the {split} split do not decode, e.g. "
                f"{_examples(bad, 3)}: replace them with the originals from {DIV2K_URL} "
                f"(check the download: unzip -t), or leave their numbers out of "
                f"data.source.{split}_ids."
            )
        return Div2kImageList(names, paths, sizes, self.channels, self.load_size, split=split)

    def image_folders(self) -> list[Path]:
        """``root/DIV2K_train_HR`` (+ ``root/DIV2K_valid_HR``) when present, else ``root``."""
        inside = [self.root / name for name in IMAGE_FOLDERS if (self.root / name).is_dir()]
        return inside if (self.root / IMAGE_FOLDERS[0]).is_dir() else [self.root]

    def _numbered_files(self, folders: list[Path]) -> dict[int, str]:
        """``{number: name relative to root}`` of the image files named ``<digits>.<ext>``."""
        found: dict[int, str] = {}
        for folder in folders:
            for p in sorted(folder.iterdir()):
                if _is_hidden(p.name) or p.suffix.lower() not in self.extensions:
                    continue
                if not _NUMBERED.fullmatch(p.stem) or not p.is_file():
                    continue
                name = p.relative_to(self.root).as_posix()
                i = int(p.stem)
                if i in found:
                    raise DataError(
                        f"two DIV2K files are image {i:04d}: '{self.root / found[i]}' and "
                        f"'{p}'. Keep one (move the other out of the folder)."
                    )
                found[i] = name
        return found

    # ------------------------------------------------------------------ description

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "kind": "div2k"}

    def __repr__(self) -> str:
        ids = ", ".join(f"{s} {id_ranges(v)}" for s, v in self.split_ids.items())
        return f"Div2kSource('{self.root}', {ids})"


def _check_div2k_root(root: str | os.PathLike | None) -> None:
    """A DIV2K-specific message for an unset, missing or non-folder root."""
    if root is None or os.fspath(root) in ("", "???"):
        raise ConfigError(
            "data.source.root is not set: data=div2k needs data.source.root=<folder holding "
            f"DIV2K_train_HR/0001.png..0800.png> (download it from {DIV2K_URL})."
        )
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataError(
            f"DIV2K folder '{path}' {state}: data.source.root should be the folder holding "
            f"DIV2K_train_HR/0001.png..0800.png (or that folder itself); download "
            f"DIV2K_train_HR.zip from {DIV2K_URL}."
        )
