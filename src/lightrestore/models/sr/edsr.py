"""EDSR (Lim, Son, Kim, Nah & Lee, CVPRW 2017).

Structure (paper + the authors' EDSR-PyTorch): subtract the DIV2K RGB mean; a 3 × 3
conv ``C -> F``; ``B`` residual blocks ``conv-ReLU-conv`` (no BatchNorm) whose residual
is multiplied by ``res_scale``; a 3 × 3 conv; a long skip from the first conv's output;
the upsampler (for ``2^n``: ``n`` × [3 × 3 conv ``F -> 4F``, PixelShuffle(2)]; for 3:
conv ``F -> 9F``, PixelShuffle(3); no activation); a 3 × 3 conv ``F -> C``; add the mean
back. PyTorch's default conv init (as the authors' code).

* baseline (:func:`edsr_baseline`, the class defaults): ``B = 16``, ``F = 64``,
  ``res_scale = 1``: 1,369,859 parameters at ×2, 1,517,571 at ×4 (paper: 1.5M);
* full (:func:`edsr`): ``B = 32``, ``F = 256``, ``res_scale = 0.1``: 40,729,603 at ×2,
  43,089,923 at ×4 (paper: 43M).

Images are in [0, 1] (the authors work in [0, 255] with the mean ×255); the mean is a
buffer, not a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lightrestore.models.sr.common import MeanShift, SRNet, conv3x3, default_mean


class ResBlock(nn.Module):
    """EDSR's residual block: ``x + res_scale · conv(ReLU(conv(x)))``, no BatchNorm."""

    def __init__(self, width: int, res_scale: float = 1.0) -> None:
        super().__init__()
        self.conv1 = conv3x3(width, width)
        self.conv2 = conv3x3(width, width)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        r = self.conv2(torch.relu(self.conv1(x)))
        if self.res_scale != 1.0:
            r = r * self.res_scale
        return x + r


def pixel_shuffle_upsampler(width: int, scale: int) -> nn.Sequential:
    """EDSR's upsampler: ×2 stages for powers of two, one ×3 stage for 3; no activation."""
    layers: list[nn.Module] = []
    if scale >= 2 and scale & (scale - 1) == 0:
        for _ in range(scale.bit_length() - 1):
            layers += [conv3x3(width, 4 * width), nn.PixelShuffle(2)]
    elif scale == 3:
        layers += [conv3x3(width, 9 * width), nn.PixelShuffle(3)]
    else:
        raise ValueError(f"EDSR's upsampler supports scale 3 or a power of two >= 2, got {scale}")
    return nn.Sequential(*layers)


class EDSR(SRNet):
    """Enhanced Deep Super-Resolution network (single scale).

    Args:
        scale: 2, 3, 4 (or any power of two).
        channels: image channels (3 in the paper).
        num_blocks: residual blocks ``B`` (16 baseline, 32 full).
        width: feature channels ``F`` (64 baseline, 256 full).
        res_scale: residual scaling (1 baseline, 0.1 full).
        mean: per-channel mean subtracted at the input and added at the output;
            default DIV2K's RGB mean (its average repeated for ``channels != 3``).

    Shapes: ``forward(x)``: ``(B, C, h, w)`` in [0, 1] -> ``(B, C, h·s, w·s)``, roughly
    in [0, 1], unclamped.

    DL-Net split (:class:`lightrestore.models.split.SplitModel`): ``features(x)`` is
    the upsampler's output ``(B, width, h·s, w·s)``, unbounded, and ``head(z, x)`` is
    the last conv (``conv_out``, the only parameters of ``h``) + the mean (``x`` unused:
    EDSR's skips are inside ``g``). EDSR's last stage is upsampler (conv +
    PixelShuffle, per ×2 or ×3 step) + ``conv_out`` with no activation anywhere after
    the body, so "before its activation" holds trivially (the activation of ``h`` is
    the identity) and the upsampler is kept in ``g``: ``h`` is then the single conv
    DL-Net asks for. Splitting before the upsampler would put one to three more convs
    in ``h``.
    """

    def __init__(
        self,
        scale: int = 2,
        channels: int = 3,
        num_blocks: int = 16,
        width: int = 64,
        res_scale: float = 1.0,
        mean: Sequence[float] | None = None,
    ) -> None:
        super().__init__(scale, channels)
        mean = default_mean(channels) if mean is None else tuple(mean)
        if len(mean) != channels:
            raise ValueError(f"mean has {len(mean)} values for {channels} channels")
        self.num_blocks, self.width, self.res_scale = num_blocks, width, res_scale
        self.sub_mean = MeanShift(mean, sign=-1)
        self.conv_in = conv3x3(channels, width)
        self.body = nn.Sequential(
            *(ResBlock(width, res_scale) for _ in range(num_blocks)), conv3x3(width, width)
        )
        self.upsampler = pixel_shuffle_upsampler(width, self.scale)
        self.conv_out = conv3x3(width, channels)
        self.add_mean = MeanShift(mean, sign=1)

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> upsampled features ``(B, width, h·s, w·s)``."""
        h = self.conv_in(self.sub_mean(x))
        return self.upsampler(self.body(h) + h)

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """Last conv + mean -> ``(B, C, h·s, w·s)`` (``x`` unused)."""
        return self.add_mean(self.conv_out(z))


def edsr_baseline(scale: int = 2, channels: int = 3) -> EDSR:
    """EDSR baseline: 16 residual blocks × 64 channels, no residual scaling."""
    return EDSR(scale=scale, channels=channels, num_blocks=16, width=64, res_scale=1.0)


def edsr(scale: int = 2, channels: int = 3) -> EDSR:
    """Full EDSR: 32 residual blocks × 256 channels, residual scaling 0.1."""
    return EDSR(scale=scale, channels=channels, num_blocks=32, width=256, res_scale=0.1)
