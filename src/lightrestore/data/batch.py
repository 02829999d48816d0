"""The batch every method receives."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class RestorationBatch:
    """A batch of clean/degraded pairs.

    Attributes:
        clean: ``(B, C, H, W)`` float in [0, 1], the ground truth (``None`` for real
            degraded images, :meth:`of_degraded`).
        degraded: ``(B, C, H, W)`` float in [0, 1], the network input.
        level: ``(B,)`` int64 difficulty level of each sample (1-based), or ``None``.
        params: the degradation's per-sample parameters (``Degradation.sample``),
            e.g. hole positions or masks, so methods that need the forward model
            (DL-Net) can call ``degradation.operator(x, params)``.
    """

    clean: Tensor | None
    degraded: Tensor
    level: Tensor | None
    params: dict[str, Tensor] = field(default_factory=dict)

    @classmethod
    def of_degraded(cls, degraded: Tensor, params: dict[str, Tensor] | None = None) -> RestorationBatch:
        """Real degraded images (``restore``): no ground truth (``clean`` and ``level`` are
        ``None``); ``params`` only where the degradation is known."""
        return cls(clean=None, degraded=degraded, level=None, params=dict(params or {}))

    def __len__(self) -> int:
        return self.degraded.shape[0]

    def to(self, device: torch.device | str) -> RestorationBatch:
        return RestorationBatch(
            clean=None if self.clean is None else self.clean.to(device),
            degraded=self.degraded.to(device),
            level=None if self.level is None else self.level.to(device),
            params={k: v.to(device) for k, v in self.params.items()},
        )
