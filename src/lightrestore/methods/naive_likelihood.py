"""``NaiveLikelihood``: DL-Net's "naive likelihood" baseline, the likelihood as a loss term.

DL-Net (Guo et al.) compares its inner likelihood recursion with simply adding the data
likelihood to the training loss of the plain backbone ``f``:

    ``L = L_rec(f(y), x) + λ · L_lik``,  ``L_lik = mean_b ½ Σ_observed (W f(y_b) − y_b)² / n_b``

with ``L_rec`` the configured loss, ``W`` the task's forward model (the observed-pixel mask
for inpainting and interpolation, the degradation's ``operator`` otherwise) and ``n_b`` the
observed elements of sample ``b`` (pixels × channels; every element of ``W f(y)`` for
operators): :func:`lightrestore.methods.likelihood.mean_likelihood`, the authors' normalised
likelihood. The paper searched λ ∈ {1e2, …, 1e5}. Restoration is the plain backbone (no
inner loop, no new parameters); only training differs from
:class:`~lightrestore.methods.restoration.RestorationModule`.

Images ``(B, C, H, W)`` in [0, 1]; masks ``(B, 1, H, W)`` in {0, 1}.
Logged besides the usual ``train/loss*``: ``train/loss_rec`` and ``train/loss_lik`` per step.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.methods.likelihood import has_forward_model, mean_likelihood
from lightrestore.methods.restoration import RestorationModule


class NaiveLikelihood(RestorationModule):
    """Supervised restoration plus λ times the data likelihood of the output.

    Args:
        model: restoration network, ``(B, C, H, W)`` in [0, 1] -> same.
        loss: the reconstruction loss ``L_rec(pred, clean) -> scalar``.
        optimizer: a Hydra partial ``optimizer(params=...)``.
        lam: the likelihood weight λ >= 0 (paper's search: 1e2..1e5; 0 is plain training).
        other arguments: :class:`~lightrestore.methods.restoration.RestorationModule`.
    """

    method_name = "naive_likelihood"

    def __init__(
        self, model: nn.Module, loss: nn.Module, optimizer: Any, lam: float = 1e3, **kwargs: Any
    ) -> None:
        if isinstance(lam, bool) or not isinstance(lam, (int, float)):
            raise ConfigError(f"naive_likelihood: lam must be a number >= 0, got {lam!r}")
        if not math.isfinite(float(lam)) or float(lam) < 0:
            raise ConfigError(f"naive_likelihood: lam must be a finite number >= 0, got {lam!r}")
        super().__init__(model=model, loss=loss, optimizer=optimizer, **kwargs)
        self.lam = float(lam)

    def likelihood_loss(self, pred: Tensor, batch: RestorationBatch) -> Tensor:
        """``L_lik``: the mean over the batch of ``½ Σ_observed (W pred − y)² / n_b``, a
        scalar (``pred`` ``(B, C, H, W)``)."""
        return mean_likelihood(self.degradation, pred, batch).mean()

    def training_step(self, batch: RestorationBatch, batch_idx: int) -> Tensor:
        pred = self.restore(batch)
        rec = self.loss(pred, batch.clean)
        if has_forward_model(self.degradation, batch):
            lik = self.likelihood_loss(pred, batch)
            total = rec + self.lam * lik
        elif self.lam > 0:
            raise ConfigError(
                "naive_likelihood needs the task's forward model W (the degradation and its "
                "per-sample parameters in the batch); set method.lam=0 or use method=restoration"
            )
        else:
            lik, total = None, rec
        self.log_train_loss(total, len(batch))
        self.log_step({"train/loss_rec": rec} if lik is None else {"train/loss_rec": rec, "train/loss_lik": lik})
        return total
