"""``RestorationModule``: the plain supervised restoration method.

Composes one network (``model``: any ``nn.Module`` mapping a degraded image to a restored
one), a loss and an optimiser, all named in its config (``conf/method/restoration.yaml``).
Everything a method shares (scoring, optimisation hooks, checkpoint records) is in
:class:`lightrestore.methods.base.Method`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.methods.base import Method


class RestorationModule(Method):
    """Supervised restoration: ``loss(model(degraded), clean)``.

    Args:
        model: restoration network, ``(B, C, H, W)`` in [0, 1] -> same (or ``scale`` times
            larger for super-resolution).
        loss, optimizer, scheduler, param_groups, frozen, and the task settings: see
            :class:`~lightrestore.methods.base.Method`.
        channels_last: run the model in channels-last memory format (faster convolutions
            on GPUs with bf16).
        compile: ``torch.compile`` the model for training (off by default: the first
            steps compile for tens of seconds; evaluation uses the eager model).
    """

    method_name = "restoration"

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Any,
        channels_last: bool = False,
        compile: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(loss=loss, optimizer=optimizer, **kwargs)
        self.channels_last = bool(channels_last)
        self.compile_model = bool(compile)
        self._compiled: nn.Module | None = None
        self.model = model

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
        """``model(batch.degraded)``: ``(B, C, H, W)`` in [0, 1]."""
        return self(batch.degraded)

    # ------------------------------------------------------------------ training
    def training_step(self, batch: RestorationBatch, batch_idx: int) -> Tensor:
        loss = self.loss(self.restore(batch), batch.clean)
        self.log_train_loss(loss, len(batch))
        return loss
