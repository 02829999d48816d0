"""DL-Net's data likelihood ``‖W x − y‖²`` from a batch's degradation parameters.

Shared by DL-Net (the inner loop on ``z``) and the naive-likelihood baseline (an extra
loss term). ``W`` is the task's forward model:

* masking tasks (inpainting, interpolation, or a user-given mask in ``restore``):
  ``W x = M ⊙ x``, so the likelihood is ``‖M ⊙ (x − y)‖²`` over the observed pixels
  ``M`` (the missing pixels contribute nothing);
* other tasks: the degradation's ``operator`` (blur; blur + MATLAB-bicubic down-sampling
  for super-resolution), ``‖W x − y‖²``.

Images ``(B, C, H, W)`` in [0, 1]; masks ``(B, 1, H, W)`` in {0, 1}.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from lightrestore.data.batch import RestorationBatch

#: the params key of a user-given observed-pixel mask ``(B, 1, H, W)`` (``restore mask=``)
OBSERVED = "observed"


def observed_mask(degradation: Any, batch: RestorationBatch, like: Tensor) -> Tensor | None:
    """The observed-pixel mask ``M`` ``(B, 1, H, W)`` (1 = observed) of a masking task, from
    the batch's parameters (a user-given ``observed`` mask first); ``None`` for other tasks."""
    given = batch.params.get(OBSERVED) if batch.params else None
    if given is not None:
        return given.to(like.dtype)
    if not hasattr(degradation, "observed_mask"):
        return None
    return degradation.observed_mask(batch.params, like.shape, like.dtype)


def has_forward_model(degradation: Any, batch: RestorationBatch) -> bool:
    """Whether ``W`` is known for this batch (a mask or the degradation's parameters)."""
    if not batch.params:
        return False
    return OBSERVED in batch.params or degradation is not None


def squared_residual(
    degradation: Any, pred: Tensor, batch: RestorationBatch, mask: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """``(W pred − y)²`` element-wise and the mask it was taken over (``None``: ``W`` is the
    degradation's operator). ``mask`` (``M``, computed once per batch by the caller) saves
    recomputing it; without it, it is looked up from the batch."""
    if mask is None:
        mask = observed_mask(degradation, batch, pred)
    if mask is not None:
        return ((pred - batch.degraded) * mask).square(), mask
    return (degradation.operator(pred, batch.params) - batch.degraded).square(), None


def likelihood(
    degradation: Any, pred: Tensor, batch: RestorationBatch, mask: Tensor | None = None
) -> Tensor:
    """``‖W pred − y‖²`` per sample ``(B,)``, summed over the observed pixels (DL-Net's inner
    objective; Adam on ``z`` does not depend on its scale)."""
    sq, _ = squared_residual(degradation, pred, batch, mask)
    return sq.flatten(1).sum(dim=1)


def mean_likelihood(
    degradation: Any, pred: Tensor, batch: RestorationBatch, mask: Tensor | None = None
) -> Tensor:
    """``½ Σ_observed (W pred − y)² / (observed elements)`` per sample ``(B,)``: the
    authors' normalised likelihood (METHODS.md), the scale the naive-likelihood weight λ
    refers to. Observed elements are pixels × channels (all of ``W pred`` for operators)."""
    sq, mask = squared_residual(degradation, pred, batch, mask)
    if mask is None:
        count = sq[0].numel()
        return 0.5 * sq.flatten(1).sum(dim=1) / count
    count = (mask.flatten(1).sum(dim=1) * sq.shape[1]).clamp_min(1.0)
    return 0.5 * sq.flatten(1).sum(dim=1) / count
