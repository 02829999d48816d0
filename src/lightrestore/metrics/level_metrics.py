"""Per-level restoration metrics, synced across DDP ranks by torchmetrics."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torchmetrics import Metric

from lightrestore.metrics.image_quality import MEASURES, measure_all


class LevelMetrics(Metric):
    """Mean PSNR / SSIM / L1 / L2 per difficulty level.

    States are per-level sums and counts (reduced with ``sum`` over ranks), so the
    computed means are those of the gathered predictions and identical on every rank.

    Args:
        n_levels: the number of levels tracked (``1..n_levels``).
        measure: ``measure(pred, target) -> {"psnr", "ssim", "l1", "l2"}`` of ``(B,)``
            tensors; default :func:`measure_all` (all channels). SR uses the Y channel
            with a border crop (``lightrestore.metrics.sr.measure_y``).

    ``update(pred, target, level)``: ``pred``/``target`` ``(B, C, H, W)`` in [0, 1]
    (predictions are clamped), ``level`` ``(B,)`` in ``1..n_levels``.
    ``compute()`` returns ``{level: {"psnr", "ssim", "l1", "l2", "count"}}`` (floats)
    for every level that received at least one image.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self, n_levels: int, measure: Callable[[Tensor, Tensor], dict] | None = None, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.n_levels = int(n_levels)
        self.measure = measure or measure_all
        for name in MEASURES:
            self.add_state(
                f"sum_{name}", torch.zeros(self.n_levels, dtype=torch.float64), dist_reduce_fx="sum"
            )
        self.add_state(
            "count", torch.zeros(self.n_levels, dtype=torch.float64), dist_reduce_fx="sum"
        )

    def update(self, pred: Tensor, target: Tensor, level: Tensor) -> None:  # type: ignore[override]
        idx = level.long() - 1
        values = self.measure(pred.detach(), target.detach())
        for name, v in values.items():
            getattr(self, f"sum_{name}").index_add_(0, idx, v.double())
        self.count.index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))

    def compute(self) -> dict[int, dict[str, float]]:  # type: ignore[override]
        out: dict[int, dict[str, float]] = {}
        counts = self.count.tolist()
        sums = {name: getattr(self, f"sum_{name}").tolist() for name in MEASURES}
        for i, n in enumerate(counts):
            if n > 0:
                row = {name: sums[name][i] / n for name in MEASURES}
                row["count"] = int(n)
                out[i + 1] = row
        return out
