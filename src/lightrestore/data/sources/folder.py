"""A user's folder of images (CelebA, SUN397, DIV2K, ...) as an image source.

:class:`FolderSource` scans ``root`` recursively, splits the images into train / val /
test (list files, a partition file, subfolders, counts or seeded fractions, see its
docstring), reads every candidate's header once, and hands out
:class:`~lightrestore.data.sources.image_list.FileImageList` splits whose images are
decoded lazily to uint8 ``(C, H, W)`` tensors in [0, 255].
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lightrestore.data.images import check_channels, check_load_size, normalize_extensions
from lightrestore.data.sources.base import SPLITS, ImageSource, check_split
from lightrestore.data.sources.folder_scan import (
    _MAX_EXAMPLES,
    _check_root,
    _examples,
    _read_headers,
    _read_lines,
    _resolve_aux_file,
    _scan_images,
    _walk_files,
)
from lightrestore.data.sources.image_list import FileImageList
from lightrestore.data.sources.splits import (
    _MODE_RANK,
    _check_counts,
    _check_fractions,
    _parse_partition,
    fraction_sizes,
)
from lightrestore.errors import ConfigError, DataError

logger = logging.getLogger(__name__)


class SkippedImagesWarning(UserWarning):
    """Some files with image extensions were left out because their header is unreadable."""


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
