"""LIRA's Table 4 layout: old-task and new-task PSNR / SSIM per level group, one row per run.

A lifelong run (:class:`~lightrestore.methods.lira_incremental.LiraIncremental` and its
baselines) scores two outputs on two test sets: ``old_task`` (the base network) on the old
task's test set (the task's ``old`` variant: the blended distortion without the new factor)
and ``new_task`` (the expanded network) on the default test set (with it). The table puts
them side by side per level (mild / moderate / severe for the ``blended_*`` tasks: the
levels' ``range`` in results.json names them), cells ``PSNR / SSIM``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

#: (column, output, test set) of each half of a cell pair
HALVES = (("old", "old_task", "old"), ("new", "new_task", "default"))


def _rows(doc: dict[str, Any], output: str, test_set: str) -> dict[str, Any]:
    return (((doc.get("outputs") or {}).get(output) or {}).get(test_set) or {}).get("levels") or {}


def is_lifelong(doc: dict[str, Any] | None) -> bool:
    """True when the run scored both halves of Table 4."""
    return bool(doc) and all(_rows(doc, out, ts) for _, out, ts in HALVES)


def _levels(runs: Sequence[Any]) -> list[tuple[int, str]]:
    """``[(level, its name)]`` over the runs (the name: the level's ``range``)."""
    names: dict[int, str] = {}
    for r in runs:
        for _, out, ts in HALVES:
            for lv, row in _rows(r.doc, out, ts).items():
                names.setdefault(int(lv), str(row.get("range") or f"L{lv}"))
    return sorted(names.items())


def _cell(doc: dict[str, Any], output: str, test_set: str, level: int) -> str:
    row = _rows(doc, output, test_set).get(str(level)) or _rows(doc, output, test_set).get(level)
    if not row or row.get("psnr") is None:
        return ""
    return f"{float(row['psnr']):.2f}/{float(row['ssim']):.4f}"


def lifelong_block(runs: Sequence[Any], heading: str = "##") -> list[str]:
    """Markdown lines of the table (nothing when no run is lifelong)."""
    runs = [r for r in runs if is_lifelong(r.doc)]
    if not runs:
        return []
    levels = _levels(runs)
    head = ["run"] + [f"{name} {half}" for _, name in levels for half, _, _ in HALVES]
    out = [
        f"{heading} Old and new task (LIRA Table 4): PSNR/SSIM per level",
        "",
        "old: output old_task (the base network) on the old task's test set (variant `old`); "
        "new: output new_task (the expanded network) on the default test set.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in runs:
        cells = [r.label] + [
            _cell(r.doc, out_, ts, lv) for lv, _ in levels for _, out_, ts in HALVES
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def lifelong_csv(runs: Sequence[Any]) -> str:
    """Long format: run, level, range, half (old / new), psnr, ssim, path."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", "level", "range", "half", "psnr", "ssim", "path"])
    for r in runs:
        if not is_lifelong(r.doc):
            continue
        for half, output, test_set in HALVES:
            for lv, row in sorted(
                _rows(r.doc, output, test_set).items(), key=lambda kv: int(kv[0])
            ):
                w.writerow([r.label, lv, row.get("range", ""), half, row.get("psnr"),
                            row.get("ssim"), str(r.path)])  # fmt: skip
    return buf.getvalue()
