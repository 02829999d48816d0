"""Results files: ``results.json`` / ``results.md`` / ``results.csv`` and ``allocation.csv``.

Pure functions over plain dicts, shared by training (after its test) and by any
later evaluation entry point.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightrestore.degradations.base import Ladder
from lightrestore.storage.atomic import atomic_write_json, atomic_write_text

METRICS = ("psnr", "ssim", "l1", "l2")
#: inpainting / interpolation: the missing region only (DL-Net's Table 2 protocol)
REGION_METRICS = ("missing_psnr", "missing_l1", "missing_l2")
#: optional measures (``metrics=lpips_alex``): written only when the rows carry them
OPTIONAL_METRICS = ("lpips",)
LPIPS_NOTE = "LPIPS: learned perceptual distance (Zhang et al. 2018), lower is better."
#: ``results.json`` ``lpips_protocol`` (apart from ``protocol``, which groups comparable runs:
#: a run scored with LPIPS stays comparable in PSNR with one scored without)
LPIPS_PROTOCOL = (
    "LPIPS v0.1 (Zhang et al. 2018; lower is better; backbone: {net}) on all channels of the "
    "whole clamped output (no border crop, no rounding; grey images repeated to 3 channels), "
    "images mapped to [-1, 1], per-image values averaged over the level's pairs."
)

PROTOCOL = (
    "Fixed seeded pairs per level generated on the CPU (same clean patches at every level); "
    "images in [0, 1]; {space}; PSNR with data range 1 (capped at 100 dB); SSIM with an "
    "11x11 Gaussian window (sigma 1.5, K1 0.01, K2 0.03) averaged over the valid region "
    "(scikit-image convention); L1/L2 are per-image means; every value is the mean over the "
    "level's pairs. 'mean' averages the training levels 1..N; level N+1 is the unseen extra level."
)


def level_table(
    metrics: Mapping[int, Mapping[str, float]],
    ladder: Ladder,
    input_metrics: Mapping[int, Mapping[str, float]] | None = None,
) -> dict[str, Any]:
    """``{"levels": {level: row}, "mean_train_levels": {...}, "train_levels": [...]}``.

    A row holds the level's ``range``, whether it is the ``extra`` level, ``psnr``,
    ``ssim``, ``l1``, ``l2``, ``count`` and, when given, the degraded input's PSNR.
    """
    levels: dict[str, Any] = {}
    for lv in sorted(metrics):
        row: dict[str, Any] = {"range": ladder.describe(lv), "extra": lv == ladder.extra_level}
        row.update({m: float(metrics[lv][m]) for m in METRICS})
        row.update({m: float(metrics[lv][m]) for m in REGION_METRICS if m in metrics[lv]})
        row.update({m: float(metrics[lv][m]) for m in OPTIONAL_METRICS if m in metrics[lv]})
        row["count"] = int(metrics[lv]["count"])
        if input_metrics and lv in input_metrics:
            row["input_psnr"] = float(input_metrics[lv]["psnr"])
        levels[str(lv)] = row
    train = sorted(lv for lv in metrics if lv <= ladder.n_levels)
    mean = {m: sum(float(metrics[lv][m]) for lv in train) / len(train) for m in METRICS}
    for m in (*REGION_METRICS, *OPTIONAL_METRICS):
        if train and all(m in metrics[lv] for lv in train):
            mean[m] = sum(float(metrics[lv][m]) for lv in train) / len(train)
    return {"levels": levels, "mean_train_levels": mean if train else {}, "train_levels": train}


def build_results(
    metrics: Mapping[int, Mapping[str, float]],
    ladder: Ladder,
    *,
    input_metrics: Mapping[int, Mapping[str, float]] | None = None,
    checksum: str | None = None,
    per_level: int | None = None,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    outputs: Mapping[str, Mapping[str, Mapping[int, Mapping[str, float]]]] | None = None,
    checksums: Mapping[str, str | None] | None = None,
    extra: Mapping[str, Any] | None = None,
    space: str = "PSNR/SSIM/L1/L2 on all channels",
    lpips_net: str | None = None,
) -> dict[str, Any]:
    """The ``results.json`` document.

    Args:
        metrics: ``{level: {"psnr", "ssim", "l1", "l2", "count"}}``.
        ladder: the task's ladder (ranges, which level is extra).
        input_metrics: the same for the degraded inputs (identity baseline).
        checksum: the test set's checksum.
        per_level: pairs per level.
        variants: extra test sets, ``{name: {"levels": metrics, "input": metrics,
            "checksum": str}}`` (e.g. centred holes).
        outputs: every scored output of the method, ``{test set: {output: metrics}}``;
            all but ``restored`` (the headline above) are written under
            ``doc["outputs"][output][test set]`` (e.g. ``input``, ``after_F``, ``G_1``).
        checksums: ``{test set: checksum}`` for the tables of ``outputs``.
        extra: anything else to record (experiment, method, data description...).
        space: how the metrics were measured (channels, border), for the protocol.
        lpips_net: the LPIPS backbone (``alex`` | ``vgg``) when rows carry ``lpips``: named in
            ``lpips_protocol``, kept apart from ``protocol`` so runs with and without LPIPS
            stay comparable (one table) in the report.
    """
    doc: dict[str, Any] = dict(extra or {})
    doc.update(level_table(metrics, ladder, input_metrics))
    doc["extra_level"] = ladder.extra_level
    doc["test_set"] = {"checksum": checksum, "per_level": per_level}
    if variants:
        doc["variants"] = {
            name: {
                **level_table(v["levels"], ladder, v.get("input")),
                "test_set": {"checksum": v.get("checksum"), "per_level": per_level},
            }
            for name, v in variants.items()
        }
    named: dict[str, dict[str, Any]] = {}
    for test_set, by_output in (outputs or {}).items():
        for name, levels in by_output.items():
            if name == "restored" or not levels:
                continue
            named.setdefault(name, {})[test_set] = {
                **level_table(levels, ladder),
                "test_set": {"checksum": (checksums or {}).get(test_set), "per_level": per_level},
            }
    if named:
        doc["outputs"] = named
    doc["protocol"] = PROTOCOL.format(space=space) + data_protocol(doc.get("data"))
    if "lpips" in _row_keys(doc):
        names = {"alex": "AlexNet", "vgg": "VGG16"}
        net = names.get(str(lpips_net), "the run's metrics.lpips.net")
        doc["lpips_protocol"] = LPIPS_PROTOCOL.format(net=net)
    return doc


def level_tables(doc: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """Every per-level table of a results document as ``(test set, output, table)``:
    ``restored`` on the default test set first, then on the variants, then the other
    outputs (``input``, ``after_F``, ``G_1``, ...) on each test set; tables without levels
    left out."""
    out = [(v, "restored", t) for v, t in {"default": doc, **(doc.get("variants") or {})}.items()]
    for output, by_set in (doc.get("outputs") or {}).items():
        out += [(v, output, t) for v, t in by_set.items()]
    return [(v, o, t) for v, o, t in out if t.get("levels")]


def _row_keys(doc: Mapping[str, Any]) -> set[str]:
    """The measures any level row of any table of ``doc`` carries."""
    return {k for _, _, t in level_tables(doc) for r in t["levels"].values() for k in r}


def data_protocol(data: Mapping[str, Any] | None) -> str:
    """What the data description adds to the protocol: the embedded photos' region split
    and a colour conversion (Y-channel SR models), as sentences ('' when neither)."""
    if not isinstance(data, Mapping):
        return ""
    out = ""
    source = data.get("source") or {}
    if source.get("split_mode") == "regions":
        out += (
            " Every embedded photo contributes to every split: disjoint regions of each photo "
            f"(train / val / test shares {source.get('fractions')}) separated by a guard band "
            f"of {source.get('guard')} px, wider than a crop."
        )
    if data.get("colour") == "ycbcr_y":
        out += (
            " Images are the BT.601 studio-range Y of the RGB images (MATLAB rgb2ycbcr, uint8) "
            "for training and testing: a Y-channel model."
        )
    return out


def _table(doc: Mapping[str, Any]) -> list[str]:
    has_input = any("input_psnr" in r for r in doc["levels"].values())
    has_missing = any("missing_psnr" in r for r in doc["levels"].values())
    has_lpips = any("lpips" in r for r in doc["levels"].values())
    head = ["level", "range", "PSNR", "SSIM", "L1", "L2"]
    head += ["LPIPS", "count"] if has_lpips else ["count"]
    head += ["input PSNR"] if has_input else []
    head += ["PSNR missing", "L1 missing"] if has_missing else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lv, r in doc["levels"].items():
        name = f"{lv} (extra)" if r.get("extra") else lv
        cells = [name, r["range"], f"{r['psnr']:.2f}", f"{r['ssim']:.4f}", f"{r['l1']:.4f}",
                 f"{r['l2']:.5f}"]  # fmt: skip
        if has_lpips:
            cells.append(f"{r['lpips']:.4f}" if "lpips" in r else "")
        cells.append(str(r["count"]))
        if has_input:
            cells.append(f"{r['input_psnr']:.2f}" if "input_psnr" in r else "")
        if has_missing:
            cells += [f"{r['missing_psnr']:.2f}", f"{r['missing_l1']:.4f}"] if "missing_psnr" in r else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    m = doc.get("mean_train_levels") or {}
    if m:
        tl = doc.get("train_levels") or []
        span = f"{tl[0]}-{tl[-1]}" if tl else ""
        cells = [f"mean {span}", "", f"{m['psnr']:.2f}", f"{m['ssim']:.4f}", f"{m['l1']:.4f}",
                 f"{m['l2']:.5f}"]  # fmt: skip
        if has_lpips:
            cells.append(f"{m['lpips']:.4f}" if "lpips" in m else "")
        cells += [""] + ([""] if has_input else [])
        if has_missing:
            cells += [f"{m['missing_psnr']:.2f}", f"{m['missing_l1']:.4f}"] if "missing_psnr" in m else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    checksum = (doc.get("test_set") or {}).get("checksum")
    if checksum:
        lines += ["", f"test set checksum: `{checksum[:16]}`"]
    if has_lpips:
        lines += ["", LPIPS_NOTE]
    return lines


def results_markdown(doc: Mapping[str, Any], title: str | None = None) -> str:
    """Markdown tables of a results document: one row per level, then the mean; one
    table per test variant."""
    lines = [f"### {title}", ""] if title else []
    lines += _table(doc)
    for name, variant in (doc.get("variants") or {}).items():
        lines += ["", f"#### test variant: {name}", ""] + _table(variant)
    for output, by_set in (doc.get("outputs") or {}).items():
        if output == "input":  # already the table's input PSNR column
            continue
        for test_set, table in by_set.items():
            lines += ["", f"#### output: {output} ({test_set} test set)", ""] + _table(table)
    verdict = verdict_lines(doc)
    return "\n".join(lines + ([""] + verdict if verdict else [])) + "\n"


def _mean_psnr(table: Mapping[str, Any]) -> float | None:
    mean = table.get("mean_train_levels") or {}
    return float(mean["psnr"]) if mean.get("psnr") is not None else None


def verdict_lines(doc: Mapping[str, Any]) -> list[str]:
    """What a reader needs beside the tables: which outputs beat the corrupted input
    (mean PSNR over the training levels, and per level), and how far the training budget
    is from the paper's (``doc["paper_budget"]``: ``steps``, ``batch_size``, ``what``)."""
    out: list[str] = []
    inputs = (doc.get("outputs") or {}).get("input", {}).get("default")
    base = _mean_psnr(inputs) if inputs else None
    if base is not None:
        tables = {"restored": doc}
        tables.update({o: t["default"] for o, t in (doc.get("outputs") or {}).items()
                       if o != "input" and "default" in t})  # fmt: skip
        parts = []
        for name, table in tables.items():
            mean = _mean_psnr(table)
            if mean is None:
                continue
            ahead = [lv for lv, r in table["levels"].items()
                     if r.get("psnr") is not None and lv in inputs["levels"]
                     and r["psnr"] > (inputs["levels"][lv].get("psnr") or float("inf"))]  # fmt: skip
            levels = ", ".join(ahead) if ahead else "none"
            word = "better than" if mean > base else "not yet better than"
            parts.append(f"{name} {mean:.2f} dB ({mean - base:+.2f}: {word} the input; "
                         f"ahead of the input at levels: {levels})")  # fmt: skip
        tl = doc.get("train_levels") or []
        span = f"{tl[0]}-{tl[-1]}" if tl else ""
        out.append(f"Against the corrupted input ({base:.2f} dB, mean PSNR of levels {span}): "
                   + "; ".join(parts) + ".")  # fmt: skip
    budget, steps, batch = doc.get("paper_budget"), doc.get("global_step"), doc.get("batch_size")
    if budget and steps and batch:
        paper = int(budget["steps"]) * int(budget["batch_size"])
        out.append(
            f"Training budget: {steps:,} optimisation steps of batch {batch} ({steps * batch:,} "
            f"images), {100 * steps * batch / paper:.3g} % of the paper's {int(budget['steps']):,} "
            f"steps of batch {budget['batch_size']} ({budget.get('what', '')})."
        )
    return out


def results_csv(doc: Mapping[str, Any]) -> str:
    """One row per (test set, output, level): ``restored`` first, then the other outputs."""
    buf = io.StringIO()
    w = csv.writer(buf)
    optional = [m for m in OPTIONAL_METRICS if m in _row_keys(doc)]  # lpips: lower is better
    w.writerow(["variant", "output", "level", "range", "extra", *METRICS, "count", "input_psnr",
                *REGION_METRICS, *optional])  # fmt: skip
    for variant, output, table in level_tables(doc):
        for lv, r in table["levels"].items():
            extra = int(bool(r.get("extra")))
            values = [r[m] for m in METRICS]
            inp = r.get("input_psnr", "")
            region = [r.get(m, "") for m in REGION_METRICS]
            more = [r.get(m, "") for m in optional]
            w.writerow([variant, output, lv, r["range"], extra, *values, r["count"], inp, *region,
                        *more])  # fmt: skip
    return buf.getvalue()


def write_results(run_dir: str | Path, doc: Mapping[str, Any], title: str | None = None) -> str:
    """Write results.json / results.md / results.csv atomically; return the Markdown."""
    run_dir = Path(run_dir)
    md = results_markdown(doc, title)
    atomic_write_json(run_dir / "results.json", doc)
    atomic_write_text(run_dir / "results.md", md)
    atomic_write_text(run_dir / "results.csv", results_csv(doc))
    return md


def allocation_csv(rows: Sequence[Mapping[str, Any]], n_levels: int, world_size: int = 1) -> str:
    """``epoch, weight_1..N, images_1..N`` per training epoch.

    ``rows`` are one process's sampler history. Under DDP every rank assigns the same
    levels (same sampler seed, same weights, same number of equal-sized batches), so
    the images of the whole run are ``world_size`` times one rank's.
    """
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "epoch",
            *(f"weight_{i}" for i in range(1, n_levels + 1)),
            *(f"images_{i}" for i in range(1, n_levels + 1)),
        ]
    )
    for r in rows:
        images = [n * world_size for n in r["images"]]
        w.writerow([r["epoch"], *(f"{v:.6f}" for v in r["weights"]), *images])
    return buf.getvalue()
