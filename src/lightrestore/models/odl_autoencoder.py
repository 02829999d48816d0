"""On-Demand Learning's context-encoder autoencoder (Gao & Grauman 2017).

Encoder: four Conv4x4/s2/p1 layers ``C -> w -> 2w -> 4w -> 8w`` (w = 64 in the
paper), each followed by BatchNorm and LeakyReLU(0.2); a *channel-wise*
fully-connected layer (one independent ``Linear(S -> S)`` with bias per channel over
the flattened ``S = (H/16)·(W/16)`` map: 512 × Linear(16→16) at 64×64); decoder:
ConvTranspose4x4/s2/p1 ``8w -> 4w -> 2w -> w`` with BatchNorm + ReLU, then
``w -> C`` and tanh. Convolutions have no bias (the authors' loop zeroes them every
step). Init: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0.
Images are in ``[0, 1]`` outside and mapped to ``[-1, 1]`` inside.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class ChannelWiseFC(nn.Module):
    """Independent fully-connected layer per channel over the spatial map.

    Input/output ``(B, C, H, W)``; channel ``c`` maps its ``H·W`` values with its own
    ``(H·W) × (H·W)`` matrix and bias. No information flows between channels.
    """

    def __init__(self, channels: int, height: int, width: int) -> None:
        super().__init__()
        self.channels, self.height, self.width = channels, height, width
        size = height * width
        self.weight = nn.Parameter(torch.empty(channels, size, size))
        self.bias = nn.Parameter(torch.empty(channels, size))
        bound = 1.0 / math.sqrt(size)  # nn.Linear's default init, per channel
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        if (c, h, w) != (self.channels, self.height, self.width):
            raise ValueError(
                f"ChannelWiseFC expects (B, {self.channels}, {self.height}, {self.width}), "
                f"got {tuple(x.shape)}: "
                "build the model with image_size equal to the training crop"
            )
        flat = x.reshape(b, c, h * w)
        out = torch.einsum("bcs,cst->bct", flat, self.weight) + self.bias
        return out.reshape(b, c, h, w)


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.LeakyReLU(0.2, inplace=True),
    )


def _up(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class ODLAutoencoder(nn.Module):
    """The ODL encoder / channel-wise FC / decoder restoration network.

    Args:
        channels: image channels (3 for colour tasks, 1 for denoising).
        width: channels of the first encoder layer (64 in the paper); the others
            are 2×, 4×, 8× this.
        image_size: side of the (square) training images, a multiple of 16
            (64 in the paper); fixes the channel-wise FC's size.

    Shapes: ``forward(x)`` takes ``(B, channels, image_size, image_size)`` in
    ``[0, 1]`` and returns the same shape in ``[0, 1]``.

    DL-Net split (:class:`lightrestore.models.split.SplitModel`): ``features(x)`` is
    ``g`` — the pre-activation output of the last hidden decoder layer (BatchNorm
    output, ``(B, width, S/2, S/2)``, unbounded) — and ``head(z, x)`` is ``h`` — ReLU +
    the last transposed conv (``head_conv``, the only parameters of ``h``) + tanh,
    mapped to [0, 1]. ``x`` is unused by ``head`` (the model has no input-dependent
    output mapping) but is part of the contract. ``forward(x) == head(features(x), x)``.
    """

    #: ``image_size`` must be a multiple of this (four stride-2 convolutions); the config
    #: check names ``data.crop_size`` when it fails
    size_multiple = 16

    def __init__(self, channels: int = 3, width: int = 64, image_size: int = 64) -> None:
        super().__init__()
        if image_size % self.size_multiple:
            raise ValueError(
                f"image_size must be a multiple of {self.size_multiple}, got {image_size}"
            )
        w = width
        self.channels, self.width, self.image_size = channels, width, image_size
        self.encoder = nn.Sequential(
            _down(channels, w), _down(w, 2 * w), _down(2 * w, 4 * w), _down(4 * w, 8 * w)
        )
        s = image_size // 16
        self.bottleneck = ChannelWiseFC(8 * w, s, s)
        self.decoder = nn.Sequential(_up(8 * w, 4 * w), _up(4 * w, 2 * w))
        # the last hidden layer is split so that g ends before its activation
        self.last_hidden = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(w)
        )
        self.head_conv = nn.ConvTranspose2d(w, channels, 4, stride=2, padding=1, bias=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def features(self, x: Tensor) -> Tensor:
        """``g``: ``(B, C, S, S)`` in [0, 1] -> pre-activation ``(B, width, S/2, S/2)``."""
        h = self.encoder(x * 2.0 - 1.0)
        h = self.bottleneck(h)
        h = self.decoder(h)
        return self.last_hidden(h)

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """``h``: pre-activation features ``(B, width, S/2, S/2)`` -> image ``(B, C, S, S)``
        in [0, 1]: ReLU + ``head_conv`` + tanh mapped to [0, 1]. ``x`` (the input image)
        is unused: the autoencoder has no input-dependent output mapping."""
        del x  # part of the SplitModel contract only
        y = torch.tanh(self.head_conv(torch.relu(z)))
        return (y + 1.0) * 0.5

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x), x)
