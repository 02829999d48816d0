"""``DLNet``: the likelihood recursion of DL-Net around any split backbone.

For a degraded input ``y`` with the task's forward model ``W`` (the degradation's
``operator``, from the batch's per-sample parameters) and a backbone ``f = h ∘ g`` that
follows the split contract (:class:`lightrestore.models.split.SplitModel`):

1. ``z_0 = g(y)``: the last hidden representation, before its activation;
2. ``K − 1`` Adam steps on ``z`` minimising the data likelihood
   ``L(z) = ‖W h(z, y) − y‖²`` summed over the observed pixels (inpainting and interpolation:
   the missing pixels contribute nothing; deblurring and SR: ``W`` blurs / down-samples),
   with β1 0.9, β2 0.999, bias correction and the update ``γ · m̂ / √max(v̂, 1e-16)``
   (ε inside the max, as the authors' code);
3. the output ``h(z_{K−1}, y)``. ``K`` counts network evaluations of ``h``: ``K = 1`` is the
   plain backbone (joint training).

Training keeps the graph through the inner steps (second order), so the outer loss trains
``g`` and ``h``; validation, test and ``restore`` run the inner steps with gradients on
``z`` only (``needs_grad_at_eval``: the builder turns Lightning's inference mode off). DL-Net
adds no parameters. Images ``(B, C, H, W)`` in [0, 1]; ``z`` the backbone's feature shape.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor, nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.methods.likelihood import has_forward_model, likelihood, observed_mask
from lightrestore.methods.restoration import RestorationModule
from lightrestore.models.split import SplitModel

log = logging.getLogger(__name__)

BETA1, BETA2, V_FLOOR = 0.9, 0.999, 1e-16


def adam_step(z: Tensor, grad: Tensor, m: Tensor, v: Tensor, t: int, gamma: float) -> tuple[Tensor, Tensor, Tensor]:
    """One bias-corrected Adam step on ``z`` (step number ``t`` from 1), ε inside the max:
    returns the new ``(z, m, v)``; differentiable (no in-place updates)."""
    m = BETA1 * m + (1.0 - BETA1) * grad
    v = BETA2 * v + (1.0 - BETA2) * grad * grad
    m_hat = m / (1.0 - BETA1**t)
    v_hat = v / (1.0 - BETA2**t)
    return z - gamma * m_hat / torch.sqrt(torch.clamp(v_hat, min=V_FLOOR)), m, v


def adam_step_(z: Tensor, grad: Tensor, m: Tensor, v: Tensor, t: int, gamma: float) -> None:
    """:func:`adam_step` in place on ``z``, ``m`` and ``v`` (evaluation: no graph to keep),
    with two temporaries instead of eight."""
    m.mul_(BETA1).add_(grad, alpha=1.0 - BETA1)
    v.mul_(BETA2).addcmul_(grad, grad, value=1.0 - BETA2)
    denom = (v / (1.0 - BETA2**t)).clamp_(min=V_FLOOR).sqrt_()
    z.addcdiv_(m, denom, value=-gamma / (1.0 - BETA1**t))


class DLNet(RestorationModule):
    """DL-Net (see the module docstring).

    Args:
        model: a split backbone (``features``, ``head(z, x)``).
        k: network evaluations of ``h`` (``K``; 1 = the plain backbone). Paper: 5.
        gamma: the inner Adam step size (paper: 1e-3; 1e-2 for interpolation).
        other arguments: :class:`~lightrestore.methods.restoration.RestorationModule`.
    """

    method_name = "dlnet"
    needs_grad_at_eval = True

    def __init__(self, model: nn.Module, loss: nn.Module, optimizer: Any, k: int = 5,
                 gamma: float = 1e-3, **kwargs: Any) -> None:  # fmt: skip
        if not isinstance(model, SplitModel):
            raise ConfigError(
                f"method=dlnet needs a backbone split into features(x) and head(z, x) "
                f"(lightrestore.models.split.SplitModel); {type(model).__name__} is not"
            )
        if int(k) < 1 or float(gamma) <= 0:
            raise ConfigError(f"DL-Net needs k >= 1 and gamma > 0, got k={k}, gamma={gamma}")
        super().__init__(model=model, loss=loss, optimizer=optimizer, **kwargs)
        self.k, self.gamma = int(k), float(gamma)
        self._warned_no_params = False

    def observed(self, batch: RestorationBatch, like: Tensor) -> Tensor | None:
        """The observed-pixel mask ``M`` ``(B, 1, H, W)`` of masking tasks (inpainting,
        interpolation, a user-given mask: ``W x = M ⊙ x``), ``None`` for the others."""
        return observed_mask(self.degradation, batch, like)

    def likelihood(self, pred: Tensor, batch: RestorationBatch, mask: Tensor | None = None) -> Tensor:
        """``‖W pred − y‖²`` per sample ``(B,)``, summed over the observed pixels (see
        :func:`lightrestore.methods.likelihood.likelihood`; ``mask``: ``M``, computed once
        per batch by the caller)."""
        return likelihood(self.degradation, pred, batch, mask)

    def _has_forward_model(self, batch: RestorationBatch) -> bool:
        if has_forward_model(self.degradation, batch):
            return True
        if self.k > 1 and not self._warned_no_params:
            log.warning("DL-Net: no degradation parameters for these images (no mask or blur "
                        "width): the inner loop is skipped, K=1")  # fmt: skip
            self._warned_no_params = True
        return False

    def restore(self, batch: RestorationBatch) -> Tensor:
        y = batch.degraded
        if self.k == 1 or not self._has_forward_model(batch):
            return self.model.head(self.model.features(y), y)
        mask = self.observed(batch, y)
        if self.training:  # the graph through g and the inner steps (second order)
            z = self.model.features(y)
        else:  # gradients on z only: g runs without a graph
            with torch.no_grad():
                z = self.model.features(y)
            z = z.requires_grad_(True)
        with torch.enable_grad():
            m = torch.zeros_like(z)
            v = torch.zeros_like(z)
            for t in range(1, self.k):
                lik = self.likelihood(self.model.head(z, y), batch, mask).sum()
                (grad,) = torch.autograd.grad(lik, z, create_graph=self.training)
                if self.training:  # differentiable: the outer loss trains g and h through it
                    z, m, v = adam_step(z, grad, m, v, t, self.gamma)
                else:
                    with torch.no_grad():
                        adam_step_(z, grad, m, v, t, self.gamma)
            out = self.model.head(z, y)
        return out if self.training else out.detach()
