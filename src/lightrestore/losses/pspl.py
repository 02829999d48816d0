"""PSPL: the pixel-level self-paced loss (Lin et al., "PSPL"), for any restoration model.

Each training step:

1. ``m_s`` = the SSIM map between the restored and the ground-truth image (11×11
   Gaussian window, σ 1.5, per channel, zero padding 5 so it keeps the image size,
   C1 = 0.01², C2 = 0.03²), computed *without gradient*;
2. ``m_a = γ · exp(−((m_s − μ) / δ)²)``, the attention, in ``[0, γ]``; ``μ = −1`` puts
   the weight ``γ`` on the worst pixels (SSIM −1) and, while ``δ`` is small, almost none
   on the others;
3. ``δ = α·t + β`` with ``t = (s + 1) / batches_per_epoch`` the fractional epoch of the
   batch, ``s`` the number of optimisation steps before it (the authors' code: an "epoch"
   is 1000 batches, so ``t`` starts at 0.001); as ``δ`` grows the attention spreads to
   every pixel. The method sets ``s`` before every training batch
   (:meth:`PSPLoss.set_optimizer_step`), so a method that calls the loss several times per
   batch (Golf's T steps) does not advance the schedule several times;
4. loss = ``L(m_a ⊙ I_sr, m_a ⊙ I_hr)`` with ``L`` = L1 or L2.

It only changes the loss: the network and the test-time behaviour are untouched. ``t``
is kept on the host (no device sync per step); it follows the optimisation step count,
which a resumed run restores, so the schedule continues (the authors' code restarts it
at 0). ``t`` is also saved as the loss's extra state.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightrestore.errors import ConfigError
from lightrestore.losses.pixel import PixelLoss
from lightrestore.metrics import image_quality

SSIM_PAD = 5


def ssim_map(pred: Tensor, target: Tensor) -> Tensor:
    """Per-pixel SSIM ``(B, C, H, W)`` in [-1, 1], zero padding 5 (the authors' map).

    Args:
        pred, target: ``(B, C, H, W)`` in [0, 1].
    """
    return image_quality.ssim_map(pred, target, padding=SSIM_PAD)


def attention(m_s: Tensor, delta: float | Tensor, gamma: float = 2.0, mu: float = -1.0) -> Tensor:
    """``γ · exp(−((m_s − μ) / δ)²)``, same shape as ``m_s``, values in [0, γ]."""
    return gamma * torch.exp(-(((m_s - mu) / delta) ** 2))


class PSPLoss(nn.Module):
    """The PSPL loss wrapping L1 or L2.

    Args:
        base: ``"l1"`` or ``"l2"`` (the wrapped pixel loss).
        gamma, mu: attention height and centre (paper: 2, −1).
        alpha, beta: ``δ = α·t + β`` (paper: 1, 0).
        batches_per_epoch: the unit of ``t`` (authors: 1000 batches, EDSR's
            ``test_every``).
        min_delta: ``δ`` is clamped to at least this (``β = 0`` gives ``δ = 0`` at
            ``t = 0``, a division by zero).

    ``set_optimizer_step(s)`` sets ``t = (s + 1) / batches_per_epoch`` (the method calls it
    before each training batch); ``per_sample(pred, target)`` returns ``(B,)`` weighted
    losses at the current ``t``; ``forward`` is their mean. ``log_values()`` gives the current
    ``δ``, ``t`` and the last attention map's min / mean / max for logging.
    """

    def __init__(
        self,
        base: str = "l1",
        gamma: float = 2.0,
        mu: float = -1.0,
        alpha: float = 1.0,
        beta: float = 0.0,
        batches_per_epoch: int = 1000,
        min_delta: float = 1e-6,
    ) -> None:
        super().__init__()
        if batches_per_epoch < 1 or gamma <= 0 or min_delta <= 0:
            raise ConfigError("PSPL needs batches_per_epoch >= 1, gamma > 0 and min_delta > 0")
        self.base = PixelLoss(base)
        self.gamma, self.mu, self.alpha, self.beta = (
            float(gamma),
            float(mu),
            float(alpha),
            float(beta),
        )
        self.batches_per_epoch = int(batches_per_epoch)
        self.min_delta = float(min_delta)
        self.t = 0.0  # a host float (no device sync per step), saved as the module's extra state
        self._stats: dict[str, Tensor] = {}

    def get_extra_state(self) -> dict[str, float]:
        return {"t": float(self.t)}

    def set_extra_state(self, state: dict[str, float]) -> None:
        self.t = float(state["t"])

    @property
    def delta(self) -> float:
        """The current ``δ = max(α·t + β, min_delta)``."""
        return max(self.alpha * self.t + self.beta, self.min_delta)

    def set_optimizer_step(self, step: int) -> None:
        """The schedule at the batch after ``step`` optimisation steps."""
        self.t = (int(step) + 1) / self.batches_per_epoch

    def per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        delta = self.delta
        with torch.no_grad():
            weights = attention(ssim_map(pred.detach(), target), delta, self.gamma, self.mu)
        weights = weights.to(pred.dtype)
        self._stats = {
            "delta": torch.tensor(delta),
            "t": torch.tensor(self.t),
            "attention_min": weights.min(),
            "attention_mean": weights.mean(),
            "attention_max": weights.max(),
        }
        return self.base.per_sample(weights * pred, weights * target)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.per_sample(pred, target).mean()

    def log_values(self) -> dict[str, Tensor]:
        return dict(self._stats)

    def extra_repr(self) -> str:
        return (
            f"base={self.base.kind}, gamma={self.gamma}, mu={self.mu}, delta={self.alpha}*t+{self.beta}, "
            f"batches_per_epoch={self.batches_per_epoch}"
        )
