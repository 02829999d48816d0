"""``LapSRNModule``: LapSRN's deep supervision, a loss on every pyramid level.

LapSRN (Lai et al., CVPR 2017, Eq. 2) trains every level of its Laplacian pyramid: the
×2, ×4, … outputs (up to the scale) each against the HR image downscaled to that level's
size (MATLAB bicubic, :func:`lightrestore.degradations.resize.imresize`), the loss summed
over levels (the paper's Charbonnier loss: ``loss=charbonnier``). The configured loss is
called once per level, so PSPL and hard mining (which wrap ``self.loss``) act on every
level, hard mining choosing its hardest samples per level. Restoring, scoring and
everything else are :class:`~lightrestore.methods.restoration.RestorationModule`'s: the
output is the finest level (``forward``).

The model must have ``forward_pyramid(x) -> [level outputs, coarse to fine]`` whose last
entry is ``forward(x)`` (:class:`lightrestore.models.sr.LapSRN`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.degradations.resize import imresize
from lightrestore.errors import ConfigError
from lightrestore.methods.restoration import RestorationModule


def level_targets(clean: Tensor, outputs: list[Tensor]) -> list[Tensor]:
    """The HR image at each output's size: MATLAB-bicubic downscaled (antialiased) by
    ``H_out / H`` and clamped to [0, 1] as the task's LR images; the finest is ``clean``."""
    size = tuple(clean.shape[-2:])
    targets = []
    for out in outputs:
        s = tuple(out.shape[-2:])
        if s == size:
            targets.append(clean)
        else:
            t = imresize(clean, scale=s[-1] / size[-1], size=s).clamp(0.0, 1.0)
            targets.append(t)
    return targets


class LapSRNModule(RestorationModule):
    """Supervised restoration with LapSRN's loss on every pyramid level:
    ``sum_l loss(pyramid(degraded)[l], clean downscaled to level l)``.

    Args: as :class:`~lightrestore.methods.restoration.RestorationModule`; ``model`` needs
    ``forward_pyramid``.
    """

    method_name = "lapsrn"

    def __init__(self, model: nn.Module, loss: nn.Module, optimizer: Any, **kwargs: Any) -> None:
        if not callable(getattr(model, "forward_pyramid", None)):
            raise ConfigError(
                f"method=lapsrn trains every pyramid level and needs a model with "
                f"forward_pyramid(x) (model=sr_lapsrn), got {type(model).__name__}"
            )
        super().__init__(model=model, loss=loss, optimizer=optimizer, **kwargs)

    def pyramid(self, degraded: Tensor) -> list[Tensor]:
        """Every level's output, coarse to fine (the last is :meth:`forward`'s)."""
        if self.channels_last and degraded.dim() == 4:
            degraded = degraded.contiguous(memory_format=torch.channels_last)
        return list(self.model.forward_pyramid(degraded))

    def level_losses(self, batch: RestorationBatch) -> list[Tensor]:
        """One loss per pyramid level (x2, x4, ... up to the scale), coarse to fine."""
        outputs = self.pyramid(batch.degraded)
        targets = level_targets(batch.clean, outputs)
        return [self.loss(out, tgt) for out, tgt in zip(outputs, targets)]

    def training_step(self, batch: RestorationBatch, batch_idx: int) -> Tensor:
        losses = self.level_losses(batch)
        loss = torch.stack(losses).sum()
        self.log_train_loss(loss, len(batch))
        if len(losses) > 1:
            self.log_step({f"train/loss_x{2 ** (i + 1)}": v for i, v in enumerate(losses)})
        return loss
