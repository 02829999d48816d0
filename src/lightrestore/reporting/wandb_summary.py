"""A sweep's summary as one more wandb run of the sweep's group.

After a multirun, :class:`~lightrestore.reporting.report.MultirunSummary` writes
``summary.md`` / ``summary.csv`` / ``psnr_vs_level*.png`` into the sweep folder; when the
sweep logged to wandb, :func:`log_sweep_summary_from_config` sends them as a run of the
same project and group as the sweep's jobs (``job_type`` ``sweep-summary``, named
``<group> summary``), written under ``<sweep folder>/wandb/``:

* ``summary/table``: ``summary.csv`` as a ``wandb.Table`` (and ``summary/seeds``,
  ``summary/ttest``, ``summary/settings``, ``summary/lifelong`` when written);
* ``summary/<png name>``: the PSNR-vs-level plot(s) as images;
* ``summary/markdown``: ``summary.md`` as HTML text, and all those files as an artifact
  of type ``sweep-summary``;
* run summary: ``mean_psnr/<run label>``, each run's mean PSNR over the training levels
  (``restored``, default test set), and ``runs`` (how many).

The mode follows the jobs': ``WANDB_MODE`` wins, ``auto`` is offline without
credentials, ``disabled`` sends nothing. Nothing here may fail the sweep.
"""

from __future__ import annotations

import csv
import html
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: summary CSV files and their keys in the summary run
CSV_KEYS = {
    "summary.csv": "summary/table",
    "summary_seeds.csv": "summary/seeds",
    "summary_ttest.csv": "summary/ttest",
    "summary_settings.csv": "summary/settings",
    "summary_lifelong.csv": "summary/lifelong",
}


def wandb_logger_config(config: Any) -> Any | None:
    """The wandb entry of a (sweep's) config's ``logger`` group, or ``None``."""
    loggers = config.get("logger") if hasattr(config, "get") else None
    for key, entry in (loggers or {}).items():
        if entry is None or not hasattr(entry, "get"):
            continue
        target = str(entry.get("_target_", ""))
        if "wandb" in target.lower() or (key == "wandb" and not target):
            return entry
    return None


def _cell(text: str) -> Any:
    """A CSV cell as a number when it is one (empty: ``None``)."""
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        return text
    if math.isfinite(value) and value.is_integer() and re.fullmatch(r"-?\d+", text.strip()):
        return int(value)
    return value


def read_csv_table(path: Path) -> tuple[list[str], list[list[Any]]]:
    """A CSV file's header and rows (numbers as numbers)."""
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return [], []
    return rows[0], [[_cell(c) for c in row] for row in rows[1:]]


def run_means(columns: list[str], rows: list[list[Any]]) -> dict[str, float]:
    """Each run's mean PSNR over the training levels (``restored``, default test set)
    from ``summary.csv``'s rows."""
    at = {c: i for i, c in enumerate(columns)}
    if not {"run", "psnr", "extra", "variant", "output"} <= set(at):
        return {}
    values: dict[str, list[float]] = {}
    for row in rows:
        ok = row[at["variant"]] == "default" and row[at["output"]] == "restored"
        psnr = row[at["psnr"]]
        if ok and not row[at["extra"]] and isinstance(psnr, (int, float)):
            values.setdefault(str(row[at["run"]]), []).append(float(psnr))
    return {k: sum(v) / len(v) for k, v in values.items() if v}


def log_sweep_summary(
    sweep_dir: str | Path,
    group: str,
    project: str = "lightrestore",
    mode: str = "auto",
    entity: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
) -> Path | None:
    """Log the sweep folder's summary files as one wandb run; return its run folder
    (``None``: nothing sent, ``mode`` disabled or no ``summary.csv``)."""
    from lightrestore.reporting.loggers import finish_open_wandb_run, resolve_wandb_mode

    sweep_dir = Path(sweep_dir)
    resolved = resolve_wandb_mode(mode)
    if resolved == "disabled":
        return None
    if not (sweep_dir / "summary.csv").is_file():
        log.warning("no summary.csv in %s: no sweep summary sent to wandb", sweep_dir)
        return None
    import os

    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    finish_open_wandb_run()  # the sweep's last job, when the jobs ran in this process
    run = wandb.init(
        project=project,
        entity=entity,
        group=group,
        job_type="sweep-summary",
        name=name or f"{group} summary",
        tags=tags or ["sweep-summary"],
        dir=str(sweep_dir),
        mode=resolved,
        config={"sweep_dir": str(sweep_dir.resolve())},
        reinit="finish_previous",
    )
    try:
        data: dict[str, Any] = {}
        means: dict[str, float] = {}
        for file, key in CSV_KEYS.items():
            if (sweep_dir / file).is_file():
                columns, rows = read_csv_table(sweep_dir / file)
                if columns:
                    data[key] = wandb.Table(columns=columns, data=rows, allow_mixed_types=True)
                if file == "summary.csv":
                    means = run_means(columns, rows)
        pngs = sorted(sweep_dir.glob("psnr_vs_level*.png"))
        for png in pngs:
            data[f"summary/{png.stem}"] = wandb.Image(str(png), caption=png.stem)
        md = sweep_dir / "summary.md"
        if md.is_file():
            text = md.read_text()
            data["summary/markdown"] = wandb.Html(f"<pre>{html.escape(text)}</pre>")
        run.log(data)
        run.summary.update({f"mean_psnr/{k}": v for k, v in means.items() if math.isfinite(v)})
        run.summary.update({"runs": len(means)})
        artifact = wandb.Artifact(
            re.sub(r"[^\w.-]+", "-", f"sweep-summary-{group}"), "sweep-summary"
        )
        for f in [md, *(sweep_dir / k for k in CSV_KEYS), *pngs]:
            if f.is_file():
                artifact.add_file(str(f))
        run.log_artifact(artifact)
        folder = Path(run.dir).parent
    finally:
        run.finish()
    log.info("sweep summary logged to wandb (%s, group %s): %s", resolved, group, folder)
    return folder


def log_sweep_summary_from_config(config: Any, sweep_dir: str | Path) -> Path | None:
    """:func:`log_sweep_summary` for a finished multirun, when its ``logger`` group
    includes wandb (project, entity, mode and group taken from it); never raises."""
    try:
        entry = wandb_logger_config(config)
        if entry is None:
            return None
        from lightrestore.reporting.loggers import wandb_group

        opts: Mapping[str, Any] = {
            k: _get(entry, k) for k in ("project", "mode", "entity", "group")
        }
        task_name = str(config.get("task_name") or "train")
        group = opts["group"] or wandb_group(task_name, sweep_dir)
        return log_sweep_summary(
            sweep_dir,
            group=str(group),
            project=str(opts["project"] or "lightrestore"),
            mode=str(opts["mode"] or "auto"),
            entity=opts["entity"],
        )
    except Exception as e:  # noqa: BLE001  (a summary must never fail the sweep)
        log.warning("could not log the sweep summary to wandb: %s", e)
        return None


def _get(entry: Any, key: str) -> Any:
    """One value of the logger entry (its other values may not resolve outside a job)."""
    try:
        return entry.get(key)
    except Exception:  # noqa: BLE001
        return None
