"""Additive white Gaussian noise (ODL denoising; LIRA's noise distortion)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params


class GaussianNoise(Degradation):
    """AWGN with standard deviation ``sigma`` on the 0-255 scale.

    Default levels: sigma 0-20, 20-40, 40-60, 60-80, 80-100, extra level 100-120.

    Args:
        bins: training bins ``[[lo, hi], ...]`` overriding the default ladder.
        extra: the extra test level's bin ``[lo, hi]``.
        grey: draw one noise field per image and add it to every channel.
        clip: clamp the noisy image to [0, 1] (ODL does).

    Params: ``severity`` ``(B,)`` float (sigma, 0-255 scale), ``noise`` ``(B, C, H, W)``
    (``(B, 1, H, W)`` when ``grey``) float32, already scaled by ``sigma / 255``.
    """

    name = "noise"

    def __init__(
        self,
        bins: Sequence[Sequence[float]] | None = None,
        extra: Sequence[float] | None = None,
        grey: bool = False,
        clip: bool = True,
    ) -> None:
        ladder = Ladder.from_config(
            bins if bins is not None else [[0, 20], [20, 40], [40, 60], [60, 80], [80, 100]],
            extra if extra is not None else [100, 120],
            name="noise sigma",
        )
        super().__init__(ladder)
        self.grey = bool(grey)
        self.clip = bool(clip)

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        c, h, w = shape
        sigma = self._severity(levels, generator, severity)
        size = (levels.shape[0], 1 if self.grey else c, h, w)
        noise = torch.randn(size, generator=generator, device=levels.device)
        return {"severity": sigma, "noise": noise * (sigma / 255.0).view(-1, 1, 1, 1)}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """``x + noise`` ``(B, C, H, W)``, clamped to [0, 1] when ``clip``."""
        y = x + params["noise"].to(x.dtype)
        return y.clamp_(0.0, 1.0) if self.clip else y

    def operator(self, x: Tensor, params: Params) -> Tensor:
        """The forward model of denoising is the identity."""
        return x
