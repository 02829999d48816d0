"""Image sources: which images make up the train / val / test splits.

An :class:`ImageSource` hands out one :class:`ImageList` per split. An image list is a
read-only sequence of uint8 ``(C, H, W)`` tensors (values in [0, 255], ``C`` = the
source's ``channels``) with stable ``names`` and cheap ``sizes()``.

* :class:`EmbeddedSource`: scikit-image's bundled photographs (no files, no download),
  split by image, decoded once per process and kept in memory.
* :class:`FolderSource`: any folder tree of image files, decoded lazily; the split
  comes from list files, a CelebA-style partition file, ``train/ val/ test/``
  subfolders, fixed counts in sorted order, or seeded random fractions.

Both are picklable, so they (and their image lists) can go to DataLoader workers.
"""

from __future__ import annotations

import abc
import logging
import operator
import os
import warnings
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lightrestore.data.images import (
    check_channels,
    check_load_size,
    load_image,
    normalize_extensions,
    read_size,
    resize_shorter,
    to_uint8_chw,
)
from lightrestore.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
"""Split names every source provides."""

_MAX_EXAMPLES = 5


class SkippedImagesWarning(UserWarning):
    """Some files with image extensions were left out because their header is unreadable."""


def check_split(name: str) -> str:
    """Return ``name`` if it is one of :data:`SPLITS`, else raise ``ValueError``."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}: expected one of {', '.join(SPLITS)}")
    return name


def _examples(items: Sequence[str], limit: int = _MAX_EXAMPLES) -> str:
    """``'a', 'b', 'c'`` (at most ``limit`` of them, then ``...``)."""
    shown = ", ".join(f"'{x}'" for x in items[:limit])
    return shown + (", ..." if len(items) > limit else "")


# =========================================================================== image lists


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


# =========================================================================== sources


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


# --------------------------------------------------------------------------- embedded

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


# --------------------------------------------------------------------------- folder scanning


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk_files(folder: Path) -> list[str]:
    """Relative POSIX paths of all non-hidden files under ``folder``, sorted.

    Follows symlinked folders (datasets are often linked in) but visits each real
    folder once, so link loops terminate. Hidden files and folders (``.name``,
    including macOS ``._*`` resource forks) are skipped.
    """
    found: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        rel_dir = Path(dirpath).relative_to(folder)
        for f in filenames:
            if not _is_hidden(f):
                found.append((rel_dir / f).as_posix())
    return sorted(found)


def _scan_images(folder: Path, extensions: frozenset[str], what: str) -> list[str]:
    """Sorted relative paths of the image files under ``folder`` (recursive).

    Raises:
        DataError: ``folder`` holds no file with one of ``extensions``.
    """
    files = _walk_files(folder)
    images = [f for f in files if os.path.splitext(f)[1].lower() in extensions]
    if images:
        return images
    others = f" (it holds {len(files)} other files, e.g. {_examples(files, 3)})" if files else ""
    raise DataError(
        f"no image files in {what} '{folder}'{others}; searched recursively for "
        f"{', '.join(sorted(extensions))}. Point data.source.root at a folder of images, "
        f"set data.source.extensions, or use data=embedded for the bundled photos."
    )


def _read_headers(
    paths: Sequence[str], load_size: int | None, stop_after: int | None = None
) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """Read image headers in order: ``(ok indices, their (h, w) sizes, failed indices)``.

    Stops once ``stop_after`` headers have been read successfully (``None``: read all).
    """
    ok: list[int] = []
    sizes: list[tuple[int, int]] = []
    failed: list[int] = []
    for i, path in enumerate(paths):
        if stop_after is not None and len(ok) >= stop_after:
            break
        try:
            sizes.append(read_size(path, load_size))
            ok.append(i)
        except DataError:
            failed.append(i)
    return ok, sizes, failed


def _resolve_aux_file(path: str | os.PathLike, root: Path, key: str, what: str) -> Path:
    """Find a list / partition file: as given (``~`` expanded), else relative to ``root``."""
    p = Path(path).expanduser()
    if p.is_file():
        return p.resolve()
    if not p.is_absolute() and (root / p).is_file():
        return (root / p).resolve()
    also = "" if p.is_absolute() else f" (also looked in '{root}')"
    raise DataError(
        f"{what} '{p}' does not exist{also}: set data.source.{key} to an existing text file, "
        f"or leave it unset."
    )


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank, non-``#`` lines of a text file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read '{path}' ({exc}): make it a UTF-8 text file.") from exc
    lines = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), start=1)]
    return [(n, s) for n, s in lines if s and not s.startswith("#")]


def _check_root(root: str | os.PathLike | None) -> Path:
    """Absolute path of an existing data folder, else :class:`DataError` naming the fix."""
    if root is None or os.fspath(root) == "":
        raise ConfigError(
            "data.source.root is not set: set data.source.root=<folder of images>, or use "
            "data=embedded for the bundled photos."
        )
    path = Path(root).expanduser().absolute()
    if not path.exists():
        raise DataError(
            f"data folder '{path}' does not exist: set data.source.root=<folder of images>, "
            f"or use data=embedded for the bundled photos."
        )
    if not path.is_dir():
        raise DataError(
            f"data folder '{path}' is a file, not a folder: set data.source.root=<folder of "
            f"images> (use data.source.train_list/val_list/test_list for lists of files)."
        )
    return path


def _check_counts(counts: Iterable[int] | None) -> tuple[int, int, int] | None:
    if counts is None:
        return None
    values = list(counts)
    ok = len(values) == 3 and all(not isinstance(v, bool) and int(v) == v and v > 0 for v in values)
    if not ok:
        raise ConfigError(
            f"data.source.counts must be three positive integers [n_train, n_val, n_test], "
            f"got {values}"
        )
    return tuple(int(v) for v in values)  # type: ignore[return-value]


def _check_fractions(fractions: Iterable[float]) -> tuple[float, float, float]:
    values = [float(f) for f in fractions]
    if len(values) != 3 or min(values) <= 0 or abs(sum(values) - 1.0) > 1e-6:
        raise ConfigError(
            f"data.source.fractions must be three positive numbers [train, val, test] summing "
            f"to 1, got {values}"
        )
    return values[0], values[1], values[2]


def fraction_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Split ``n >= 3`` items by ``fractions`` into three non-empty counts summing to ``n``.

    val and test get ``round(f * n)`` (at least 1); train gets the rest, e.g.
    ``fraction_sizes(1000, (0.8, 0.1, 0.1)) == [800, 100, 100]``.
    """
    sizes = [max(1, round(f * n)) for f in fractions]
    while sum(sizes) > n:  # tiny n: take from the largest split (it stays >= 1 as n >= 3)
        sizes[int(np.argmax(sizes))] -= 1
    sizes[0] += n - sum(sizes)
    return sizes


# --------------------------------------------------------------------------- folder source


class FolderSource(ImageSource):
    """Image files under ``root`` (recursive), split into train / val / test.

    The split comes from the first of these that applies:

    a. ``train_list``, ``val_list``, ``test_list``: text files of image paths relative to
       ``root`` (one per line; blank lines and ``#`` comment lines ignored); all three
       are required.
    b. ``partition_file``: CelebA's ``list_eval_partition.txt`` format (``000001.jpg 0``,
       0/1/2 = train/val/test); names are relative to ``root``, else found by basename
       anywhere under it.
    c. ``root`` has ``train/`` and ``val/`` (or ``valid/``) and/or ``test/`` subfolders.
    d. ``counts=[n_train, n_val, n_test]``: the first ``n_train`` readable images in
       sorted order, then the next ``n_val``, then ``n_test`` (ODL's CelebA protocol).
    e. ``fractions`` of a ``numpy.random.default_rng(seed)`` permutation of all readable
       images; every split gets at least one image.

    List and partition files may be given relative to the working directory or to
    ``root``; ``~`` is expanded everywhere. Every candidate file's header is read once
    here (with ``counts``, only until enough readable images are found: about 70 us per
    file); files whose header cannot be read are left out and reported with a
    :class:`SkippedImagesWarning` (see ``describe()["skipped"]``). Pixels are decoded on
    each access, so a file that is corrupt past its header raises :class:`DataError`
    (naming it) only when it is read.

    Raises:
        DataError: missing root / list files, no images, too few images for ``counts``,
            an empty split.
        ConfigError: malformed ``counts``, ``fractions``, ``channels``, ``load_size``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        channels: int = 3,
        load_size: int | None = None,
        train_list: str | os.PathLike | None = None,
        val_list: str | os.PathLike | None = None,
        test_list: str | os.PathLike | None = None,
        partition_file: str | os.PathLike | None = None,
        counts: Sequence[int] | None = None,
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        seed: int = 0,
        extensions: Iterable[str] | None = None,
    ) -> None:
        self.channels = check_channels(channels)
        self.load_size = check_load_size(load_size)
        self.counts = _check_counts(counts)
        self.fractions = _check_fractions(fractions)
        self.seed = int(seed)
        self.extensions = normalize_extensions(extensions)
        self.root = _check_root(root)
        self._mode_info: dict[str, Any] = {}
        self.skipped: list[str] = []
        lists = {"train": train_list, "val": val_list, "test": test_list}
        self.mode = self._choose_mode(lists, partition_file)
        self._splits = self._build(lists, partition_file)
        self._report_skipped()
        logger.info(
            "folder source '%s' (%s): %s",
            self.root,
            self.mode,
            ", ".join(f"{s} {len(lst)}" for s, lst in self._splits.items()),
        )

    # ------------------------------------------------------------------ public API

    def split(self, name: str) -> FileImageList:
        return self._splits[check_split(name)]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "folder",
            "root": str(self.root),
            "channels": self.channels,
            "load_size": self.load_size,
            "split_mode": self.mode,
            **self._mode_info,
            "splits": {s: len(lst) for s, lst in self._splits.items()},
            "skipped": {"count": len(self.skipped), "examples": self.skipped[:_MAX_EXAMPLES]},
            "extensions": sorted(self.extensions),
        }

    def __repr__(self) -> str:
        sizes = "/".join(str(len(lst)) for lst in self._splits.values())
        return f"FolderSource('{self.root}', {self.mode}, train/val/test={sizes})"

    # ------------------------------------------------------------------ mode choice

    def _choose_mode(self, lists: dict[str, Any], partition_file: Any) -> str:
        """Which split rule applies (first match wins); warns about ignored options."""
        if any(v is not None for v in lists.values()):
            missing = [f"data.source.{s}_list" for s, v in lists.items() if v is None]
            if missing:
                raise ConfigError(
                    f"split lists need all three of train_list, val_list and test_list; "
                    f"missing: {', '.join(missing)}. Set them, or unset all to split otherwise."
                )
            mode = "lists"
        elif partition_file is not None:
            mode = "partition_file"
        elif self._split_dirs() is not None:
            mode = "subfolders"
        elif self.counts is not None:
            mode = "counts"
        else:
            mode = "fractions"
        optional = (("partition_file", partition_file), ("counts", self.counts))
        ignored = [
            key
            for key, given in optional
            if given is not None and _MODE_RANK[key] > _MODE_RANK[mode]
        ]
        if ignored:
            warnings.warn(
                f"data.source.{' and data.source.'.join(ignored)} ignored: the split comes from "
                f"{mode} (lists > partition_file > subfolders > counts > fractions).",
                stacklevel=4,
            )
        return mode

    def _split_dirs(self) -> dict[str, Path] | None:
        """``{split: folder}`` when ``root`` has a ``train/`` plus ``val/``/``valid/``/``test/``."""
        candidates = {"train": ["train"], "val": ["val", "valid"], "test": ["test"]}
        found = {}
        for split, subs in candidates.items():
            for sub in subs:
                if (self.root / sub).is_dir():
                    found[split] = self.root / sub
                    break
        return found if "train" in found and len(found) >= 2 else None

    # ------------------------------------------------------------------ building splits

    def _build(self, lists: dict[str, Any], partition_file: Any) -> dict[str, FileImageList]:
        if self.mode == "lists":
            candidates = self._from_lists(lists)
        elif self.mode == "partition_file":
            candidates = self._from_partition(partition_file)
        elif self.mode == "subfolders":
            candidates = self._from_subfolders()
        else:
            return self._from_sorted_files()
        return {s: self._readable(s, names) for s, names in candidates.items()}

    def _path(self, name: str) -> str:
        return os.fspath(self.root / name)

    def _readable(self, split: str, names: list[str]) -> FileImageList:
        """Read the headers of ``names``; keep the readable ones, record the rest."""
        paths = [self._path(n) for n in names]
        ok, sizes, failed = _read_headers(paths, self.load_size)
        self.skipped.extend(names[i] for i in failed)
        if not ok:
            self._empty_split(split, names)
        kept = [names[i] for i in ok]
        return FileImageList(kept, [paths[i] for i in ok], sizes, self.channels, self.load_size)

    def _from_lists(self, lists: dict[str, Any]) -> dict[str, list[str]]:
        """Names per split from the three list files (missing entries -> DataError)."""
        out: dict[str, list[str]] = {}
        for split, given in lists.items():
            list_file = _resolve_aux_file(given, self.root, f"{split}_list", f"{split} list file")
            self._mode_info[f"{split}_list"] = str(list_file)
            entries = [(n, self._entry_name(text)) for n, text in _read_lines(list_file)]
            missing = [(n, e) for n, e in entries if not os.path.isfile(self._path(e))]
            if missing:
                n, e = missing[0]
                raise DataError(
                    f"'{self._path(e)}', listed in {split} list '{list_file}' (line {n}), does "
                    f"not exist ({len(missing)} of {len(entries)} listed files are missing): fix "
                    f"the paths (relative to data.source.root='{self.root}') or remove the lines."
                )
            out[split] = [e for _, e in entries]
        self._warn_overlap(out)
        return out

    def _entry_name(self, text: str) -> str:
        """Name of a list entry: normalised relative POSIX path, or the absolute path."""
        p = Path(text).expanduser()
        if p.is_absolute():
            return p.as_posix()
        return Path(os.path.normpath(p)).as_posix()

    def _warn_overlap(self, names: dict[str, list[str]]) -> None:
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            common = sorted(set(names[a]) & set(names[b]))
            if common:
                warnings.warn(
                    f"{len(common)} images are in both the {a} and the {b} list, e.g. "
                    f"{_examples(common, 3)}: scores on {b} will be optimistic.",
                    stacklevel=5,
                )

    def _from_partition(self, partition_file: Any) -> dict[str, list[str]]:
        """Names per split from a CelebA ``list_eval_partition.txt``-style file."""
        pfile = _resolve_aux_file(partition_file, self.root, "partition_file", "partition file")
        self._mode_info["partition_file"] = str(pfile)
        labelled = _parse_partition(pfile)
        files = _walk_files(self.root)
        present = set(files)
        by_base: dict[str, list[str]] = {}
        for f in files:
            by_base.setdefault(f.rsplit("/", 1)[-1], []).append(f)
        out: dict[str, list[str]] = {s: [] for s in SPLITS}
        missing: list[str] = []
        for name, split in labelled:
            rel = Path(os.path.normpath(name)).as_posix()
            if rel not in present:
                matches = by_base.get(rel.rsplit("/", 1)[-1], [])
                if len(matches) > 1:
                    raise DataError(
                        f"'{name}' from partition file '{pfile}' matches several files under "
                        f"'{self.root}' ({_examples(matches, 3)}): write its path relative to "
                        f"data.source.root in the partition file, or remove the duplicates."
                    )
                if not matches:
                    missing.append(name)
                    continue
                rel = matches[0]
            out[split].append(rel)
        if missing:
            raise DataError(
                f"{len(missing)} images named in partition file '{pfile}' are not under "
                f"'{self.root}', e.g. {_examples(missing)}: point data.source.root at the "
                f"folder that holds them (searched recursively), or remove those lines."
            )
        return out

    def _from_subfolders(self) -> dict[str, list[str]]:
        """Names per split from ``root/train``, ``root/val`` (or ``valid``), ``root/test``."""
        dirs = self._split_dirs() or {}
        self._mode_info["subfolders"] = {s: d.name for s, d in dirs.items()}
        out: dict[str, list[str]] = {}
        for split in SPLITS:
            if split not in dirs:
                expected = "val/ (or valid/)" if split == "val" else f"{split}/"
                have = " and ".join(f"{d.name}/" for d in dirs.values())
                raise DataError(
                    f"data folder '{self.root}' has {have} subfolders but no {expected}: "
                    f"add a {expected} subfolder of images, or "
                    f"split explicitly with data.source.train_list/val_list/test_list."
                )
            folder = dirs[split]
            rel = _scan_images(folder, self.extensions, f"the {split} folder")
            out[split] = [f"{folder.name}/{r}" for r in rel]
        return out

    def _from_sorted_files(self) -> dict[str, FileImageList]:
        """Counts (first n in sorted order) or seeded fractions over all readable images."""
        names = _scan_images(self.root, self.extensions, "data folder")
        paths = [self._path(n) for n in names]
        total = sum(self.counts) if self.counts is not None else None
        ok, sizes, failed = _read_headers(paths, self.load_size, stop_after=total)
        self.skipped.extend(names[i] for i in failed)
        if not ok:
            raise DataError(
                f"no decodable image in '{self.root}': {len(failed)} files with image extensions "
                f"failed to decode, e.g. {_examples([names[i] for i in failed])}. Replace them, "
                f"or point data.source.root at a folder of images."
            )
        if self.counts is not None:
            self._mode_info["counts"] = list(self.counts)
            groups = self._count_groups(len(ok))
        else:
            self._mode_info.update(fractions=list(self.fractions), seed=self.seed)
            groups = self._fraction_groups(len(ok))
        return {
            split: FileImageList(
                [names[ok[j]] for j in idx],
                [paths[ok[j]] for j in idx],
                [sizes[j] for j in idx],
                self.channels,
                self.load_size,
            )
            for split, idx in groups.items()
        }

    def _count_groups(self, n: int) -> dict[str, list[int]]:
        """Positions (into the readable images, sorted) of each split for ``counts``."""
        assert self.counts is not None
        if n < sum(self.counts):
            raise DataError(
                f"data folder '{self.root}' has {n} readable images but data.source.counts="
                f"{list(self.counts)} needs {sum(self.counts)}: lower data.source.counts, or add "
                f"images."
            )
        a, b, c = self.counts
        return {
            "train": list(range(a)),
            "val": list(range(a, a + b)),
            "test": list(range(a + b, a + b + c)),
        }

    def _fraction_groups(self, n: int) -> dict[str, list[int]]:
        """Positions of each split: a seeded permutation cut by ``fractions``, each sorted."""
        if n < 3:
            raise DataError(
                f"data folder '{self.root}' has only {n} readable image(s); a random split needs "
                f"at least 3 (one per split): add images, or give data.source.train_list/"
                f"val_list/test_list (the same file may appear in several lists)."
            )
        perm = np.random.default_rng(self.seed).permutation(n)
        a, b, _ = fraction_sizes(n, self.fractions)
        cuts = {"train": perm[:a], "val": perm[a : a + b], "test": perm[a + b :]}
        return {s: sorted(int(i) for i in idx) for s, idx in cuts.items()}

    # ------------------------------------------------------------------ errors / warnings

    def _empty_split(self, split: str, names: list[str]) -> None:
        if names:
            detail = (
                f"none of its {len(names)} files can be decoded, e.g. {_examples(names)}; "
                f"replace them"
            )
        elif self.mode == "lists":
            detail = f"'{self._mode_info[f'{split}_list']}' lists no image; add image paths to it"
        elif self.mode == "partition_file":
            label = SPLITS.index(split)
            detail = (
                f"'{self._mode_info['partition_file']}' assigns no image to it (label {label}); "
                f"add lines '<image> {label}'"
            )
        else:
            detail = "its folder holds no images; add some"
        raise DataError(f"the {split} split of '{self.root}' is empty: {detail}.")

    def _report_skipped(self) -> None:
        if self.skipped:
            warnings.warn(
                f"skipped {len(self.skipped)} file(s) under '{self.root}' whose image header "
                f"cannot be read: {_examples(self.skipped)}. They are left out of every split; "
                f"remove or replace them to silence this warning.",
                SkippedImagesWarning,
                stacklevel=3,
            )


_MODE_RANK = {"lists": 0, "partition_file": 1, "subfolders": 2, "counts": 3, "fractions": 4}


def _parse_partition(pfile: Path) -> list[tuple[str, str]]:
    """``(image name, split)`` pairs from lines ``<name> <0|1|2>`` of a partition file."""
    out: list[tuple[str, str]] = []
    for n, text in _read_lines(pfile):
        parts = text.rsplit(None, 1)
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise DataError(
                f"line {n} of partition file '{pfile}' reads '{text}', expected '<image> <0|1|2>' "
                f"(0 = train, 1 = val, 2 = test): fix or remove the line."
            )
        out.append((parts[0], SPLITS[int(parts[1])]))
    return out
