"""Pixel interpolation: a random fraction of the pixels deleted (ODL).

Each pixel is deleted independently with probability ``r`` (the same mask for every
channel) and set to the dataset mean colour; ``r`` is drawn uniformly in the level's bin.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.degradations.inpaint import MEAN_COLOUR, Fill


class Interpolate(Degradation):
    """Per-pixel Bernoulli(``r``) deletion, shared by all channels.

    The severity is the deletion rate ``r`` as a fraction in [0, 1]. Default levels:
    0-.15, .15-.30, .30-.45, .45-.60, .60-.75, extra level .75-.90.

    Args:
        bins: training bins ``[[lo, hi], ...]`` overriding the default ladder.
        extra: the extra test level's bin ``[lo, hi]``.
        fill: the deleted pixels' colour in ``[0, 1]`` (default the CelebA mean colour).

    Params: ``severity`` ``(B,)`` float (``r``), ``deleted`` ``(B, 1, H, W)`` bool
    (True where the pixel is deleted).
    """

    name = "interpolate"

    def __init__(
        self,
        bins: Sequence[Sequence[float]] | None = None,
        extra: Sequence[float] | None = None,
        fill: float | Sequence[float] = MEAN_COLOUR,
    ) -> None:
        ladder = Ladder.from_config(
            bins
            if bins is not None
            else [[0.0, 0.15], [0.15, 0.30], [0.30, 0.45], [0.45, 0.60], [0.60, 0.75]],
            extra if extra is not None else [0.75, 0.90],
            name="deleted fraction",
        )
        super().__init__(ladder)
        self.fill = Fill(fill)

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        _, h, w = shape
        rate = self._severity(levels, generator, severity)
        u = torch.rand((levels.shape[0], 1, h, w), generator=generator, device=levels.device)
        return {"severity": rate, "deleted": u < rate.view(-1, 1, 1, 1)}

    def observed_mask(
        self, params: Params, shape: Sequence[int] | None = None, dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """``(B, 1, H, W)`` in ``{0, 1}``: 1 where the pixel is kept (``shape`` is unused)."""
        return (~params["deleted"]).to(dtype)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """``x`` ``(B, C, H, W)`` in [0, 1] with the deleted pixels set to the fill colour."""
        fill = self.fill.tensor(x.shape[1], x.device, x.dtype)
        return torch.where(params["deleted"], fill, x)

    def operator(self, x: Tensor, params: Params) -> Tensor:
        """``M x``: deleted pixels set to 0 (DL-Net's forward model)."""
        return x * self.observed_mask(params, x.shape, x.dtype)
