"""DRRN (Tai, Yang & Liu, CVPR 2017) as DL-Net uses it, and the original B1U9.

Original DRRN B1U9 (authors' Caffe ``DRRN_B1U9_20C128``, :func:`drrn_original`): on the
bicubic-upscaled image, pre-activation everywhere (BatchNorm + Scale + ReLU *before*
each conv, the input included):

* ``H0 = conv_in(act(bn(x_b)))``, ``C -> 128``;
* one recursive block of ``U = 9`` residual units sharing their two 3 × 3
  ``128 -> 128`` convs (``RB1_wa``/``RB1_wb``), each unit with its own BatchNorms:
  ``H_u = H0 + conv_b(act(bn_bu(conv_a(act(bn_au(H_{u-1}))))))`` (multi-path: the
  identity is always ``H0``);
* ``conv_end(act(bn(H_U)))``, ``128 -> C``, plus the input (global residual).

Conv weights: 1,152 + 2 × 147,456 + 1,152 = 297,216 (the paper's 297k, Y channel);
the BatchNorm affine parameters and biases come on top (the paper does not count them).

DL-Net's DRRN (appendix C; the default here, :func:`drrn_dlnet`): "DRRN B1U9" with

* leaky ReLU, negative slope 0.05, instead of ReLU (``negative_slope``);
* a concat layer merging the recursive block's outputs every three recursions
  (``H_3, H_6, H_9``: 3 × 128 = 384 maps, ``concat_every``) and a 1 × 1 conv4
  ``384 -> 64`` (``fuse_channels``);
* features on the LR grid with a bicubic-upscaling global skip "as in IDN"
  (``lr_features``): the last layer is IDN's 17 × 17 transposed-conv upscaler
  ``64 -> C``, stride ``scale``.

Ours, where the paper is silent: the pre-activation pattern stays (a BatchNorm + leaky
ReLU before conv4 and before the upscaler, as before every conv of the original; set
``batch_norm=False`` to drop all BatchNorms); the upscaler is IDN's. DL-Net reports
"∼0.36M" parameters for its DRRN; this one has 345,091 at ×2 on Y (344,323 without the
pre-conv4 BatchNorm), the difference presumably being the unspecified upscaler.
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


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


class DRRN(SRNet):
    """Deep Recursive Residual Network, one recursive block (``B1``) of ``num_units``.

    Args:
        scale: upscaling factor (any positive integer).
        channels: image channels (1 for the papers' Y-only models).
        width: channels of the recursive block (128).
        num_units: residual units ``U`` in the block, all sharing two convs (9).
        negative_slope: leaky-ReLU slope (0.05 DL-Net; 0.0 = ReLU, the original).
        concat_every: concatenate the block's output every this many units and fuse
            them with a 1 × 1 conv (3, DL-Net); 0 disables it (original). Must divide
            ``num_units``.
        fuse_channels: output channels of that 1 × 1 conv ("conv4", 64).
        lr_features: run on the LR grid with a transposed-conv upscaler as the last
            layer (DL-Net, default) instead of on the bicubic-upscaled image with a
            3 × 3 last conv (original).
        batch_norm: pre-activation BatchNorms (the authors' code has them).
        upsampler_kernel: kernel of the upscaler (17, IDN's), only with ``lr_features``.

    Shapes: ``forward(x)``: ``(B, C, h, w)`` in [0, 1] -> ``(B, C, h·s, w·s)``, roughly
    in [0, 1], unclamped.

    DL-Net split: ``features(x)`` is the normalised, not yet activated input of the
    last layer: ``bn(conv4(...))`` ``(B, fuse_channels, h, w)`` (DL-Net variant) or
    ``bn(H_U)`` ``(B, width, h·s, w·s)`` (original); ``head(z, x)`` is the (leaky)
    ReLU + the last layer + ``bicubic(x)``.
    """

    def __init__(
        self,
        scale: int = 2,
        channels: int = 3,
        width: int = 128,
        num_units: int = 9,
        negative_slope: float = 0.05,
        concat_every: int = 3,
        fuse_channels: int = 64,
        lr_features: bool = True,
        batch_norm: bool = True,
        upsampler_kernel: int = 17,
    ) -> None:
        super().__init__(scale, channels)
        if num_units < 1:
            raise ValueError(f"num_units must be >= 1, got {num_units}")
        if concat_every < 0 or (concat_every and num_units % concat_every):
            raise ValueError(
                f"concat_every ({concat_every}) must be 0 or divide num_units ({num_units})"
            )
        self.width, self.num_units = width, num_units
        self.negative_slope, self.concat_every = negative_slope, concat_every
        self.lr_features, self.batch_norm = lr_features, batch_norm

        self.norm_in = _norm(channels, batch_norm)
        self.conv_in = conv3x3(channels, width)
        # the two convs every residual unit shares; each unit has its own BatchNorms
        self.conv_a = conv3x3(width, width)
        self.conv_b = conv3x3(width, width)
        self.norms_a = nn.ModuleList(_norm(width, batch_norm) for _ in range(num_units))
        self.norms_b = nn.ModuleList(_norm(width, batch_norm) for _ in range(num_units))
        if concat_every:
            taps = num_units // concat_every
            self.norm_cat = _norm(taps * width, batch_norm)
            self.fuse = nn.Conv2d(taps * width, fuse_channels, 1)
            out = fuse_channels
        else:
            self.norm_cat = None
            self.fuse = None
            out = width
        self.norm_out = _norm(out, batch_norm)
        if lr_features:
            self.last = transposed_upsampler(out, channels, scale, upsampler_kernel)
        else:
            self.last = conv3x3(out, channels)
        msra_init_(self, negative_slope)

    def _act(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope) if self.negative_slope else torch.relu(x)

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> the last layer's normalised, pre-activation input."""
        h = x if self.lr_features else bicubic_upsample(x, self.scale)
        h0 = self.conv_in(self._act(self.norm_in(h)))
        h, taps = h0, []
        for u in range(self.num_units):
            r = self.conv_a(self._act(self.norms_a[u](h)))
            h = h0 + self.conv_b(self._act(self.norms_b[u](r)))
            if self.concat_every and (u + 1) % self.concat_every == 0:
                taps.append(h)
        if self.fuse is not None:
            h = self.fuse(self._act(self.norm_cat(torch.cat(taps, dim=1))))
        return self.norm_out(h)

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """(Leaky) ReLU + last layer + ``bicubic(x)`` -> ``(B, C, h·s, w·s)``."""
        return self.last(self._act(z)) + bicubic_upsample(x, self.scale)


def drrn_dlnet(scale: int = 2, channels: int = 3) -> DRRN:
    """DL-Net's DRRN B1U9 (the class defaults; see the module docstring)."""
    return DRRN(scale=scale, channels=channels)


def drrn_original(scale: int = 2, channels: int = 3) -> DRRN:
    """Tai et al.'s DRRN B1U9: ReLU, no concat, on the bicubic-upscaled image, with BN."""
    return DRRN(
        scale=scale,
        channels=channels,
        width=128,
        num_units=9,
        negative_slope=0.0,
        concat_every=0,
        lr_features=False,
        batch_norm=True,
    )
