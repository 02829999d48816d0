"""The run's results in wandb: the resolved config, the per-level results Table and the
headline values in the run summary (rank 0, only when a ``WandbLogger`` is in use).

Reads the ``results.json`` that :class:`~lightrestore.callbacks.results.ResultsWriter`
wrote after testing (nothing is measured again) and sends:

* ``results/table``: a ``wandb.Table``, one row per (test set, output, level), columns
  ``test_set, output, level, range, extra, psnr, ssim, l1, l2, count, input_psnr`` then any
  other numeric measure the rows hold (``missing_psnr``, ``lpips``, ...), sorted;
* run summary: ``results/<measure>/mean`` (the mean over the training levels 1..N) and
  ``results/<measure>/level_<i>`` of ``restored`` on the default test set, and
  ``results/<test set>/<output>/psnr/mean`` for every other scored table;
* ``plots/<name>``: the run's ``plots/*.png`` as images, unless
  :class:`~lightrestore.callbacks.plots.RunPlots` is among the callbacks (it sends them).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from lightrestore.reporting.results import level_tables

log = logging.getLogger(__name__)

#: the Table's first columns; every other numeric measure of the rows follows, sorted
COLUMNS = ("test_set", "output", "level", "range", "extra", "psnr", "ssim", "l1", "l2", "count",
           "input_psnr")  # fmt: skip


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def results_table(doc: Mapping[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The columns and rows of the per-level Table of a results document (one row per
    test set, output and level); a cell a row lacks is ``None``."""
    tables = level_tables(doc)
    extra = sorted({k for _, _, t in tables for row in t["levels"].values() for k, v in row.items()
                    if k not in COLUMNS and _number(v)})  # fmt: skip
    columns = [*COLUMNS, *extra]
    rows = []
    for test_set, output, table in tables:
        for level, row in sorted(table["levels"].items(), key=lambda kv: int(kv[0])):
            cells = {"test_set": test_set, "output": output, "level": int(level),
                     "range": row.get("range"), "extra": bool(row.get("extra"))}  # fmt: skip
            cells.update({k: row.get(k) for k in columns[5:]})
            rows.append([cells[c] for c in columns])
    return columns, rows


def headline(doc: Mapping[str, Any]) -> dict[str, float]:
    """The run summary's headline values: ``results/<m>/mean`` (mean over the training
    levels) and ``results/<m>/level_<i>`` of ``restored`` on the default test set, and
    ``results/<test set>/<output>/psnr/mean`` of every other table."""
    out: dict[str, float] = {}
    for m, v in (doc.get("mean_train_levels") or {}).items():
        if _number(v):
            out[f"results/{m}/mean"] = float(v)
    for level, row in (doc.get("levels") or {}).items():
        for m, v in row.items():
            if m != "count" and _number(v):
                out[f"results/{m}/level_{level}"] = float(v)
    for test_set, output, table in level_tables(doc)[1:]:
        v = (table.get("mean_train_levels") or {}).get("psnr")
        if _number(v):
            out[f"results/{test_set}/{output}/psnr/mean"] = float(v)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def wandb_loggers(trainer: Trainer) -> list[Any]:
    """The trainer's ``WandbLogger`` instances (none: wandb is not in use)."""
    from lightning.pytorch.loggers import WandbLogger

    return [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]


class WandbResults(Callback):
    """Sends the resolved config (at set-up), then after testing the per-level results
    Table, the headline values (run summary) and the plots to every ``WandbLogger`` of the
    trainer. Does nothing without one, and only rank 0 sends.

    Args:
        output_dir: the run folder (where ``results.json`` and ``plots/`` are); the
            ``ResultsWriter``'s folder is used when there is one.
        table_key: the Table's key.
    """

    def __init__(self, output_dir: str, table_key: str = "results/table") -> None:
        self.output_dir = Path(output_dir)
        self.table_key = table_key
        self._config_sent = False
        self._before: float | None = None

    def _results_file(self, trainer: Trainer) -> Path:
        from lightrestore.callbacks.results import ResultsWriter

        for cb in trainer.callbacks:
            if isinstance(cb, ResultsWriter):
                return Path(cb.output_dir) / "results.json"
        return self.output_dir / "results.json"

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        loggers = wandb_loggers(trainer)
        config = getattr(pl_module, "run_config", None)
        if self._config_sent or not loggers or not trainer.is_global_zero or not config:
            return
        for logger in loggers:  # the resolved config (Hydra's own node left out)
            logger.log_hyperparams(dict(config))
        self._config_sent = True

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        f = self._results_file(trainer)
        self._before = f.stat().st_mtime_ns if f.is_file() else None

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # after every callback's on_test_end (ResultsWriter's results.json, RunPlots' plots)
        if stage != "test" or not trainer.is_global_zero:
            return
        loggers = wandb_loggers(trainer)
        if not loggers:
            return
        f = self._results_file(trainer)
        if not f.is_file() or (self._before is not None and f.stat().st_mtime_ns == self._before):
            log.info("no new %s after testing: no results sent to wandb", f)
            return
        try:  # the results are on disk already: a dashboard problem must not fail the run
            self.send(loggers, json.loads(f.read_text()), trainer)
        except Exception as e:  # noqa: BLE001
            log.warning("could not send the results to wandb: %s", e)

    def send(
        self, loggers: list[Any], doc: Mapping[str, Any], trainer: Trainer | None = None
    ) -> None:
        """Log the Table, the headline values and (without ``RunPlots``) the plots."""
        from lightrestore.callbacks.plots import RunPlots

        columns, rows = results_table(doc)
        values = headline(doc)
        step = int(trainer.global_step) if trainer is not None else None
        plots = []
        if trainer is None or not any(isinstance(cb, RunPlots) for cb in trainer.callbacks):
            plots = sorted((self.output_dir / "plots").glob("*.png"))
        for logger in loggers:
            logger.log_table(key=self.table_key, columns=columns, data=rows, step=step)
            for p in plots:  # one key per plot: images of several sizes under one key warn
                logger.log_image(
                    key=f"plots/{p.stem}", images=[str(p)], caption=[p.stem], step=step
                )
            logger.experiment.summary.update(values)
        log.info("wandb: %d result rows, %d headline values, %d plots", len(rows), len(values),
                 len(plots))  # fmt: skip
