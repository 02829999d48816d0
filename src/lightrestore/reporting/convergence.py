"""Convergence of runs: ``python -m lightrestore.convergence RUN_DIR... [--target DB]``.

Reads each run's validation curve (``csv/metrics.csv``, ``val/psnr/mean`` per epoch),
finds the first epoch at which it reaches the target PSNR, and writes
``convergence.md``, ``convergence.csv`` and ``convergence.png`` (the curves) into
``--out`` (default: the parent of the first run). The default target is the highest
PSNR that every run reaches, so each has an epoch to compare.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Sequence
from pathlib import Path

from lightrestore.reporting.report import find_runs
from lightrestore.storage.atomic import atomic_write_text


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    """The rows of the run's CSV log (``csv/metrics.csv``), after those of the earlier jobs
    of a SLURM-requeued run (``csv_part<k>/``); [] when there is none or it is unreadable."""
    f = run_dir / "csv" / "metrics.csv"
    parts = sorted(run_dir.glob("csv_part*/metrics.csv"), key=lambda p: int(p.parent.name[8:]))
    rows: list[dict[str, str]] = []
    for part in [*parts, f] if f.is_file() else []:
        try:
            with open(part, newline="") as fh:
                rows += list(csv.DictReader(fh))
        except (OSError, csv.Error):
            continue
    return rows


def curve(run_dir: Path, metric: str = "val/psnr/mean") -> list[tuple[int, float]]:
    """``[(epoch, value)]`` from the run's CSV log (epochs counted from 1), the logs of
    the earlier jobs of a SLURM-requeued run (``csv_part<k>/``) included."""
    f = run_dir / "csv" / "metrics.csv"
    if not f.is_file():
        raise FileNotFoundError(
            f"{f} not found: is '{run_dir}' a lightrestore run folder with CSV logging?"
        )
    points = {int(row["epoch"]) + 1: float(row[metric]) for row in read_metrics(run_dir)
              if row.get(metric)}  # fmt: skip
    return sorted(points.items())


def first_epoch(points: Sequence[tuple[int, float]], target: float) -> int | None:
    return next((e for e, v in points if v >= target), None)


def write_convergence(run_dirs: Sequence[str | Path], target: float | None = None, out: str | Path | None = None,
                      metric: str = "val/psnr/mean") -> Path:  # fmt: skip
    runs = find_runs(run_dirs)
    curves = {
        r.label: curve(r.path, metric) for r in runs if (r.path / "csv" / "metrics.csv").is_file()
    }
    if not curves:
        raise FileNotFoundError(f"no run with a CSV log under {list(map(str, run_dirs))}")
    if target is None:
        target = min(max(v for _, v in pts) for pts in curves.values())
    out_dir = Path(out or Path(run_dirs[0]).parent)
    lines = [f"# Convergence to {metric} >= {target:.2f} dB", "", "| run | first epoch reaching the target | best | epochs |",
             "|---|---|---|---|"]  # fmt: skip
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", "epoch", metric])
    for label, pts in curves.items():
        e = first_epoch(pts, target)
        lines.append(
            f"| {label} | {e if e is not None else 'not reached'} | {max(v for _, v in pts):.2f} | {len(pts)} |"
        )
        for epoch, value in pts:
            w.writerow([label, epoch, value])
    md = "\n".join(lines) + "\n"
    atomic_write_text(out_dir / "convergence.md", md)
    atomic_write_text(out_dir / "convergence.csv", buf.getvalue())
    from lightrestore.reporting.plotting import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, pts in curves.items():
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=label)
    ax.axhline(target, color="grey", ls="--", lw=0.8)
    ax.set(xlabel="epoch", ylabel=f"{metric} (dB)", title="convergence")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, out_dir / "convergence.png")
    plt.close(fig)
    print(md)
    print(f"written to {out_dir / 'convergence.md'}")
    return out_dir


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m lightrestore.convergence", description=__doc__.split("\n")[0]
    )
    p.add_argument("runs", nargs="+", help="run folders (or a folder holding them)")
    p.add_argument(
        "--target",
        type=float,
        default=None,
        help="target PSNR in dB (default: the highest all reach)",
    )
    p.add_argument("--metric", default="val/psnr/mean")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    try:
        write_convergence(a.runs, a.target, a.out, a.metric)
    except FileNotFoundError as e:
        print(f"lightrestore.convergence: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
