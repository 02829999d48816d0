"""``RestorationModule``: the plain supervised restoration method.

Composes a model (any ``nn.Module`` mapping a degraded image to a restored one), a
loss and an optimiser, all given by config. Other methods (DL-Net, Golf, LIRA)
subclass it and change :meth:`restore` or :meth:`training_step`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import Tensor, nn
from torchmetrics import MeanMetric

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.metrics.level_metrics import LevelMetrics

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class RestorationModule(LightningModule):
    """Supervised restoration: ``loss(model(degraded), clean)``.

    Args:
        model: restoration network, ``(B, C, H, W)`` in [0, 1] -> same.
        loss: a criterion ``loss(pred, target) -> scalar``.
        optimizer: a factory ``optimizer(params) -> Optimizer`` (a Hydra partial).
        scheduler: optional factory ``scheduler(optimizer) -> LRScheduler``.
        n_val_levels: levels tracked in validation (``N``).
        n_test_levels: levels tracked in testing (``N+1``).
        metric_space, metric_border: ``"rgb"`` (all channels) or ``"y"`` (the Y channel,
            super-resolution), with a border of pixels cropped.
        channels_last: run the model in channels-last memory format (faster convolutions
            on GPUs with bf16).
        compile: ``torch.compile`` the model for training (off by default: the first
            steps compile for tens of seconds; evaluation uses the eager model).
        name: the method's name recorded in checkpoints (``conf/method/<name>.yaml`` sets
            it; default the class's ``method_name``), checked by ``expect_method``.

    Logged: ``train/loss_step``, ``train/loss`` (epoch mean);
    ``val/{psnr,ssim,l1,l2}/level_{i}`` and ``.../mean`` (mean over the validated levels);
    the same under ``test/`` plus ``test/input_psnr/level_{i}`` (the degraded input's PSNR),
    and under ``test/<variant>/`` for each extra test set (e.g. centred holes).
    """

    method_name = "restoration"

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: OptimizerFactory,
        scheduler: Callable[..., Any] | None = None,
        n_val_levels: int = 5,
        n_test_levels: int = 6,
        metric_space: str = "rgb",
        metric_border: int = 0,
        channels_last: bool = False,
        compile: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__()
        self.method_name = str(name) if name else type(self).method_name
        self.channels_last = bool(channels_last)
        self.compile_model = bool(compile)
        self._compiled: nn.Module | None = None
        if metric_space not in ("rgb", "y"):
            raise ConfigError(f"metric_space must be 'rgb' or 'y', got {metric_space!r}")
        self.metric_space, self.metric_border = metric_space, int(metric_border)
        self.model = model
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.n_test_levels = int(n_test_levels)
        self.train_loss = MeanMetric()
        self.val_metrics = self._level_metrics(n_val_levels)
        self.test_metrics = nn.ModuleDict({"default": self._level_metrics(n_test_levels)})
        self.test_input_metrics = nn.ModuleDict({"default": self._level_metrics(n_test_levels)})
        self.test_set_names: list[str] = ["default"]
        self.val_results: dict[int, dict[str, float]] = {}
        self.test_results: dict[int, dict[str, float]] = {}
        self.test_input_results: dict[int, dict[str, float]] = {}
        #: per test variant other than "default": {"levels": ..., "input": ...}
        self.test_variant_results: dict[str, dict[str, dict[int, dict[str, float]]]] = {}
        #: set by the hard-mining policy: back-propagate only this fraction of each
        #: batch, the samples with the highest loss (None = every sample)
        self.hard_mining_fraction: float | None = None
        self.run_config: dict[str, Any] | None = None  # the resolved config, saved in checkpoints

    def _level_metrics(self, n_levels: int) -> LevelMetrics:
        """Per-level metrics in the configured space: all channels, or the Y channel with
        a border crop (super-resolution's convention)."""
        if self.metric_space == "y":
            from lightrestore.metrics.sr import measure_y

            return LevelMetrics(n_levels, measure=partial(measure_y, border=self.metric_border))
        return LevelMetrics(n_levels)

    @property
    def protocol(self) -> str:
        """How the metrics were measured, for results files."""
        if self.metric_space == "y":
            return (
                "PSNR/SSIM/L1/L2 on the Y channel (ITU-R BT.601 studio range, as MATLAB's rgb2ycbcr) "
                f"with a border of {self.metric_border} px cropped"
            )
        return "PSNR/SSIM/L1/L2 on all channels"

    # ------------------------------------------------------------------ forward
    def configure_model(self) -> None:
        """Speed options: channels-last memory format and ``torch.compile``. The compiled
        callable is kept outside the module tree, so checkpoints keep the plain keys."""
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.compile_model and self._compiled is None:
            object.__setattr__(self, "_compiled", torch.compile(self.model))

    def forward(self, degraded: Tensor) -> Tensor:
        if self.channels_last and degraded.dim() == 4:
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        model = self._compiled if self._compiled is not None and self.training else self.model
        return model(degraded)

    def restore(self, batch: RestorationBatch) -> Tensor:
        """The method's restoration of ``batch.degraded``: ``(B, C, H, W)`` in [0, 1]."""
        return self(batch.degraded)

    @staticmethod
    def input_estimate(batch: RestorationBatch) -> Tensor:
        """The degraded input as an estimate of the clean image (the "do nothing"
        baseline of the results' ``input_psnr``): itself, or for super-resolution its
        MATLAB-bicubic upscaling (the field's "Bicubic" row)."""
        d, size = batch.degraded, tuple(batch.clean.shape[-2:])
        if tuple(d.shape[-2:]) == size:
            return d
        from lightrestore.degradations.resize import imresize

        return imresize(d, scale=size[-1] / d.shape[-1], size=size)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: RestorationBatch, batch_idx: int) -> Tensor:
        pred = self.restore(batch)
        loss = self.training_loss(pred, batch.clean)
        self.log_train_loss(loss, len(batch))
        return loss

    def training_loss(self, pred: Tensor, target: Tensor) -> Tensor:
        """The configured loss; under hard mining the mean over the hardest samples.

        Hard mining (ODL's baseline) keeps the ``ceil(fraction·B)`` samples with the
        highest per-sample loss (10 of 100 in the paper) and back-propagates only them.
        """
        if self.hard_mining_fraction is None:
            return self.loss(pred, target)
        per_sample = self.loss.per_sample(pred, target)
        k = max(1, math.ceil(self.hard_mining_fraction * per_sample.shape[0]))
        return per_sample.topk(min(k, per_sample.shape[0])).values.mean()

    def log_train_loss(self, loss: Tensor, batch_size: int) -> None:
        """``train/loss_step`` (this rank, no sync) and ``train/loss`` (epoch mean over
        ranks, synced once per epoch by torchmetrics)."""
        self.train_loss.update(loss.detach(), weight=batch_size)
        self.log("train/loss_step", loss.detach(), prog_bar=True, on_step=True, on_epoch=False)
        self.log("train/loss", self.train_loss, on_step=False, on_epoch=True)
        terms = getattr(self.loss, "log_values", None)  # e.g. PSPL's delta and attention stats
        if callable(terms):
            name = type(self.loss).__name__
            for key, value in terms().items():
                self.log(f"train/{name}/{key}", value, on_step=True, on_epoch=False)

    # ------------------------------------------------------------------ validation
    def validation_step(self, batch: RestorationBatch, batch_idx: int) -> None:
        self.val_metrics.update(self.restore(batch), batch.clean, batch.level)

    def on_validation_epoch_end(self) -> None:
        self.val_results = self.val_metrics.compute()
        self.val_metrics.reset()
        self._log_levels("val", self.val_results)

    # ------------------------------------------------------------------ test
    def on_test_start(self) -> None:
        """One pair of metrics per test set (the DataModule's variants, e.g. centred holes)."""
        names = list(getattr(self.trainer.datamodule, "test_set_names", None) or ["default"])
        if names != self.test_set_names:
            self.test_set_names = names
            self.test_metrics = nn.ModuleDict(
                {n: self._level_metrics(self.n_test_levels) for n in names}
            )
            self.test_input_metrics = nn.ModuleDict(
                {n: self._level_metrics(self.n_test_levels) for n in names}
            )
            self.test_metrics.to(self.device)
            self.test_input_metrics.to(self.device)

    def test_step(self, batch: RestorationBatch, batch_idx: int, dataloader_idx: int = 0) -> None:
        name = self.test_set_names[dataloader_idx]
        self.test_metrics[name].update(self.restore(batch), batch.clean, batch.level)
        self.test_input_metrics[name].update(self.input_estimate(batch), batch.clean, batch.level)

    def on_test_epoch_end(self) -> None:
        self.test_variant_results = {}
        for name in self.test_set_names:
            levels = self.test_metrics[name].compute()
            inputs = self.test_input_metrics[name].compute()
            self.test_metrics[name].reset()
            self.test_input_metrics[name].reset()
            prefix = "test" if name == "default" else f"test/{name}"
            self._log_levels(prefix, levels)
            for level, row in inputs.items():
                self.log(f"{prefix}/input_psnr/level_{level}", row["psnr"], sync_dist=True)
            if name == "default":
                self.test_results, self.test_input_results = levels, inputs
            else:
                self.test_variant_results[name] = {"levels": levels, "input": inputs}

    def _log_levels(self, stage: str, results: dict[int, dict[str, float]]) -> None:
        """Log per-level values.

        They are already synced over ranks by torchmetrics, hence identical on every
        rank; ``sync_dist=True`` averages identical values (a no-op) and keeps
        Lightning from warning about epoch-level logging in DDP.
        """
        if not results:
            return
        prog = stage == "val"
        for level, row in results.items():
            for name in ("psnr", "ssim", "l1", "l2"):
                self.log(f"{stage}/{name}/level_{level}", row[name], sync_dist=True)
        train_levels = [lv for lv in results if lv <= self.val_metrics.n_levels]
        for name in ("psnr", "ssim", "l1", "l2"):
            mean = sum(results[lv][name] for lv in train_levels) / max(1, len(train_levels))
            self.log(f"{stage}/{name}/mean", mean, prog_bar=prog and name == "psnr", sync_dist=True)

    # ------------------------------------------------------------------ optim
    def configure_optimizers(self) -> Any:
        optimizer = self.optimizer_factory(params=[p for p in self.parameters() if p.requires_grad])
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    # ------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["lightrestore"] = {
            "method": self.method_name,
            "model": type(self.model).__name__,
            "config": self.run_config,
        }
