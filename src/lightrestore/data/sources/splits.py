"""How a folder's images are split into train / val / test: the rules' parameters.

Checks for ``counts`` and ``fractions``, :func:`fraction_sizes` (the seeded-fractions
split sizes), the precedence of the split rules (:data:`_MODE_RANK`: lists >
partition_file > subfolders > counts > fractions) and the CelebA-style partition file
format. :class:`~lightrestore.data.sources.folder.FolderSource` applies them; the
embedded data set's fixed split is in :mod:`~lightrestore.data.sources.embedded`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from lightrestore.data.sources.base import SPLITS
from lightrestore.data.sources.folder_scan import _read_lines
from lightrestore.errors import ConfigError, DataError


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
