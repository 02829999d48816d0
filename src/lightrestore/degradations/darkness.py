"""Darkness by a gamma adjustment (LIRA's new distortion: MATLAB ``imadjust`` with gamma).

MATLAB's ``imadjust(I, [low_in high_in], [low_out high_out], gamma)`` maps
``low_out + (high_out - low_out) * ((clip(I, low_in, high_in) - low_in) / (high_in - low_in)) ^ gamma``;
``imadjust(I, [], [], gamma)`` uses ``low_in = 0, high_in = 1, low_out = 0, high_out = 1``,
so on a double image in [0, 1] it is ``I ^ gamma``: gamma > 1 darkens. LIRA draws gamma
in [1.5, 2.5]. The result is not re-quantised (``imadjust`` on a double image returns
doubles).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.errors import ConfigError


def darken(x: Tensor, gamma: Tensor) -> Tensor:
    """``imadjust(x, [], [], gamma)``: ``clip(x, 0, 1) ** gamma`` per sample.

    Args:
        x: ``(B, C, H, W)`` images in [0, 1].
        gamma: ``(B,)`` exponents (> 0; 1 leaves ``x`` unchanged).

    Returns:
        ``(B, C, H, W)`` in [0, 1], ``x``'s dtype.
    """
    g = gamma.to(x.dtype).view(-1, 1, 1, 1)
    return torch.pow(x.clamp(0.0, 1.0), g)


class Darkness(Degradation):
    """Gamma darkening ``x ** gamma`` (see the module doc).

    Default levels (gamma): 1.5-1.7, 1.7-1.9, 1.9-2.1, 2.1-2.3, 2.3-2.5 (LIRA's range in
    five bins); no extra level by default.

    Args:
        bins: training bins of gamma ``[[lo, hi], ...]`` (> 0).
        extra: the extra test level's bin, or None / ``[]`` for none.

    Params: ``severity`` ``(B,)`` (= gamma), ``gamma`` ``(B,)`` float.
    """

    name = "darkness"

    def __init__(
        self,
        bins: Sequence[Sequence[float]] | None = None,
        extra: Sequence[float] | None = None,
    ) -> None:
        ladder = Ladder.from_config(
            bins
            if bins is not None
            else [[1.5, 1.7], [1.7, 1.9], [1.9, 2.1], [2.1, 2.3], [2.3, 2.5]],
            extra if extra is not None else [],
            name="darkness gamma",
        )
        if min(lo for lo, _ in ladder.all_bins()) <= 0:
            raise ConfigError("darkness gamma bins must be > 0")
        super().__init__(ladder)

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        gamma = self._severity(levels, generator, severity)
        return {"severity": gamma, "gamma": gamma}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Darkened ``x`` ``(B, C, H, W)`` in [0, 1]."""
        return darken(x, params["gamma"])
