"""``whole_images.{json,md,csv}``: per-image results of whole-image evaluation (ODL Table 3)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightrestore.storage.atomic import atomic_write_json, atomic_write_text

COLUMNS = ("image", "severity", "height", "width", "input_psnr", "psnr", "ssim")


def means(rows: list[Mapping[str, Any]]) -> dict[float, dict[str, float]]:
    """``{severity: {"input_psnr", "psnr", "ssim", "images"}}``: the mean over images."""
    out: dict[float, dict[str, float]] = {}
    for sev in sorted({r["severity"] for r in rows}):
        sel = [r for r in rows if r["severity"] == sev]
        out[sev] = {k: sum(r[k] for r in sel) / len(sel) for k in ("input_psnr", "psnr", "ssim")}
        out[sev]["images"] = len(sel)
    return out


def whole_image_markdown(doc: Mapping[str, Any]) -> str:
    lines = ["| image | severity | size | input PSNR | PSNR | SSIM |", "|---|---|---|---|---|---|"]
    for r in doc["rows"]:
        lines.append(f"| {r['image']} | {r['severity']:g} | {r['width']}x{r['height']} | "
                     f"{r['input_psnr']:.2f} | {r['psnr']:.2f} | {r['ssim']:.4f} |")  # fmt: skip
    for sev, m in means(doc["rows"]).items():
        lines.append(f"| mean of {m['images']} | {sev:g} |  | {m['input_psnr']:.2f} | "
                     f"{m['psnr']:.2f} | {m['ssim']:.4f} |")  # fmt: skip
    return "\n".join(lines + ["", f"Protocol: {doc['protocol']}."]) + "\n"


def write_whole_image_tables(out_dir: Path, doc: Mapping[str, Any]) -> str:
    """Write the three files atomically; return the Markdown."""
    doc = {**doc, "means": {f"{k:g}": v for k, v in means(doc["rows"]).items()}}
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(COLUMNS)
    for r in doc["rows"]:
        w.writerow([r[c] for c in COLUMNS])
    md = whole_image_markdown(doc)
    atomic_write_json(out_dir / "whole_images.json", doc)
    atomic_write_text(out_dir / "whole_images.csv", buf.getvalue())
    atomic_write_text(out_dir / "whole_images.md", md)
    return md
