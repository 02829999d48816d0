"""One self-contained HTML report of a sweep: ``python -m lightrestore.report DIR... --html``.

The page holds everything ``summary.md`` holds and what a reader of a single file needs
beside it, with no external reference (inline CSS, figures as ``data:image/png`` URIs, no
scripts), so it can be mailed or attached to a review and read offline:

- a header: title, date, the folders given, how many runs are complete / incomplete;
- the incomplete runs (no ``results.json``): their folder and what they left (the last
  checkpoint, the last epoch in ``csv/metrics.csv``, sample grids);
- one section per (task, protocol) group (:func:`~lightrestore.reporting.report.groups_of`;
  runs of different tasks or metric spaces are never in one table): the per-level tables
  of every measure the rows carry (rows: runs, or policies as mean ± SE over seeds), one
  per test set and per scored output, the test-settings, t-test and lifelong tables of
  the Markdown summary, the PSNR-vs-level figure, then one sub-section per run (protocol,
  test-set checksum, data description, seed, overrides, training curves, allocation and
  its last validation sample grid).

The numbers come from the data functions of :mod:`lightrestore.reporting.report`; this
module only lays them out.
"""

from __future__ import annotations

import base64
import csv
import datetime as _dt
import html
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from lightrestore.reporting.convergence import read_metrics
from lightrestore.reporting.lifelong import lifelong_block
from lightrestore.reporting.report import (
    METRICS,
    NoRunsError,
    Run,
    _block_name,
    _extra_outputs,
    _images,
    _levels,
    _num,
    _over_seeds,
    _pm,
    _settings_block,
    _train_mean,
    _ttest_block,
    find_runs,
    groups_of,
    level_curves,
    seed_policies,
)
from lightrestore.reporting.results import data_protocol
from lightrestore.storage.atomic import atomic_write_text

#: keys of a per-level row that are not measures
NOT_MEASURES = frozenset({"count", "range", "extra"})

#: readable names of the usual measures (any other key is shown as it is spelled)
MEASURE_NAMES = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "l1": "L1",
    "l2": "L2",
    "input_psnr": "input PSNR (dB, no restoration)",
}

#: sample grids larger than this (pixels on the longer side) are downscaled
MAX_IMAGE_SIDE = 1400
#: image files larger than this (bytes) are downscaled and re-encoded
MAX_IMAGE_BYTES = 400_000

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       max-width: 1300px; padding: 1em 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 2px solid #446; padding-bottom: 0.2em;
margin-top: 2em; } h3 { margin-top: 1.6em; } h4 { margin: 1.2em 0 0.4em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 2px 7px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
thead th { background: #eef; position: sticky; top: 0; }
tr.m-psnr td { background: #f6f8ff; font-weight: 600; }
caption { text-align: left; font-weight: 600; padding: 0.3em 0; }
code { background: #f3f3f3; padding: 0 3px; word-break: break-all; }
.meta th { text-align: left; background: #f7f7f7; vertical-align: top; white-space: nowrap; }
.meta td { max-width: 950px; }
.incomplete { background: #fff4e5; border: 1px solid #f0a030; padding: 0.5em 1.5em; }
.badge { font-size: 12px; padding: 1px 6px; border-radius: 3px; color: #fff; }
.badge.ok { background: #3a3; } .badge.bad { background: #d60; }
figure { margin: 0.6em 0; } figcaption { font-size: 12px; color: #555; }
img.grid { image-rendering: pixelated; }
section.run { border-left: 3px solid #ccd; padding-left: 1em; margin: 1.5em 0; }
.note { color: #555; }
"""


def _e(value: Any) -> str:
    """``value`` as HTML-escaped text."""
    return html.escape(str(value), quote=True)


# ----------------------------------------------------------------------------- numbers


def _digits(measure: str) -> int:
    """Decimals of a measure, as in results.md: 2 for PSNR, 5 for L2, else 4."""
    if "psnr" in measure:
        return 2
    if measure == "l2" or measure.endswith("_l2"):
        return 5
    return 4


def measure_name(measure: str) -> str:
    """The readable name of a measure key (``psnr`` -> ``PSNR (dB)``)."""
    return MEASURE_NAMES.get(measure, measure)


def _is_measure(key: str, value: Any) -> bool:
    if key in NOT_MEASURES or isinstance(value, bool):
        return False
    return value is None or isinstance(value, (int, float))


def measures_of(tables: Iterable[dict[str, Any]]) -> list[str]:
    """Every numeric measure key of the rows of ``tables`` (``{level: row}`` each):
    psnr, ssim, l1, l2 first, then any other (``missing_psnr``, ``lpips``, ...) sorted,
    the input baseline ``input_psnr`` last."""
    keys: set[str] = set()
    for rows in tables:
        for row in rows.values():
            keys |= {k for k, v in row.items() if _is_measure(k, v)}
    rest = sorted(k for k in keys if k not in METRICS and k != "input_psnr")
    return (
        [m for m in METRICS if m in keys] + rest + (["input_psnr"] if "input_psnr" in keys else [])
    )


def _run_mean(run: Run, measure: str, variant: str | None, output: str) -> float | None:
    """The run's mean of ``measure`` over the training levels (None when a row lacks it)."""
    try:
        return _train_mean(run, measure, variant, output)
    except (KeyError, TypeError, ValueError):
        return None


# ----------------------------------------------------------------------------- tables


def _level_head(levels: list[int], extra: int | None, ranges: dict[int, str]) -> list[str]:
    out = []
    for lv in levels:
        text = f"L{lv}" + (" (extra)" if lv == extra else "")
        if ranges.get(lv):
            text = f"{_e(text)}<br><small>{_e(ranges[lv])}</small>"
        else:
            text = _e(text)
        out.append(text)
    return out


def level_table_html(
    entities: Sequence[tuple[str, Sequence[Run]]],
    variant: str | None = None,
    output: str = "restored",
    over_seeds: bool = False,
) -> str:
    """One table of ``output`` on the test set ``variant``: a row per entity (a run, or a
    policy over seeds: ``(name, runs)``) and measure, a column per level then the mean
    over the training levels (cells ``mean ± SE`` over the entity's runs when
    ``over_seeds``). '' when no run scored it."""
    runs = [r for _, members in entities for r in members]
    tables = [_levels(r.doc, variant, output) for r in runs]
    levels = sorted({int(lv) for t in tables for lv in t})
    if not levels:
        return ""
    extra = runs[0].doc.get("extra_level")
    train = [lv for lv in levels if lv != extra]
    ranges: dict[int, str] = {}
    for t in tables:
        for lv, row in t.items():
            ranges.setdefault(int(lv), str(row.get("range") or ""))
    measures = measures_of(tables)
    span = f"mean {train[0]}-{train[-1]}" if train else "mean"
    head = ["policy" if over_seeds else "run", "measure", *_level_head(levels, extra, ranges)]
    head += [_e(span)] + (["n"] if over_seeds else [])
    title = _block_name(variant, output) + (" (mean ± SE over seeds)" if over_seeds else "")
    rows = []
    for name, members in entities:
        present = [r for r in members if _levels(r.doc, variant, output)]
        if not present:
            continue
        for i, m in enumerate(measures):
            digits = _digits(m)
            cells = []
            for lv in levels:
                values = []
                for r in present:
                    row = _levels(r.doc, variant, output).get(str(lv)) or {}
                    if m in row:
                        values.append(_num(row[m]))
                cells.append(_pm(values, digits))
            means = [v for r in present if (v := _run_mean(r, m, variant, output)) is not None]
            cells.append(_pm(means, digits) if train else "")
            first = (
                f'<th rowspan="{len(measures)}" scope="rowgroup">{_e(name)}</th>' if i == 0 else ""
            )
            tds = "".join(f'<td class="num">{_e(c)}</td>' for c in cells)
            n = f'<td class="num">{len(present)}</td>' if over_seeds else ""
            css = re.sub(r"[^a-z0-9_-]", "", m.lower())
            rows.append(f'<tr class="m-{css}">{first}<td>{_e(measure_name(m))}</td>{tds}{n}</tr>')
    if not rows:
        return ""
    attrs = f'data-test-set="{_e(variant or "default")}" data-output="{_e(output)}"'
    return (
        f'<table class="levels" {attrs}><caption>{_e(title)}</caption>'
        f"<thead><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _inline(text: str) -> str:
    """Escaped text with Markdown's ``code`` spans as <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", _e(text))


def markdown_block_html(lines: Sequence[str]) -> str:
    """A block of the Markdown summary (headings, paragraphs, one pipe table) as HTML, so
    the HTML shows the very tables and notes of ``summary.md`` (test settings, t-test,
    lifelong)."""
    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            head, *body = table
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head))
            out.append("</tr></thead><tbody>")
            for row in body:
                tds = "".join(f'<td class="num">{_inline(c)}</td>' for c in row[1:])
                out.append(f"<tr><th>{_inline(row[0] if row else '')}</th>{tds}</tr>")
            out.append("</tbody></table>")
            table.clear()

    for line in lines:
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        flush()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            out.append(f"<h{level}>{_inline(line.lstrip('#').strip())}</h{level}>")
        elif line.strip():
            out.append(f'<p class="note">{_inline(line)}</p>')
    flush()
    return "\n".join(out)


# ----------------------------------------------------------------------------- figures


def data_uri(png: bytes) -> str:
    """A ``data:image/png;base64,...`` URI of PNG bytes."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure(png: bytes | None, caption: str, css: str = "", width: int | None = None) -> str:
    if not png:
        return ""
    style = f' style="width:{width}px;max-width:100%"' if width else ' style="max-width:100%"'
    cls = f' class="{css}"' if css else ""
    return (
        f'<figure><img{cls}{style} alt="{_e(caption)}" src="{data_uri(png)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def compact_plot(png: bytes) -> bytes:
    """A matplotlib PNG with its colours reduced to a 256-colour palette: about a third of
    the bytes, no visible change for line plots (never used on sample grids)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        buf = io.BytesIO()
        im.convert("RGB").quantize(256).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def image_png(path: Path) -> tuple[bytes, tuple[int, int]] | None:
    """The image at ``path`` as PNG bytes and its (width, height): downscaled when larger
    than :data:`MAX_IMAGE_SIDE` or :data:`MAX_IMAGE_BYTES`, re-encoded when not a PNG;
    None when it cannot be read."""
    from PIL import Image

    try:
        raw = path.read_bytes()
        with Image.open(io.BytesIO(raw)) as im:
            im.load()
            big = max(im.size) > MAX_IMAGE_SIDE or len(raw) > MAX_IMAGE_BYTES
            if not big and im.format == "PNG":
                return raw, im.size
            im = im.convert("RGB") if im.mode not in ("RGB", "L") else im
            if big:
                scale = min(1.0, MAX_IMAGE_SIDE / max(im.size))
                if len(raw) > MAX_IMAGE_BYTES:
                    scale = min(scale, math.sqrt(MAX_IMAGE_BYTES / len(raw)))
                size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                im = im.resize(size, Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            im.save(buf, format="PNG", optimize=True)
            return buf.getvalue(), im.size
    except (OSError, ValueError):  # unreadable or not an image
        return None


def psnr_curves(members: Sequence[Run]) -> dict[str, dict[str, float]]:
    """The PSNR-vs-level curves of a group, as ``summary``'s figure draws them: one per
    run, or one per policy (the mean over its seeds, labelled with n); plus the corrupted
    input (``input_psnr``, the mean over the runs) when the rows hold it."""
    curves = level_curves(members)
    baseline: dict[str, list[float]] = {}
    for r in members:
        for lv, row in _levels(r.doc).items():
            if row.get("input_psnr") is not None:
                baseline.setdefault(lv, []).append(_num(row["input_psnr"]))
    if baseline:
        curves["input (no restoration)"] = {lv: sum(v) / len(v) for lv, v in baseline.items()}
    return curves


def _psnr_figure(members: Sequence[Run], title: str) -> str:
    from lightrestore.reporting.plotting import plot_psnr_vs_level, png_bytes

    curves = psnr_curves(members)
    if not any(curves.values()):
        return ""
    extra = members[0].doc.get("extra_level")
    png = compact_plot(png_bytes(plot_psnr_vs_level, curves, extra_level=extra, title=title))
    return _figure(png, "Test PSNR against the level, default test set (dashed line: extra level)")


def _per_epoch(rows: Sequence[dict[str, str]], column: str) -> list[tuple[float, float]]:
    """``[(epoch, mean of the column's values logged in that epoch)]``."""
    values: dict[int, list[float]] = {}
    for row in rows:
        value, epoch = row.get(column), row.get("epoch")
        if value in (None, "") or epoch in (None, ""):
            continue
        try:
            values.setdefault(int(float(epoch)), []).append(float(value))
        except ValueError:
            continue
    return [(e, sum(v) / len(v)) for e, v in sorted(values.items())]


def training_curves(
    rows: Sequence[dict[str, str]],
) -> tuple[dict[str, list[tuple[float, float]]], dict[str, list[tuple[float, float]]]]:
    """From metrics.csv rows: the training losses per epoch (the ``train/*`` columns
    logged per epoch; else the per-step ``*_step`` ones averaged per epoch) and the
    validation PSNR per epoch (``val/psnr/mean`` and ``val/psnr/level_*``)."""
    columns = list(rows[0]) if rows else []
    train = [c for c in columns if c.startswith("train/") and not c.endswith("_step")]
    losses = {c: pts for c in train if (pts := _per_epoch(rows, c))}
    if not losses:
        steps = [c for c in columns if c.startswith("train/") and c.endswith("_step")]
        losses = {f"{c} (epoch mean)": pts for c in steps if (pts := _per_epoch(rows, c))}
    val_cols = [c for c in columns if c.startswith("val/psnr/")]
    val_cols.sort(key=lambda c: (c != "val/psnr/mean", c))
    val = {c: pts for c in val_cols if (pts := _per_epoch(rows, c))}
    return losses, val


def last_epoch(rows: Sequence[dict[str, str]]) -> int | None:
    """The last epoch with a training or validation value in metrics.csv rows (None when
    none; the test phase after training logs one epoch more)."""
    epochs = []
    for row in rows:
        if not any(v for k, v in row.items() if k and k.startswith(("train/", "val/"))):
            continue
        try:
            epochs.append(int(float(row.get("epoch") or "")))
        except ValueError:
            continue
    return max(epochs) if epochs else None


def read_allocation(run_dir: Path) -> list[dict[str, Any]]:
    """``<run>/allocation.csv`` as ``[{"epoch": e, "weights": [w_1, ...]}]`` ([] if absent)."""
    f = run_dir / "allocation.csv"
    if not f.is_file():
        return []
    out = []
    try:
        for row in csv.DictReader(f.read_text().splitlines()):
            cols = sorted(
                (k for k in row if k and k.startswith("weight_")), key=lambda k: int(k[7:])
            )
            out.append({"epoch": int(row["epoch"]), "weights": [float(row[k]) for k in cols]})
    except (OSError, KeyError, ValueError, csv.Error):
        return []
    return out


def _run_figures(run: Run) -> str:
    """A run's training curves, allocation plot and last validation sample grid."""
    from lightrestore.reporting.plotting import plot_allocation, plot_training_curves, png_bytes

    parts = []
    losses, val = training_curves(read_metrics(run.path))
    if losses or val:
        png = compact_plot(png_bytes(plot_training_curves, losses, val, title=run.label))
        parts.append(_figure(png, "Training loss and validation PSNR per epoch (csv/metrics.csv)"))
    allocation = read_allocation(run.path)
    if allocation:
        png = compact_plot(png_bytes(plot_allocation, allocation, title=f"allocation: {run.label}"))
        parts.append(
            _figure(png, "Share of each level in the training batches per epoch (allocation.csv)")
        )
    grid = last_grid(run.path)
    if grid is not None:
        image = image_png(grid)
        if image is not None:
            png, (w, _) = image
            caption = (
                f"{grid.parent.name}/{grid.name}: one row per validation level (level 1 at the "
                "top); per example: clean | corrupted | restored (| known pixels put back)"
            )
            parts.append(_figure(png, caption, "grid", width=min(900, w * 3)))
    return "\n".join(parts)


def last_grid(run_dir: Path) -> Path | None:
    """The run's last validation sample grid (``images/val_epoch_XXXX.png``)."""
    grids = sorted((run_dir / "images").glob("val_epoch_*.png"))
    return grids[-1] if grids else None


def last_checkpoint(run_dir: Path) -> Path | None:
    """The most recently written checkpoint of the run (None when it has none)."""
    ckpts = [p for p in (run_dir / "checkpoints").glob("*.ckpt") if p.is_file()]
    return max(ckpts, key=lambda p: (p.stat().st_mtime, p.name)) if ckpts else None


# ----------------------------------------------------------------------------- sections


def _meta_table(items: Sequence[tuple[str, str]]) -> str:
    """A two-column table of (name, already escaped HTML value)."""
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in items if v)
    return f'<table class="meta">{rows}</table>'


#: parts of the data description left out of the page: the embedded photos' names and
#: regions (long; results.json has them)
BULKY_DATA = frozenset({"names", "regions"})


def describe_data(data: Any, limit: int = 160) -> list[tuple[str, str]]:
    """The data description of results.json (``data``) flattened to ``(key, value)``
    pairs, two levels deep, long values (the embedded photos' names and regions) cut."""
    if not isinstance(data, dict):
        return []
    out = []
    for key, value in data.items():
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in BULKY_DATA}
        if isinstance(value, dict) and value:
            items = [(f"{key}.{k}", v) for k, v in value.items()]
        else:
            items = [(str(key), value)]
        for k, v in items:
            if v is None or v == {} or v == []:
                continue
            text = v if isinstance(v, str) else json.dumps(v, default=str)
            out.append((k, text if len(text) <= limit else text[: limit - 1] + "…"))
    return out


def _overrides_html(run: Run) -> str:
    if not run.overrides:
        return '<span class="note">none recorded</span>'
    return " ".join(f"<code>{_e(o)}</code>" for o in run.overrides)


def run_html(run: Run, anchor: str, own_table: bool = False) -> str:
    """A run's sub-section: what it is and how it was measured, then its figures (and its
    own per-level table when ``own_table``: the group's rows are policies over seeds)."""
    doc = run.doc or {}
    checksum = (doc.get("test_set") or {}).get("checksum")
    data = doc.get("data")
    trained = [doc.get(k) for k in ("epochs_trained", "global_step")]
    items = [
        ("folder", f"<code>{_e(run.path)}</code>"),
        ("seed", _e(run.seed) if run.seed is not None else ""),
        *[
            (k, _e(doc[k]))
            for k in ("experiment", "method", "model", "curriculum", "optimizer")
            if doc.get(k)
        ],  # fmt: skip
        ("trained", _e(f"{trained[0]} epochs, {trained[1]} steps") if None not in trained else ""),
        ("training images seen", _e(_images(run))),
        ("test-set checksum", f"<code>{_e(checksum)}</code>" if checksum else ""),
        ("protocol", _e(doc.get("protocol") or "")),
        ("data protocol", _e(data_protocol(data).strip())),
        ("data", "<br>".join(f"<code>{_e(k)}</code>: {_e(v)}" for k, v in describe_data(data))),
        ("overrides", _overrides_html(run)),
    ]
    table = level_table_html([(run.label, [run])]) if own_table else ""
    return (
        f'<section class="run" id="{anchor}"><h3>Run: {_e(run.label)} '
        f'<span class="badge ok">complete</span></h3>'
        f"{_meta_table(items)}{table}{_run_figures(run)}</section>"
    )


def group_html(index: int, members: Sequence[Run], run_ids: dict[Path, str]) -> str:
    """The section of one (task, protocol) group: its tables, figure and runs."""
    task, protocol = members[0].group
    policies = seed_policies(members)
    over = _over_seeds(policies)
    entities = [(p.name, p.runs) for p in policies] if over else [(r.label, [r]) for r in members]
    variants = [None, *sorted({v for r in members for v in (r.doc.get("variants") or {})})]
    runs_list = ", ".join(f'<a href="#{run_ids[r.path]}">{_e(r.label)}</a>' for r in members)
    parts = [
        f'<section class="group" id="group-{index}" data-task="{_e(task)}">',
        f"<h2>Task: {_e(task or 'unknown')}</h2>",
        f"<p><b>Protocol:</b> {_e(protocol or 'not recorded')}</p>",
        f"<p><b>Runs ({len(members)}):</b> {runs_list}</p>",
    ]
    if over:
        parts.append(
            '<p class="note">Rows are policies: mean ± standard error over seeds (SE = sample '
            "std / sqrt(n), n = number of seeds); each run's own values are in its section "
            "below and in summary.csv.</p>"
        )
    parts.append("<h3>Results per level</h3>")
    parts += [level_table_html(entities, v, "restored", over) for v in variants]
    outputs = _extra_outputs(members)
    if outputs:
        parts.append("<h3>Other scored outputs</h3>")
        parts += [level_table_html(entities, v, o, over) for o in outputs for v in variants]
    parts.append(markdown_block_html(_settings_block(members, "###")))
    if over:
        parts.append(markdown_block_html(_ttest_block(policies, "###")))
    parts.append(markdown_block_html(lifelong_block(members, "###")))
    parts.append("<h3>PSNR against the level</h3>")
    parts.append(_psnr_figure(members, f"{task or 'unknown'}: PSNR per test level"))
    parts += [run_html(r, run_ids[r.path], own_table=over) for r in members]
    parts.append("</section>")
    return "\n".join(p for p in parts if p)


def incomplete_html(runs: Sequence[Run], run_ids: dict[Path, str]) -> str:
    """The runs without results.json, flagged, with what each left behind."""
    missing = [r for r in runs if not r.complete]
    if not missing:
        return ""
    items = []
    for r in missing:
        rows = read_metrics(r.path)
        epoch = last_epoch(rows)
        ckpt = last_checkpoint(r.path)
        grid = last_grid(r.path)
        has = [
            f"last checkpoint: <code>{_e(ckpt.name)}</code>" if ckpt else "no checkpoint",
            f"last epoch in metrics.csv: {epoch}" if epoch is not None else "no metrics.csv epoch",
            f"last sample grid: <code>{_e(grid.name)}</code>" if grid else "no sample grid",
        ]
        items.append(
            f'<li id="{run_ids[r.path]}"><b>{_e(r.label)}</b> '
            f'<span class="badge bad">incomplete</span><br>folder: <code>{_e(r.path)}</code>'
            f"<br>{'; '.join(has)}<br>overrides: {_overrides_html(r)}{_run_figures(r)}</li>"
        )
    return (
        '<section class="incomplete" id="incomplete">'
        f"<h2>Incomplete runs ({len(missing)}): no results.json</h2>"
        '<p class="note">These runs did not finish (crashed, killed or still running); they are '
        "in no table.</p>"
        f"<ul>{''.join(items)}</ul></section>"
    )


def _runs(n: int) -> str:
    return f"{n} run" if n == 1 else f"{n} runs"


def header_html(runs: Sequence[Run], title: str, roots: Sequence[str | Path]) -> str:
    """Title, date, the folders given, and the complete / incomplete counts, with a table
    of contents of the groups."""
    done = [r for r in runs if r.complete]
    groups = groups_of(done)
    date = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    folders = "".join(f"<li><code>{_e(root)}</code></li>" for root in roots)
    toc = "".join(
        f'<li><a href="#group-{i + 1}">{_e(task or "unknown")}</a> ({_runs(len(m))})</li>'
        for i, ((task, _), m) in enumerate(groups.items())
    )
    if len(done) < len(runs):
        toc += f'<li><a href="#incomplete">incomplete runs</a> ({len(runs) - len(done)})</li>'
    return (
        f"<header><h1>{_e(title)}</h1>"
        f'<p class="note">Generated {_e(date)} by <code>python -m lightrestore.report</code></p>'
        f"<p><b>Folders:</b></p><ul>{folders}</ul>"
        f'<p id="counts"><b>{_runs(len(runs))}:</b> {len(done)} complete, '
        f"{len(runs) - len(done)} incomplete</p>"
        f"<p><b>Contents:</b></p><ul>{toc}</ul></header>"
    )


def html_report(runs: Sequence[Run], title: str = "", roots: Sequence[str | Path] = ()) -> str:
    """The whole page of ``runs`` (from :func:`~lightrestore.reporting.report.find_runs`)."""
    title = title or "Summary"
    run_ids = {r.path: f"run-{i + 1}" for i, r in enumerate(runs)}
    groups = groups_of([r for r in runs if r.complete])
    body = [header_html(runs, title, roots), incomplete_html(runs, run_ids)]
    body += [group_html(i + 1, m, run_ids) for i, m in enumerate(groups.values())]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(b for b in body if b)
        + "\n</body></html>\n"
    )


def html_path(out_dir: str | Path, html_arg: str | None) -> Path:
    """Where ``--html [FILE]`` writes: ``<out>/report.html`` without FILE, FILE/report.html
    when FILE is a folder, else FILE."""
    if not html_arg:
        return Path(out_dir) / "report.html"
    path = Path(html_arg)
    return path / "report.html" if path.is_dir() else path


def write_html(roots: Sequence[str | Path], path: str | Path, title: str = "") -> Path:
    """Write the HTML report of the runs under ``roots`` to ``path``; return it."""
    runs = find_runs(roots)
    if not runs:
        raise NoRunsError(
            f"no runs found under {', '.join(map(str, roots))} (no results.json and no "
            ".hydra/config.yaml): give a run folder, a multirun folder, or a folder holding them"
        )
    return atomic_write_text(Path(path), html_report(runs, title, roots))
