"""Pre-made test pairs: degraded inputs and their ground truth read from files, one
difficulty level per group (RL-Restore's and LIRA's mild / moderate / severe test sets).

RL-Restore (https://github.com/yuke93/RL-Restore) distributes its test sets as::

    <folder>/mild_in/1_in.png        <folder>/mild_gt/1_gt.png
    <folder>/moderate_in/...         <folder>/moderate_gt/...
    <folder>/severe_in/...           <folder>/severe_gt/...

A pair is the input and the ground truth with the same number in the two folders of a
group (``1_in.png`` / ``1_gt.png``; an input named ``<id>.png``, as one in their
repository is, works too; ``007`` and ``7`` are the same number). Group ``<g>`` is
evaluated at the level of ``g`` in the degradation's ``level_names`` (a sequence, level
= position + 1, or a ``{name: level}`` mapping), by default ``mild`` 1, ``moderate`` 2,
``severe`` 3; groups absent from the folder are not evaluated. Nothing is generated:
the inputs are the files, read lazily (the checksum covers every file's bytes).

``+data.premade_pairs.rl_restore=/data/RL-Restore/test_images`` (Hydra's ``+`` adds a key
to the empty default mapping) adds the test set ``rl_restore``, scored per level like any other (``test/rl_restore/psnr/level_1``, a table
of its own in ``results.md``). Pairs of different sizes are fine: the loader batches
pairs of equal size together (:meth:`PremadePairs.batches`); RL-Restore's are all
63x63.

Batches hold ``clean``, ``degraded``, ``level`` and ``params`` with only ``level`` and
``severity`` (the middle of the level's bin: the real one is unknown), so methods that
need the degradation's other parameters (DL-Net's forward model) cannot use these sets.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lightrestore.data.image_test_set import ImageTestSet
from lightrestore.data.images import has_image_extension, load_image, read_size
from lightrestore.errors import ConfigError, DataError, LevelError

#: the group folder names and their levels when the degradation has no ``level_names``
DEFAULT_LEVEL_NAMES: dict[str, int] = {"mild": 1, "moderate": 2, "severe": 3}
_ROLES = {"in": "input", "gt": "ground truth"}
_GROUP_DIR = re.compile(r"(?P<group>.+)_(?P<role>in|gt)")


def level_names(degradation: Any) -> dict[str, int]:
    """``{group name: level}`` from ``degradation.level_names`` (a sequence: level =
    position + 1; or a mapping), else :data:`DEFAULT_LEVEL_NAMES`."""
    names = getattr(degradation, "level_names", None)
    if names is None:
        return dict(DEFAULT_LEVEL_NAMES)
    if isinstance(names, Mapping):
        return {str(k): int(v) for k, v in names.items()}
    return {str(n): i + 1 for i, n in enumerate(names)}


class _LazyImages(Sequence):
    """Image files decoded on access, uint8 ``(C, H, W)``."""

    def __init__(self, paths: Sequence[Path], channels: int) -> None:
        self.paths, self.channels = list(paths), int(channels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, k: int) -> Tensor:  # type: ignore[override]
        return load_image(self.paths[k], self.channels)


@dataclass
class PremadePairs(ImageTestSet):
    """A test set of pre-made (input, ground truth) file pairs (see the module docstring).

    Like :class:`ImageTestSet` (whose loaders and ``test_step`` take it as is), with
    ``clean`` and ``degraded`` decoded from the files on access (uint8 ``(C, H, W)``).

    Attributes:
        folder: where the pairs come from.
        groups: ``{group: level}`` of the groups found, easiest first.
        sizes: ``(h, w)`` of every pair, from the file headers.
        inputs: the input file of every pair (``names`` are ``<group>/<id>``).
    """

    folder: str = ""
    groups: dict[str, int] = field(default_factory=dict)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)

    def batches(self, batch_size: int, rank: int = 0, world: int = 1) -> list[list[int]]:
        """Pairs of equal size in batches of at most ``batch_size`` (in order of first
        appearance, pairs in set order); rank ``rank`` of ``world`` takes every
        ``world``-th batch, so every pair is scored once."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for k, hw in enumerate(self.sizes):
            by_size.setdefault(hw, []).append(k)
        n = max(1, int(batch_size))
        out = [rows[i : i + n] for rows in by_size.values() for i in range(0, len(rows), n)]
        return out[rank::world]


def _numbered(folder: Path, role: str) -> dict[int, Path]:
    """``{id: file}`` of the images of one group folder, named ``<id>_<role>`` or ``<id>``."""
    pattern = re.compile(rf"(\d+)(?:_{role})?")
    found: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith(".") or not p.is_file() or not has_image_extension(p):
            continue
        m = pattern.fullmatch(p.stem)
        if m is None:
            raise DataError(
                f"'{p}' is not named <id>_{role}{p.suffix} (or <id>{p.suffix}), so it cannot be "
                f"paired with its {'ground truth' if role == 'in' else 'input'} by number: "
                "rename it, or move it out of the folder."
            )
        i = int(m.group(1))
        if i in found:
            raise DataError(
                f"'{found[i]}' and '{p}' are both {_ROLES[role]} {i}: keep one of them "
                "(move the other out of the folder)."
            )
        found[i] = p
    return found


def _groups(folder: Path, names: Mapping[str, int]) -> dict[str, dict[str, Path]]:
    """``{group: {"in": dir, "gt": dir}}`` of the group folders, in level order."""
    groups: dict[str, dict[str, Path]] = {}
    for d in sorted(folder.iterdir()):
        m = _GROUP_DIR.fullmatch(d.name)
        if d.name.startswith(".") or not d.is_dir() or m is None:
            continue
        group = m.group("group")
        if group not in names:
            valid = ", ".join(f"{n}_in/{n}_gt (level {lv})" for n, lv in names.items())
            raise ConfigError(
                f"'{d}' is a group folder of '{group}', which is not a level name of this task: "
                f"the valid group folders are {valid}. Rename or remove it (or give the "
                "degradation level_names that include it)."
            )
        groups.setdefault(group, {})[m.group("role")] = d
    for group, dirs in groups.items():
        for role in _ROLES:
            if role not in dirs:
                other = "gt" if role == "in" else "in"
                raise DataError(
                    f"'{dirs[other]}' has no partner folder '{folder / f'{group}_{role}'}' with "
                    f"its {_ROLES[role]} images: add it, or remove '{dirs[other].name}'."
                )
    return dict(sorted(groups.items(), key=lambda kv: names[kv[0]]))


def read_premade_pairs(
    folder: str | os.PathLike, degradation: Any, channels: int, name: str = "premade"
) -> PremadePairs:
    """Pair the files of ``folder`` (RL-Restore's layout) into a :class:`PremadePairs`.

    Args:
        folder: the folder holding ``<group>_in/`` and ``<group>_gt/`` folders.
        degradation: the task's; its ``level_names`` (else mild/moderate/severe) give
            each group's level, its ladder checks the levels and gives the severities.
        channels: 1 (grey) or 3 (RGB), as the source's.
        name: the test set's name, for messages (``data.premade_pairs.<name>``).

    Raises:
        DataError: a missing folder, no group folders, a group without its partner folder
            or images, an unpaired or misnamed file, two files with one number, a pair of
            different sizes, an unreadable header.
        ConfigError: a group folder whose name is not a level name; a level outside the
            task's ladder.
    """
    key = f"data.premade_pairs.{name}"
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(
            f"pre-made test pairs '{root}' ({key}) is not a folder: set {key}=<folder holding "
            "mild_in/ and mild_gt/, moderate_in/ ... (RL-Restore's test sets)>, or drop the "
            f"entry from data.premade_pairs."
        )
    names = level_names(degradation)
    groups = _groups(root, names)
    if not groups:
        raise DataError(
            f"'{root}' ({key}) holds no group folders: expected "
            f"{', '.join(f'{n}_in/ + {n}_gt/' for n in names)} (RL-Restore's layout: "
            "mild_in/1_in.png with mild_gt/1_gt.png)."
        )
    levels = {g: names[g] for g in groups}
    try:
        degradation.ladder.check_levels(list(levels.values()))
    except LevelError as exc:
        raise ConfigError(
            f"{key}: the groups {levels} name levels outside the task's ladder ({exc}): use "
            "a task with these levels, or remove those group folders."
        ) from None
    clean, degraded, level, params, pair_names, sizes, inputs = [], [], [], [], [], [], []
    digest = hashlib.sha256(f"premade channels={int(channels)}".encode())
    for group, dirs in groups.items():
        files = {role: _numbered(dirs[role], role) for role in _ROLES}
        lone = sorted(set(files["in"]) ^ set(files["gt"]))
        if lone:
            role = "in" if lone[0] in files["in"] else "gt"
            other = "gt" if role == "in" else "in"
            raise DataError(
                f"'{files[role][lone[0]]}' has no partner in '{dirs[other]}' ({len(lone)} "
                f"unpaired file(s) in group '{group}'): every input <id>_in.png needs its "
                "ground truth <id>_gt.png. Add the partner or remove the file."
            )
        if not files["in"]:
            raise DataError(
                f"group '{group}' of '{root}' has no images in {dirs['in'].name}/ and "
                f"{dirs['gt'].name}/: add the pairs, or remove the two empty folders."
            )
        lv = levels[group]
        lo, hi = degradation.ladder.bounds(lv)
        severity = torch.tensor((lo + hi) / 2, dtype=torch.float32)
        for i in sorted(files["in"]):
            path_in, path_gt = files["in"][i], files["gt"][i]
            hw_in, hw_gt = read_size(path_in), read_size(path_gt)
            if hw_in != hw_gt:
                raise DataError(
                    f"'{path_in}' is {hw_in[0]}x{hw_in[1]} but its ground truth '{path_gt}' is "
                    f"{hw_gt[0]}x{hw_gt[1]} (HxW): a pre-made pair must be aligned, the same "
                    "size. Replace one of them, or remove the pair."
                )
            for role, path in (("in", path_in), ("gt", path_gt)):
                digest.update(f"{group}/{i}/{role}".encode())
                digest.update(hashlib.sha256(path.read_bytes()).digest())
            clean.append(path_gt)
            degraded.append(path_in)
            level.append(lv)
            params.append({"level": torch.tensor(lv), "severity": severity})
            pair_names.append(f"{group}/{i}")
            sizes.append(hw_in)
            inputs.append(str(path_in))
    return PremadePairs(
        clean=_LazyImages(clean, channels),  # type: ignore[arg-type]
        degraded=_LazyImages(degraded, channels),  # type: ignore[arg-type]
        level=level,
        params=params,
        names=pair_names,
        checksum=digest.hexdigest(),
        folder=str(root),
        groups=levels,
        sizes=sizes,
        inputs=inputs,
    )
