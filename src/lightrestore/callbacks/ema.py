"""An exponential moving average (EMA) of the method's weights, evaluated and checkpointed
beside the raw weights (BasicSR's ``net_g_ema``). Off by default: ``callbacks=ema``.

After every batch that stepped the optimisers, each floating-point parameter of every
sub-network of the method (:meth:`~lightrestore.methods.base.Method.networks`: the
generator(s), not the loss or the metrics) moves towards the trained one:
``ema <- decay * ema + (1 - decay) * raw`` (``torch._foreach_lerp_``: one fused call per
step, no host synchronisation). Before ``start_step`` (and at the first step) the average
is a copy of the weights. Buffers (BatchNorm statistics) are not averaged: the averaged
network uses the raw network's, as BasicSR's EMA does.

What it adds to a run:

* **Validation**: the EMA weights are scored on the same fixed pairs as the raw ones,
  logged as ``val/ema/{psnr,ssim,l1,l2}/level_i`` and ``.../mean``. The raw weights keep
  ``val/psnr/...``: the difficulty policies (on-demand learning) and the best-checkpoint
  monitor read the network being trained, as without the callback.
* **Testing**: an output ``ema`` (the EMA weights' ``restored``) on every test set, in
  ``results.json`` ``outputs`` and the results tables, beside ``restored``.
* **Checkpoints**: ``checkpoint["ema_state_dict"]`` (the averaged parameters, keyed like
  ``state_dict``) and the callback's counters; a resumed run continues the average exactly.
  ``python -m lightrestore.evaluate ckpt=... weights=ema`` and ``python -m
  lightrestore.restore ckpt=... weights=ema`` use the averaged weights.

Lightning's own ``EMAWeightAveraging`` is not used: it validates only the averaged
weights (so on-demand learning would allocate by the average, not by the network it
trains), swaps them into ``state_dict`` and replaces the raw weights at the end of fit.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import Tensor

from lightrestore.errors import ConfigError

#: the checkpoint entry holding the averaged parameters (keys as in ``state_dict``)
EMA_KEY = "ema_state_dict"


class EMA(Callback):
    """Exponential moving average of the method's parameters.

    Args:
        decay: weight of the running average per optimisation step, in [0, 1)
            (0.999: BasicSR's default; ~1000 steps of memory).
        start_step: optimisation steps before averaging starts (until then the average
            is a copy of the weights).
        validate: also score the average on the validation pairs every validation.
        test: also score the average on every test set (output ``ema``).
    """

    def __init__(
        self, decay: float = 0.999, start_step: int = 0, validate: bool = True, test: bool = True
    ) -> None:
        if not 0.0 <= float(decay) < 1.0:
            raise ConfigError(f"callbacks.ema.decay must be in [0, 1), got {decay}")
        if int(start_step) < 0:
            raise ConfigError(f"callbacks.ema.start_step must be >= 0, got {start_step}")
        self.decay, self.start_step = float(decay), int(start_step)
        self.validate, self.test = bool(validate), bool(test)
        self.updates = 0  # averaging updates so far (batches that stepped the optimisers)
        self.last_step = 0  # trainer.global_step at the last update
        self._names: list[str] = []
        self._params: list[Tensor] = []
        self._average: list[Tensor] = []
        self._loaded: dict[str, Tensor] | None = None
        self._val_metrics: Any = None

    # ------------------------------------------------------------------ the average
    @staticmethod
    def _tracked(pl_module: LightningModule) -> list[tuple[str, Tensor]]:
        """The floating-point parameters of the method's sub-networks, named as in its
        ``state_dict``."""
        networks = getattr(pl_module, "networks", None)
        parts = networks() if callable(networks) else dict(pl_module.named_children())
        return [
            (f"{net}.{name}", p)
            for net, module in parts.items()
            for name, p in module.named_parameters()
            if p.is_floating_point()
        ]

    def _ensure(self, pl_module: LightningModule) -> None:
        """Build the average on the weights' device (from a checkpoint when resuming)."""
        if self._average:
            return
        tracked = self._tracked(pl_module)
        self._names = [n for n, _ in tracked]
        self._params = [p for _, p in tracked]
        loaded = self._loaded or {}
        missing = [n for n in self._names if n not in loaded]
        if loaded and missing:
            from lightrestore.storage.checkpoints import CheckpointError

            raise CheckpointError(
                f"the checkpoint's EMA weights lack {missing[:3]} ({len(missing)} in all): it was "
                "saved by another model; resume it without callbacks=ema, or start a new run"
            )
        self._average = [
            (loaded[n].to(p.device, p.dtype) if n in loaded else p.detach()).clone()
            for n, p in tracked
        ]
        self._loaded = None

    @torch.no_grad()
    def update(self) -> None:
        """Average in the current weights (one call per batch that stepped the optimisers)."""
        params = [p.detach() for p in self._params]
        self.updates += 1
        if self.updates <= max(1, self.start_step):
            torch._foreach_copy_(self._average, params)
        else:
            torch._foreach_lerp_(self._average, params, 1.0 - self.decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the raw and averaged parameter values (twice restores them)."""
        for p, a in zip(self._params, self._average, strict=True):
            tmp = p.detach().clone()
            p.detach().copy_(a)
            a.copy_(tmp)

    def average_state(self) -> dict[str, Tensor]:
        """The averaged parameters, keyed like the method's ``state_dict`` (on CPU)."""
        return {
            n: a.detach().cpu().clone() for n, a in zip(self._names, self._average, strict=True)
        }

    def restore_with_average(self, pl_module: LightningModule, batch: Any) -> Tensor:
        """``pl_module.restore(batch)`` with the averaged weights."""
        self.swap()
        try:
            return pl_module.restore(batch)
        finally:
            self.swap()

    # ------------------------------------------------------------------ hooks
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        extra = getattr(pl_module, "extra_outputs", None)
        if self.test and isinstance(extra, dict):
            extra["ema"] = lambda batch: self.restore_with_average(pl_module, batch)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._ensure(pl_module)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._ensure(pl_module)  # test without fit (evaluate): the average of a checkpoint

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # global_step counts optimiser steps (several per batch with manual optimisation,
        # none on a batch that only accumulates gradients)
        if trainer.global_step > self.last_step:
            self.update()
            self.last_step = trainer.global_step

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.validate or trainer.sanity_checking or not hasattr(pl_module, "val_metrics"):
            self._val_metrics = None
            return
        self._ensure(pl_module)
        if self._val_metrics is None or self._val_metrics.device != pl_module.device:
            self._val_metrics = pl_module._level_metrics(pl_module.val_metrics.n_levels)
            self._val_metrics = self._val_metrics.to(pl_module.device)
        self._val_metrics.reset()

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._val_metrics is not None:
            restored = self.restore_with_average(pl_module, batch)
            self._val_metrics.update(restored, batch.clean, batch.level)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._val_metrics is not None:
            pl_module._log_levels("val/ema", self._val_metrics.compute())
            self._val_metrics.reset()

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "updates": self.updates, "last_step": self.last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.updates = int(state_dict.get("updates", 0))
        self.last_step = int(state_dict.get("last_step", 0))

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        self._ensure(pl_module)
        checkpoint[EMA_KEY] = self.average_state()

    def on_load_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if EMA_KEY in checkpoint:  # else (a run trained without EMA): start from its weights
            self._loaded = dict(checkpoint[EMA_KEY])
            self._average = []


def ema_state_dict(checkpoint: dict[str, Any], path: Any = "") -> dict[str, Any]:
    """The checkpoint's ``state_dict`` with the averaged parameters in place of the raw
    ones (``weights=ema`` in evaluate and restore). Raises ``KeyError`` with the fix when
    the run was trained without ``callbacks=ema``."""
    if EMA_KEY not in checkpoint:
        raise KeyError(
            f"checkpoint {path} holds no EMA weights (its run was trained without "
            "callbacks=ema): use weights=raw"
        )
    return {**checkpoint["state_dict"], **checkpoint[EMA_KEY]}
