"""VDSR (Kim, Lee & Lee, CVPR 2016), and DL-Net's LR-grid adaptation of it.

Published network (default, ``lr_features=False``): ``depth = 20`` 3 × 3 conv layers
of ``width = 64`` channels with ReLU on the bicubic-upscaled image, the last one
``64 -> C`` without activation, plus the global residual ``+ bicubic(x)``. 664,704
weights (665k, as the DRRN/LapSRN papers list it) on the Y channel, 665,921 with
biases. He-normal init (paper).

DL-Net (Guo et al., appendix C) runs VDSR "on a low-resolution level by modifying the
global skip connection to a bicubic upscaling layer as in IDN"; ``lr_features=True``
(see :func:`vdsr_dlnet`) keeps the first ``depth - 1`` layers on the LR grid and
makes the last layer IDN's upscaling layer (a 17 × 17 transposed conv, stride
``scale``, ``64 -> C``) before the bicubic skip. The paper does not give that layer;
this choice is ours, modelled on IDN which the paper names.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lightrestore.models.sr.common import (
    SRNet,
    bicubic_upsample,
    conv3x3,
    msra_init_,
    transposed_upsampler,
)


class VDSR(SRNet):
    """VDSR: a plain ``depth``-layer CNN with a bicubic global residual.

    Args:
        scale: upscaling factor (any positive integer).
        channels: image channels (1 for the paper's Y-only model).
        depth: number of weight layers (20 in the paper, at least 3).
        width: channels of the hidden layers (64).
        lr_features: ``False`` (paper): all layers on the bicubic-upscaled image, the
            last one a 3 × 3 conv. ``True`` (DL-Net): all hidden layers on the LR
            grid; the last layer is a transposed-conv upscaler.
        upsampler_kernel: kernel of that upscaler (17, IDN's), only with
            ``lr_features``.

    Shapes: ``forward(x)``: ``(B, C, h, w)`` in [0, 1] -> ``(B, C, h·s, w·s)``, roughly
    in [0, 1], unclamped.

    DL-Net split: ``features(x)`` is the pre-ReLU output of layer ``depth - 1``
    (``(B, width, h·s, w·s)``, or ``(B, width, h, w)`` with ``lr_features``);
    ``head(z, x)`` is ReLU + the last layer + ``bicubic(x)``.
    """

    def __init__(
        self,
        scale: int = 2,
        channels: int = 3,
        depth: int = 20,
        width: int = 64,
        lr_features: bool = False,
        upsampler_kernel: int = 17,
    ) -> None:
        super().__init__(scale, channels)
        if depth < 3:
            raise ValueError(f"VDSR needs depth >= 3, got {depth}")
        self.depth, self.width, self.lr_features = depth, width, lr_features
        self.first = conv3x3(channels, width)
        self.body = nn.ModuleList(conv3x3(width, width) for _ in range(depth - 3))
        self.last_hidden = conv3x3(width, width)
        if lr_features:
            self.last = transposed_upsampler(width, channels, scale, upsampler_kernel)
        else:
            self.last = conv3x3(width, channels)
        msra_init_(self)

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> pre-ReLU output of layer ``depth - 1``."""
        h = x if self.lr_features else bicubic_upsample(x, self.scale)
        h = torch.relu(self.first(h))
        for conv in self.body:
            h = torch.relu(conv(h))
        return self.last_hidden(h)

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """ReLU + last layer + ``bicubic(x)`` -> ``(B, C, h·s, w·s)``."""
        return self.last(torch.relu(z)) + bicubic_upsample(x, self.scale)


def vdsr_dlnet(scale: int = 2, channels: int = 3) -> VDSR:
    """DL-Net's VDSR: 20 layers, 64 channels, features on the LR grid (see module doc)."""
    return VDSR(scale=scale, channels=channels, depth=20, width=64, lr_features=True)
