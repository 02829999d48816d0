"""Per-level restoration metrics, synced across DDP ranks by torchmetrics."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor
from torchmetrics import Metric

from lightrestore.metrics.image_quality import (
    MEASURES,
    REGION_MEASURES,
    measure_all,
    measure_region,
)


class LevelMetrics(Metric):
    """Mean PSNR / SSIM / L1 / L2 per difficulty level.

    States are per-level sums and counts (reduced with ``sum`` over ranks), so the
    computed means are those of the gathered predictions and identical on every rank.

    Args:
        n_levels: the number of levels tracked (``1..n_levels``).
        measure: ``measure(pred, target) -> {"psnr", "ssim", "l1", "l2"}`` of ``(B,)``
            tensors; default :func:`measure_all` (all channels). SR uses the Y channel
            with a border crop (``lightrestore.metrics.sr.measure_y``).

    ``update(pred, target, level, region=None)``: ``pred``/``target`` ``(B, C, H, W)`` in
    [0, 1] (predictions are clamped), ``level`` ``(B,)`` in ``1..n_levels``; ``region``
    ``(B, 1, H, W)`` in {0, 1} (the missing pixels of inpainting / interpolation) adds the
    region-only measures ``missing_psnr``, ``missing_l1``, ``missing_l2``
    (:func:`~lightrestore.metrics.image_quality.measure_region`), averaged over the images
    whose region is not empty.
    ``compute()`` returns ``{level: {"psnr", "ssim", "l1", "l2", "count"}}`` (floats)
    for every level that received at least one image, plus the region measures where
    regions were given, plus the ``extra`` measures under their names.

    ``extra``: optional further measures ``{name: fn(pred, target) -> (B,)}`` (e.g.
    ``{"lpips": LPIPS}``, :mod:`lightrestore.metrics.lpips`), given the clamped predictions
    and averaged per level like the others. They are held as a plain attribute, not as
    sub-modules: a network behind one stays out of ``state_dict`` (and checkpoints), one
    instance can serve every ``LevelMetrics`` of a method, and it moves to the data's device
    itself.
    """

    full_state_update = False
    higher_is_better = True

    def __init__(
        self,
        n_levels: int,
        measure: Callable[[Tensor, Tensor], dict] | None = None,
        extra: Mapping[str, Callable[[Tensor, Tensor], Tensor]] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.n_levels = int(n_levels)
        self.measure = measure or measure_all
        extra = dict(extra or {})
        taken = [n for n in extra if n in (*MEASURES, *REGION_MEASURES, "count", "region_count")]
        if taken:
            raise ValueError(f"extra measures {taken} clash with the built-in measures' names")
        # a plain attribute: the measures (e.g. the LPIPS network) are not sub-modules
        object.__setattr__(self, "extra", extra)
        for name in extra:
            self.add_state(
                f"sum_{name}", torch.zeros(self.n_levels, dtype=torch.float64), dist_reduce_fx="sum"
            )
        for name in MEASURES:
            self.add_state(
                f"sum_{name}", torch.zeros(self.n_levels, dtype=torch.float64), dist_reduce_fx="sum"
            )
        self.add_state(
            "count", torch.zeros(self.n_levels, dtype=torch.float64), dist_reduce_fx="sum"
        )
        for name in (*REGION_MEASURES, "region_count"):
            self.add_state(
                f"sum_{name}", torch.zeros(self.n_levels, dtype=torch.float64), dist_reduce_fx="sum"
            )

    def update(  # type: ignore[override]
        self, pred: Tensor, target: Tensor, level: Tensor, region: Tensor | None = None
    ) -> None:
        idx = level.long() - 1
        values = self.measure(pred.detach(), target.detach())
        for name, v in values.items():
            getattr(self, f"sum_{name}").index_add_(0, idx, v.double())
        if self.extra:
            clamped = pred.detach().clamp(0.0, 1.0)
            for name, fn in self.extra.items():
                v = fn(clamped, target.detach()).to(idx.device, torch.float64)
                getattr(self, f"sum_{name}").index_add_(0, idx, v)
        self.count.index_add_(0, idx, torch.ones_like(idx, dtype=torch.float64))
        if region is not None:
            r = measure_region(pred.detach(), target.detach(), region)
            seen = (r.pop("pixels") > 0).double()
            for name, v in r.items():
                getattr(self, f"sum_{name}").index_add_(0, idx, v.double() * seen)
            self.sum_region_count.index_add_(0, idx, seen)

    def compute(self) -> dict[int, dict[str, float]]:  # type: ignore[override]
        out: dict[int, dict[str, float]] = {}
        counts = self.count.tolist()
        sums = {name: getattr(self, f"sum_{name}").tolist() for name in MEASURES}
        regions = self.sum_region_count.tolist()
        region_sums = {name: getattr(self, f"sum_{name}").tolist() for name in REGION_MEASURES}
        extra_sums = {name: getattr(self, f"sum_{name}").tolist() for name in self.extra}
        for i, n in enumerate(counts):
            if n > 0:
                row = {name: sums[name][i] / n for name in MEASURES}
                row.update({name: extra_sums[name][i] / n for name in self.extra})
                row["count"] = int(n)
                if regions[i] > 0:
                    row.update({name: region_sums[name][i] / regions[i] for name in REGION_MEASURES})
                out[i + 1] = row
        return out
