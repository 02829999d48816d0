"""Writes a run's results files (rank 0 only)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from lightrestore.reporting.results import allocation_csv, build_results, write_results
from lightrestore.storage.atomic import atomic_write_text

log = logging.getLogger(__name__)


class ResultsWriter(Callback):
    """``allocation.csv`` after every training epoch; ``results.{json,md,csv}`` after testing.

    Args:
        output_dir: the run folder.
        extra: plain values recorded in ``results.json`` (experiment name, method...).
        print_table: log the per-level table after testing (console and log file).
    """

    def __init__(
        self, output_dir: str, extra: dict[str, Any] | None = None, print_table: bool = True
    ) -> None:
        self.output_dir = Path(output_dir)
        self.extra = dict(extra or {})
        self.print_table = print_table
        self.last_markdown: str | None = None

    def _write_allocation(self, trainer: Trainer) -> None:
        dm = trainer.datamodule
        if trainer.is_global_zero and getattr(dm, "sampler", None) is not None:
            atomic_write_text(
                self.output_dir / "allocation.csv",
                allocation_csv(dm.sampler.allocation(), dm.sampler.n_levels, trainer.world_size),
            )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write_allocation(trainer)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write_allocation(trainer)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        dm = trainer.datamodule
        extra = dict(self.extra)
        extra["data"] = dm.describe()
        extra["epochs_trained"] = int(trainer.current_epoch)
        extra["global_step"] = int(trainer.global_step)
        extra["batch_size"] = int(getattr(dm, "batch_size", 0) or 0) or None
        variants = {
            name: {**v, "checksum": dm.test_sets[name].checksum}
            for name, v in getattr(pl_module, "test_variant_results", {}).items()
        }
        doc = build_results(
            pl_module.test_results,
            dm.ladder,
            input_metrics=getattr(pl_module, "test_input_results", None),
            checksum=dm.test_set.checksum,
            per_level=dm.test_set.per_level,
            variants=variants,
            outputs=getattr(pl_module, "test_scores_results", None),
            checksums={name: ts.checksum for name, ts in dm.test_sets.items()},
            extra=extra,
            space=getattr(pl_module, "protocol", "PSNR/SSIM/L1/L2 on all channels"),
            lpips_net=getattr(
                (getattr(pl_module, "extra_measures", None) or {}).get("lpips"), "net", None
            ),
        )
        self.last_markdown = write_results(self.output_dir, doc, title=extra.get("experiment"))
        if self.print_table:  # through logging: the console and the run's log file
            log.info("results (%s):\n\n%s", self.output_dir / "results.md", self.last_markdown)
