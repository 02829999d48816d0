"""SRCNN (Dong, Loy, He & Tang, ECCV 2014 / TPAMI 2016).

Three convolutions on the bicubic-upscaled image: patch extraction ``f1 × f1``
``C -> n1`` + ReLU, non-linear mapping ``f2 × f2`` ``n1 -> n2`` + ReLU, reconstruction
``f3 × f3`` ``n2 -> C``. The base 9-1-5 network with ``n1 = 64``, ``n2 = 32`` has
8,032 weights on the Y channel (paper), 8,129 parameters with biases. No global skip.

Ours (documented deviations): 'same' zero padding, so the output has the full HR size
(the paper's convolutions are 'valid' and lose ``(f1 + f2 + f3 - 3) / 2`` pixels per
side); He-normal init (the paper draws N(0, 0.001) and trains with SGD for ~10^8
back-propagations; He init lets Adam train it in reasonable time).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lightrestore.models.sr.common import SRNet, bicubic_upsample, msra_init_


class SRCNN(SRNet):
    """SRCNN on the bicubic-upscaled LR image.

    Args:
        scale: upscaling factor (any positive integer: the network itself is
            scale-agnostic, the bicubic pre-upscaling sets the factor).
        channels: image channels (1 for the paper's Y-only model).
        widths: ``(n1, n2)``, ``(64, 32)`` in the paper.
        kernel_sizes: ``(f1, f2, f3)``, odd; ``(9, 1, 5)`` is the paper's base model
            (9-5-5 and 9-3-5 are its larger variants).

    Shapes: ``forward(x)``: ``(B, C, h, w)`` in [0, 1] -> ``(B, C, h·s, w·s)``, roughly
    in [0, 1], unclamped.

    DL-Net split: ``features(x)`` is the pre-ReLU output of the mapping layer
    ``(B, n2, h·s, w·s)``; ``head(z, x)`` is ReLU + the reconstruction conv (``x`` is
    unused: SRCNN has no skip).
    """

    def __init__(
        self,
        scale: int = 2,
        channels: int = 3,
        widths: Sequence[int] | None = None,
        kernel_sizes: Sequence[int] = (9, 1, 5),
        width: int = 64,
    ) -> None:
        super().__init__(scale, channels)
        n1, n2 = widths if widths is not None else (width, max(1, width // 2))
        f1, f2, f3 = kernel_sizes
        if any(k % 2 != 1 for k in (f1, f2, f3)):
            raise ValueError(f"kernel sizes must be odd, got {tuple(kernel_sizes)}")
        self.conv1 = nn.Conv2d(channels, n1, f1, padding=f1 // 2)
        self.conv2 = nn.Conv2d(n1, n2, f2, padding=f2 // 2)
        self.conv3 = nn.Conv2d(n2, channels, f3, padding=f3 // 2)
        msra_init_(self)

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> pre-ReLU mapping features ``(B, n2, h·s, w·s)``."""
        return self.conv2(torch.relu(self.conv1(bicubic_upsample(x, self.scale))))

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """ReLU + reconstruction conv -> ``(B, C, h·s, w·s)`` (``x`` unused)."""
        return self.conv3(torch.relu(z))
