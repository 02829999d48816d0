"""The batch every method receives."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class RestorationBatch:
    """A batch of clean/degraded pairs.

    Attributes:
        clean: ``(B, C, H, W)`` float in [0, 1], the ground truth.
        degraded: ``(B, C, H, W)`` float in [0, 1], the network input.
        level: ``(B,)`` int64 difficulty level of each sample (1-based).
        params: the degradation's per-sample parameters (``Degradation.sample``),
            e.g. hole positions or masks, so methods that need the forward model
            (DL-Net) can call ``degradation.operator(x, params)``.
    """

    clean: Tensor
    degraded: Tensor
    level: Tensor
    params: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.clean.shape[0]

    def to(self, device: torch.device | str) -> RestorationBatch:
        return RestorationBatch(
            clean=self.clean.to(device),
            degraded=self.degraded.to(device),
            level=self.level.to(device),
            params={k: v.to(device) for k, v in self.params.items()},
        )
