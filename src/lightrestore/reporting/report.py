"""Aggregate the runs of a sweep into one table: ``python -m lightrestore.report DIR...``.

Finds every run folder below the given folders (``results.json``, or a
``.hydra/config.yaml`` without results for a run that did not finish), labels each run
by what differs between them (the curriculum for ODL's Table 1 sweep), and writes
``summary.md``, ``summary.csv`` and ``psnr_vs_level.png`` into the first folder (or
``--out``). Hydra multiruns call it at the end through :class:`MultirunSummary`.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightrestore.storage.atomic import atomic_write_text

log = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "l1", "l2")


class NoRunsError(FileNotFoundError):
    """The folders given to the report hold no run."""


@dataclass
class Run:
    """One run folder: its results document (None if it did not finish)."""

    path: Path
    doc: dict[str, Any] | None
    overrides: list[str] = field(default_factory=list)
    label: str = ""

    @property
    def complete(self) -> bool:
        return self.doc is not None

    @property
    def task(self) -> str:
        """The task the results measure (``results.json``'s ``task``)."""
        return str((self.doc or {}).get("task") or "")

    @property
    def group(self) -> tuple[str, str]:
        """Runs are comparable in one table only with the same task and protocol (the
        metric space: all channels vs the Y channel with a border, ...)."""
        return self.task, str((self.doc or {}).get("protocol") or "")


def _overrides(run_dir: Path) -> list[str]:
    f = run_dir / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return []
    from omegaconf import OmegaConf

    return [str(o) for o in OmegaConf.load(f)]


def find_runs(roots: Sequence[str | Path]) -> list[Run]:
    """Every run folder below ``roots`` (sorted by path)."""
    found: dict[Path, Run] = {}
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f"'{root}' does not exist: give a run or multirun folder")
        for res in root.rglob("results.json"):
            run_dir = res.parent
            try:
                doc = json.loads(res.read_text())
            except (OSError, json.JSONDecodeError) as e:
                log.warning("unreadable %s: %s", res, e)
                doc = None
            found[run_dir] = Run(run_dir, doc, _overrides(run_dir))
        for cfg in root.rglob(".hydra/config.yaml"):
            run_dir = cfg.parent.parent
            if run_dir not in found and (run_dir / ".hydra" / "overrides.yaml").is_file():
                found[run_dir] = Run(run_dir, None, _overrides(run_dir))
    runs = sorted(found.values(), key=lambda r: str(r.path))
    _label(runs)
    return runs


def _label(runs: list[Run]) -> None:
    """Label runs by the overrides that differ between them (else their folder name)."""
    if not runs:
        return
    common = set(runs[0].overrides)
    for r in runs[1:]:
        common &= set(r.overrides)
    for r in runs:
        differing = [o for o in r.overrides if o not in common and not o.startswith("paths.")]
        label = ",".join(_short(o, r.doc) for o in differing)
        if not label and r.doc:
            label = str(r.doc.get("curriculum") or r.doc.get("experiment") or "")
        r.label = label or r.path.name
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
    for r in runs:
        if seen[r.label] > 1:
            r.label = f"{r.label} [{r.path.name}]"


def _short(override: str, doc: dict[str, Any] | None) -> str:
    """A readable label part: the curriculum's name; for an evaluated checkpoint
    (``ckpt=<path>``) the experiment and curriculum it was trained with."""
    key, _, value = override.partition("=")
    if key in ("curriculum", "experiment"):
        return value
    if key == "ckpt" and doc:
        trained = doc.get("experiment") or Path(value).parents[1].name
        return f"{trained} ({doc['curriculum']})" if doc.get("curriculum") else str(trained)
    return override


def _num(value: Any) -> float:
    """A metric from results.json: ``null`` (a non-finite value, which strict JSON cannot
    hold) reads as NaN."""
    return float("nan") if value is None else float(value)


def _levels(doc: dict[str, Any], variant: str | None = None, output: str = "restored") -> dict[str, Any]:
    """The per-level rows of ``output`` on the test set ``variant`` (None: the default)."""
    if output != "restored":
        table = (doc.get("outputs") or {}).get(output, {}).get(variant or "default", {})
    else:
        table = doc if variant is None else doc.get("variants", {}).get(variant, {})
    return table.get("levels", {})


def _extra_outputs(runs: Sequence[Run]) -> list[str]:
    """The scored outputs besides ``restored`` and ``input`` (e.g. ``after_F``, ``G_1``)."""
    names = {o for r in runs for o in (r.doc.get("outputs") or {}) if o != "input"}
    return sorted(names)


def summary_markdown(runs: Sequence[Run], title: str = "") -> str:
    """Policy × level PSNR table (+ SSIM means), one block per test variant."""
    done = [r for r in runs if r.complete]
    lines = [f"# {title or 'Summary'}", ""]
    groups = groups_of(done)
    for (task, protocol), members in groups.items():
        if len(groups) > 1:  # never one table across tasks or metric spaces
            lines += [f"## task: {task or 'unknown'}", "", f"Protocol: {protocol}", ""]
        variants = [None] + sorted({v for r in members for v in (r.doc.get("variants") or {})})
        heading = "###" if len(groups) > 1 else "##"
        for variant in variants:
            lines += _psnr_block(members, variant, heading)
        for output in _extra_outputs(members):  # whatever else the methods scored
            for variant in variants:
                lines += _psnr_block(members, variant, heading, output)
    missing = [r for r in runs if not r.complete]
    if missing:
        lines += ["Incomplete runs (no results.json):", ""]
        lines += [f"- {r.label}: `{r.path}`" for r in missing] + [""]
    return "\n".join(lines)


def groups_of(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    """Complete runs by (task, protocol), in order of first appearance."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    return groups


def _psnr_block(
    runs: Sequence[Run], variant: str | None, heading: str = "##", output: str = "restored"
) -> list[str]:
    levels = sorted({int(lv) for r in runs for lv in _levels(r.doc, variant, output)})
    if not levels:
        return []
    extra = runs[0].doc.get("extra_level")
    train = [lv for lv in levels if lv != extra]
    name = "test set" if variant is None else f"test variant: {variant}"
    if output != "restored":
        name = f"output {output}, {name}"
    head = ["run"] + [f"L{lv}" + (" (extra)" if lv == extra else "") for lv in levels]
    head += ["mean 1-N", "spread 1-N", "SSIM mean", "SSIM extra", "images"]
    out = [f"{heading} PSNR (dB) per level, {name}", "", "| " + " | ".join(head) + " |"]
    out.append("|" + "---|" * len(head))
    for r in runs:
        rows = _levels(r.doc, variant, output)
        if not rows:
            continue
        psnr = {int(lv): _num(row["psnr"]) for lv, row in rows.items()}
        ssim = {int(lv): _num(row["ssim"]) for lv, row in rows.items()}
        tp = [psnr[lv] for lv in train if lv in psnr]
        ts = [ssim[lv] for lv in train if lv in ssim]
        cells = [r.label] + [f"{psnr[lv]:.2f}" if lv in psnr else "" for lv in levels]
        cells += [
            f"{sum(tp) / len(tp):.2f}" if tp else "",
            f"{max(tp) - min(tp) if all(map(math.isfinite, tp)) else math.nan:.2f}" if tp else "",
        ]
        cells += [
            f"{sum(ts) / len(ts):.4f}" if ts else "",
            f"{ssim[extra]:.4f}" if extra in ssim else "",
        ]
        cells.append(str(_images(r)))
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _images(run: Run) -> int | str:
    """Training images the run saw (from its allocation.csv), for the equal-budget check."""
    f = run.path / "allocation.csv"
    if not f.is_file():
        return ""
    rows = list(csv.reader(f.read_text().splitlines()))
    head = rows[0]
    cols = [i for i, h in enumerate(head) if h.startswith("images_")]
    return sum(int(row[i]) for row in rows[1:] for i in cols)


def summary_csv(runs: Sequence[Run]) -> str:
    """Long format: run, task, variant, output, level, extra, psnr, ssim, l1, l2, count,
    path; ``restored`` rows first, then every other scored output."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", "task", "variant", "output", "level", "extra", *METRICS, "count", "path"])
    for r in runs:
        if not r.complete:
            w.writerow([r.label, "", "", "", "", "", "", "", "", "", "", str(r.path)])
            continue
        variants = [None, *sorted(r.doc.get("variants") or {})]
        outputs = ["restored", *sorted(r.doc.get("outputs") or {})]
        for output in outputs:
            for variant in variants:
                for lv, row in _levels(r.doc, variant, output).items():
                    values = [row[m] for m in METRICS]
                    extra = int(bool(row.get("extra")))
                    w.writerow([r.label, r.task, variant or "default", output, lv, extra,
                                *values, row["count"], str(r.path)])  # fmt: skip
    return buf.getvalue()


def write_summary(
    roots: Sequence[str | Path], out: str | Path | None = None, title: str = ""
) -> Path:
    """Write ``summary.md``, ``summary.csv`` and ``psnr_vs_level.png``; return the folder."""
    runs = find_runs(roots)
    if not runs:
        raise NoRunsError(
            f"no runs found under {', '.join(map(str, roots))} (no results.json and no "
            ".hydra/config.yaml): give a run folder, a multirun folder, or a folder holding them"
        )
    out_dir = Path(out or roots[0])
    title = title or out_dir.name
    md = summary_markdown(runs, title)
    atomic_write_text(out_dir / "summary.md", md)
    atomic_write_text(out_dir / "summary.csv", summary_csv(runs))
    done = [r for r in runs if r.complete]
    groups = groups_of(done)
    from lightrestore.reporting.plotting import plot_psnr_vs_level

    for i, ((task, _), members) in enumerate(groups.items()):
        curves = {r.label: {lv: _num(row["psnr"]) for lv, row in _levels(r.doc).items()}
                  for r in members}  # fmt: skip
        name, heading = "psnr_vs_level.png", title
        if len(groups) > 1:  # one plot per task (and protocol)
            name, heading = f"psnr_vs_level_{i + 1}_{task or 'unknown'}.png", f"{title}: {task}"
        plot_psnr_vs_level(curves, out_dir / name, members[0].doc.get("extra_level"), heading)
    print(md)
    print(f"summary written to {out_dir / 'summary.md'} ({len(done)}/{len(runs)} runs complete)")
    return out_dir


try:  # Hydra callback, available when hydra-core is installed (always, as a dependency)
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[misc,assignment]


class MultirunSummary(_HydraCallback):
    """Hydra callback: after a multirun, write the summary into the sweep folder."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            try:
                write_summary([sweep_dir])
            except Exception as e:  # a summary must never fail the sweep
                log.warning("could not write the sweep summary: %s", e)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lightrestore.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("dirs", nargs="+", help="run or multirun folders to aggregate")
    parser.add_argument("--out", help="where to write summary.* (default: the first folder)")
    parser.add_argument("--title", default="", help="title of the summary")
    args = parser.parse_args(argv)
    try:
        write_summary(args.dirs, args.out, args.title)
    except FileNotFoundError as e:
        print(f"lightrestore.report: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
