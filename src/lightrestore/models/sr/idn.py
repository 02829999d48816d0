"""IDN, the Information Distillation Network (Hui, Wang & Gao, CVPR 2018).

Layer facts from the authors' Caffe deploy files (``IDN_x{2,3,4}_deploy.prototxt``);
every conv has a bias and is followed by a leaky ReLU with slope 0.05:

* FBlock: two 3 × 3 convs ``C -> 64 -> 64``.
* 4 DBlocks, each an enhancement unit and a compression unit. With ``D3 = 64``,
  ``d = 16`` (``delta``) and ``s = 4`` groups: 3 × 3 convs ``64 -> 48 -> 32 (groups 4)
  -> 64``; the first ``d`` = 16 maps are concatenated with the block input
  (``64 + 16 = 80``) while the other 48 go through ``48 -> 64 -> 48 (groups 4) -> 80``;
  the two 80-map tensors are summed; the compression unit is a 1 × 1 conv ``80 -> 64``.
* RBlock: a 17 × 17 transposed conv ``64 -> C``, stride ``scale``, padding 8 (here with
  ``output_padding = scale - 1`` so the output is exactly ``h·scale``; Caffe's is one
  ``(h-1)·s + 1`` grid that the authors' test script aligns by cropping).
* ``+ bicubic(x)`` (the test script adds MATLAB's bicubic upscaling).

552,769 parameters at ×2 on Y (the paper's 553k); the count does not depend on the
scale. MSRA init (authors' ``weight_filler``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightrestore.models.sr.common import (
    SRNet,
    bicubic_upsample,
    conv3x3,
    msra_init_,
    transposed_upsampler,
)


class DBlock(nn.Module):
    """IDN's distillation block: enhancement unit + 1 × 1 compression unit.

    Input ``(B, width, h, w)``; output the compression conv's **pre-activation**
    ``(B, width, h, w)`` (the caller applies the leaky ReLU, so the last block's output
    can be DL-Net's ``z``).
    """

    def __init__(
        self, width: int = 64, delta: int = 16, groups: int = 4, negative_slope: float = 0.05
    ) -> None:
        super().__init__()
        d1, d2 = width - delta, width - 2 * delta
        d4, d5, d6 = width, width - delta, width + delta
        if d2 <= 0:
            raise ValueError(f"width ({width}) must exceed 2 * delta ({delta})")
        for c in (d1, d2, d4, d5):
            if c % groups:
                raise ValueError(f"groups ({groups}) must divide the widths {d1, d2, d4, d5}")
        self.delta, self.negative_slope = delta, negative_slope
        self.conv1 = conv3x3(width, d1)
        self.conv2 = conv3x3(d1, d2, groups=groups)
        self.conv3 = conv3x3(d2, width)
        self.conv4 = conv3x3(width - delta, d4)
        self.conv5 = conv3x3(d4, d5, groups=groups)
        self.conv6 = conv3x3(d5, d6)
        self.compress = nn.Conv2d(d6, width, 1)

    def _act(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        a = self._act(self.conv3(self._act(self.conv2(self._act(self.conv1(x))))))
        kept, rest = a[:, : self.delta], a[:, self.delta :]
        b = self._act(self.conv6(self._act(self.conv5(self._act(self.conv4(rest))))))
        return self.compress(torch.cat([x, kept], dim=1) + b)


class IDN(SRNet):
    """IDN: features on the LR grid, transposed-conv reconstruction, bicubic skip.

    Args:
        scale: upscaling factor (any positive integer; the paper trains 2, 3, 4).
        channels: image channels (1 for the paper's Y-only model).
        width: ``D3``, the feature width between blocks (64).
        delta: ``d``, maps distilled per block and the step between the enhancement
            widths (16; ``None``: ``width // 4``, the paper's ratio).
        groups: ``s``, groups of the second and fifth conv of each block (4; ``None``:
            4 where it divides the block's widths, else 2 or 1, for tiny test widths).
        num_blocks: DBlocks (4).
        negative_slope: leaky-ReLU slope (0.05).
        upsampler_kernel: RBlock transposed-conv kernel (17).

    Shapes: ``forward(x)``: ``(B, C, h, w)`` in [0, 1] -> ``(B, C, h·s, w·s)``, roughly
    in [0, 1], unclamped.

    DL-Net split: ``features(x)`` is the last DBlock's compression output before its
    leaky ReLU, ``(B, width, h, w)`` on the LR grid; ``head(z, x)`` is the leaky ReLU +
    RBlock + ``bicubic(x)``.
    """

    def __init__(
        self,
        scale: int = 2,
        channels: int = 3,
        width: int = 64,
        delta: int | None = 16,
        groups: int | None = 4,
        num_blocks: int = 4,
        negative_slope: float = 0.05,
        upsampler_kernel: int = 17,
    ) -> None:
        super().__init__(scale, channels)
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        self.negative_slope = negative_slope
        if delta is None:  # the paper's ratio, d = D3 / 4
            delta = width // 4
        if groups is None:  # the paper's 4 where the widths allow it (tiny test widths)
            widths = (width - delta, width - 2 * delta, width)
            groups = next(g for g in (4, 2, 1) if all(c % g == 0 for c in widths))
        self.fblock = nn.ModuleList([conv3x3(channels, width), conv3x3(width, width)])
        self.dblocks = nn.ModuleList(
            DBlock(width, delta, groups, negative_slope) for _ in range(num_blocks)
        )
        self.rblock = transposed_upsampler(width, channels, scale, upsampler_kernel)
        msra_init_(self, negative_slope)

    def _act(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> last compression output, pre-activation ``(B, width, h, w)``."""
        h = x
        for conv in self.fblock:
            h = self._act(conv(h))
        for i, block in enumerate(self.dblocks):
            h = block(h if i == 0 else self._act(h))
        return h

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """Leaky ReLU + RBlock + ``bicubic(x)`` -> ``(B, C, h·s, w·s)``."""
        return self.rblock(self._act(z)) + bicubic_upsample(x, self.scale)
