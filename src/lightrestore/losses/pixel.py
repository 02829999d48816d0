"""Pixel losses that can also report one value per sample (hard mining, weighting)."""

from __future__ import annotations

from torch import Tensor, nn

from lightrestore.errors import ConfigError

_KINDS = ("l1", "l2", "charbonnier")


class PixelLoss(nn.Module):
    """Mean absolute (``l1``), squared (``l2``, MSE) or Charbonnier error.

    ``charbonnier`` is LapSRN's robust L1, ``sqrt(d² + eps²)`` per element (``eps`` 1e-3,
    Lai et al. 2017); ``eps`` is ignored by the other kinds.

    ``forward(pred, target)`` is the mean over every element (as ``nn.MSELoss`` /
    ``nn.L1Loss``); ``per_sample(pred, target)`` is the mean per image, ``(B,)``, whose
    mean equals ``forward`` for equal-sized images.
    """

    def __init__(self, kind: str = "l2", eps: float = 1e-3) -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ConfigError(f"loss kind must be one of {_KINDS}, got {kind!r}")
        if not eps > 0:
            raise ConfigError(f"loss.eps (Charbonnier) must be > 0, got {eps!r}")
        self.kind = kind
        self.eps = float(eps)

    def per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        diff = pred - target
        if self.kind == "l1":
            err = diff.abs()
        elif self.kind == "l2":
            err = diff.square()
        else:
            err = (diff.square() + self.eps**2).sqrt()
        return err.flatten(1).mean(dim=1)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.per_sample(pred, target).mean()

    def extra_repr(self) -> str:
        return f"kind={self.kind}" + (f", eps={self.eps}" if self.kind == "charbonnier" else "")
