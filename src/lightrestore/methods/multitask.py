"""``MultitaskUncertainty``: multi-task learning with learned uncertainty weights.

Kendall, Gal & Cipolla (CVPR 2018) weight the losses of several tasks by learned
homoscedastic uncertainties; DL-Net (Guo et al.) uses it as a baseline for training one
backbone on many degradation levels, each level a sub-task with its own learned
log-variance ``s_i``:

    ``L = Σ_{i present in the batch} exp(−s_i) · L_i + s_i``

where ``L_i`` is the mean of the configured loss's per-sample values
(``loss.per_sample(pred, clean)``, ``(B,)``) over the batch's samples of sub-task ``i``.
Sub-tasks absent from a batch contribute nothing (and their ``s_i`` get a zero gradient).

Sub-tasks are equal bins of the per-sample severity ``batch.params["severity"]`` ``(B,)``
(hole side in px for inpainting, deleted fraction for interpolation) over
``severity_range = [lo, hi]``:
``i = clamp(floor((severity − lo) / (hi − lo) · n_tasks), 0, n_tasks − 1)`` (with
:data:`EDGE_TOL` bins of slack for float32 edges). DL-Net's 30 sub-tasks: inpainting sides 1..30 px with ``[0.5, 30.5]`` (side ``s`` -> ``s − 1``);
interpolation 2.5 % bins with ``[0.0, 0.75]``.

The log-variances are a sub-network (``task_weights``: a :class:`LogVariances`, zeros at
the start, so every weight ``exp(−s_i)`` starts at 1), trained by the method's optimiser and
saved in checkpoints. Restoration is the plain model. Images ``(B, C, H, W)`` in [0, 1].

Logged at every training-epoch end: ``train/mtl_weight/task_{i}`` = ``exp(−s_i)`` (1-based
``i``); :attr:`MultitaskUncertainty.task_weight_values` holds the same values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.methods.restoration import RestorationModule

#: bins of slack when binning severities: float32 rounding of decimal bin edges (~1e-7 bins
#: for rates in [0, 1]) is absorbed, no real severity moves
EDGE_TOL = 1e-5


class LogVariances(nn.Module):
    """One learned log-variance ``s_i`` per sub-task: ``log_var`` ``(n_tasks,)``, zeros."""

    def __init__(self, n_tasks: int) -> None:
        super().__init__()
        self.log_var = nn.Parameter(torch.zeros(int(n_tasks)))

    def forward(self) -> Tensor:
        """``s`` ``(n_tasks,)``."""
        return self.log_var

    @property
    def weights(self) -> Tensor:
        """``exp(−s)`` ``(n_tasks,)``, detached: each sub-task's weight."""
        return torch.exp(-self.log_var.detach())

    def extra_repr(self) -> str:
        return f"n_tasks={self.log_var.numel()}"


def _check_range(severity_range: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in severity_range)
    except (TypeError, ValueError):
        raise ConfigError(
            f"multitask_uncertainty: severity_range must be two numbers [lo, hi], "
            f"got {severity_range!r}"
        ) from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ConfigError(
            f"multitask_uncertainty: severity_range needs finite lo < hi, got [{lo:g}, {hi:g}]"
        )
    return lo, hi


class MultitaskUncertainty(RestorationModule):
    """Joint training over severity sub-tasks, each loss weighted by a learned uncertainty.

    Args:
        model: restoration network, ``(B, C, H, W)`` in [0, 1] -> same.
        loss: a loss with a per-sample form, ``per_sample(pred, target) -> (B,)``
            (``loss=mse``, ``l1``, ``charbonnier``, ``pspl``).
        optimizer: a Hydra partial ``optimizer(params=...)``; it also trains the
            log-variances (``task_weights``).
        n_tasks: the number of sub-tasks (DL-Net: 30).
        severity_range: ``[lo, hi]``, the severities cut into ``n_tasks`` equal bins
            (DL-Net inpainting ``[0.5, 30.5]``, interpolation ``[0.0, 0.75]``); severities
            outside go to the first or last sub-task.
        other arguments: :class:`~lightrestore.methods.restoration.RestorationModule`.
    """

    method_name = "multitask_uncertainty"

    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module,
        optimizer: Any,
        n_tasks: int = 30,
        severity_range: Sequence[float] = (0.5, 30.5),
        **kwargs: Any,
    ) -> None:
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1:
            raise ConfigError(
                f"multitask_uncertainty: n_tasks must be an integer >= 1, got {n_tasks!r}"
            )
        lo, hi = _check_range(severity_range)
        if not callable(getattr(loss, "per_sample", None)):
            raise ConfigError(
                f"multitask_uncertainty needs a loss with a per-sample form (`per_sample`), "
                f"and {type(loss).__name__} has none: use loss=mse, loss=l1 or loss=pspl"
            )
        super().__init__(model=model, loss=loss, optimizer=optimizer, **kwargs)
        self.n_tasks = int(n_tasks)
        self.severity_range = (lo, hi)
        # registered after the model, so the model stays the first network (inference_spec)
        self.task_weights = LogVariances(self.n_tasks)

    # ------------------------------------------------------------------ sub-tasks
    def task_index(self, severity: Tensor) -> Tensor:
        """The sub-task ``(B,)`` long in ``[0, n_tasks)`` of each severity ``(B,)``:
        ``clamp(floor((severity − lo) / (hi − lo) · n_tasks), 0, n_tasks − 1)``, in float64
        with a tolerance of :data:`EDGE_TOL` bins, so a decimal bin edge stored in float32
        (17.5 % is 0.17499999…) lands in the upper bin as written."""
        lo, hi = self.severity_range
        pos = (severity.detach().to(torch.float64) - lo) / (hi - lo) * self.n_tasks
        return torch.floor(pos + EDGE_TOL).long().clamp(0, self.n_tasks - 1)

    def task_losses(self, per_sample: Tensor, index: Tensor) -> tuple[Tensor, Tensor]:
        """``(L, present)``: the mean per-sample loss of each sub-task ``(n_tasks,)``
        (0 where absent) and which sub-tasks the batch holds ``(n_tasks,)`` bool."""
        per_sample = per_sample.float()
        sums = per_sample.new_zeros(self.n_tasks).index_add(0, index, per_sample)
        counts = torch.bincount(index, minlength=self.n_tasks).to(per_sample.dtype)
        return sums / counts.clamp_min(1.0), counts > 0

    def uncertainty_loss(self, per_sample: Tensor, index: Tensor) -> Tensor:
        """``Σ_{i present} exp(−s_i) · L_i + s_i``, a scalar, from the per-sample losses
        ``(B,)`` and their sub-tasks ``(B,)``."""
        means, present = self.task_losses(per_sample, index)
        s = self.task_weights()
        terms = torch.exp(-s) * means + s
        return torch.where(present, terms, torch.zeros_like(terms)).sum()

    def _severity(self, batch: RestorationBatch) -> Tensor:
        sev = batch.params.get("severity") if batch.params else None
        if sev is None:
            raise ConfigError(
                "multitask_uncertainty bins the samples by their degradation's severity, "
                "and this batch has none (batch.params['severity'])"
            )
        return sev

    # ------------------------------------------------------------------ training
    def training_step(self, batch: RestorationBatch, batch_idx: int) -> Tensor:
        pred = self.restore(batch)
        index = self.task_index(self._severity(batch)).to(pred.device)
        loss = self.uncertainty_loss(self.loss.per_sample(pred, batch.clean), index)
        self.log_train_loss(loss, len(batch))
        return loss

    @property
    def task_weight_values(self) -> list[float]:
        """The learned weights ``exp(−s_i)``, sub-task 1 first."""
        return [float(w) for w in self.task_weights.weights.cpu()]

    def on_train_epoch_end(self) -> None:
        """Log ``train/mtl_weight/task_{i}`` = ``exp(−s_i)`` (1-based ``i``); identical on
        every rank, so ``sync_dist`` averages identical values."""
        super().on_train_epoch_end()
        for i, w in enumerate(self.task_weight_values, start=1):
            self.log(f"train/mtl_weight/task_{i}", w, on_step=False, on_epoch=True, sync_dist=True)
