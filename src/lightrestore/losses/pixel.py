"""Pixel losses that can also report one value per sample (hard mining, weighting)."""

from __future__ import annotations

from torch import Tensor, nn

from lightrestore.errors import ConfigError

_KINDS = ("l1", "l2")


class PixelLoss(nn.Module):
    """Mean absolute (``l1``) or squared (``l2``, MSE) error.

    ``forward(pred, target)`` is the mean over every element (as ``nn.MSELoss`` /
    ``nn.L1Loss``); ``per_sample(pred, target)`` is the mean per image, ``(B,)``, whose
    mean equals ``forward`` for equal-sized images.
    """

    def __init__(self, kind: str = "l2") -> None:
        super().__init__()
        if kind not in _KINDS:
            raise ConfigError(f"loss kind must be one of {_KINDS}, got {kind!r}")
        self.kind = kind

    def per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        diff = pred - target
        err = diff.abs() if self.kind == "l1" else diff.square()
        return err.flatten(1).mean(dim=1)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.per_sample(pred, target).mean()

    def extra_repr(self) -> str:
        return f"kind={self.kind}"
