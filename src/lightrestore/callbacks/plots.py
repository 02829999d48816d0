"""Per-run plots: allocation over epochs, validation PSNR per level, test PSNR per level."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger

from lightrestore.reporting.plotting import plot_allocation, plot_psnr_per_epoch, plot_psnr_vs_level


class RunPlots(Callback):
    """Writes ``plots/allocation.png``, ``plots/val_psnr.png`` (each epoch) and
    ``plots/test_psnr.png`` (after testing) in the run folder and sends them to wandb
    at the end. The validation history is saved in checkpoints (resume keeps it).

    Args:
        output_dir: the run folder.
        title: shown on the plots (the experiment name).
    """

    def __init__(self, output_dir: str, title: str = "") -> None:
        self.dir = Path(output_dir) / "plots"
        self.title = title
        self.history: list[tuple[int, dict[int, dict[str, float]]]] = []

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        results = getattr(pl_module, "val_results", None)
        if trainer.sanity_checking or not results:
            return
        self.history.append(
            (int(trainer.current_epoch), {int(k): dict(v) for k, v in results.items()})
        )
        if trainer.is_global_zero:
            plot_psnr_per_epoch(self.history, self.dir / "val_psnr.png", self.title)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        sampler = getattr(trainer.datamodule, "sampler", None)
        if trainer.is_global_zero and sampler is not None and sampler.allocation():
            plot_allocation(sampler.allocation(), self.dir / "allocation.png", self.title)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero or not getattr(pl_module, "test_results", None):
            return
        scores = getattr(pl_module, "test_scores_results", None) or {
            "default": {"restored": pl_module.test_results}
        }
        curves = {}
        for test_set, by_output in scores.items():  # every scored output: restored first
            names = sorted(by_output, key=lambda o: (o != "restored", o == "input", o))
            for output in names:
                if output == "input" and test_set != "default":
                    continue
                label = "degraded input" if output == "input" else output
                label += f" ({test_set})" if test_set != "default" else ""
                curves[label] = {lv: r["psnr"] for lv, r in by_output[output].items()}
                missing = {lv: r["missing_psnr"] for lv, r in by_output[output].items()
                           if "missing_psnr" in r}  # fmt: skip
                if missing and test_set == "default" and output in ("restored", "input"):
                    curves[f"{label}, missing region only"] = missing
        ladder = trainer.datamodule.ladder
        plot_psnr_vs_level(curves, self.dir / "test_psnr.png", ladder.extra_level, self.title)
        self._to_wandb(trainer)

    def _to_wandb(self, trainer: Trainer) -> None:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                # one key per plot: wandb warns when one key holds images of several sizes
                for f in sorted(self.dir.glob("*.png")):
                    logger.log_image(key=f"plots/{f.stem}", images=[str(f)], caption=[f.stem])

    def state_dict(self) -> dict[str, Any]:
        return {"history": [[e, {str(k): v for k, v in res.items()}] for e, res in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = [
            (int(e), {int(k): dict(v) for k, v in res.items()}) for e, res in state["history"]
        ]
