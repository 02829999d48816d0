"""Shared pieces of the super-resolution backbones, and their common convention.

Every model in :mod:`lightrestore.models.sr` is an :class:`SRNet`:

* ``__init__(scale=2, channels=3, ...)``; attributes ``scale`` and ``channels``; the
  other arguments (widths, depths) default to the published configuration.
* ``forward(x)``: the LR image ``(B, C, h, w)`` in ``[0, 1]`` -> the SR image
  ``(B, C, h·scale, w·scale)``, *roughly* in ``[0, 1]``. Nothing is clamped inside
  (residual/skip outputs can overshoot slightly); clamp where images are saved or
  scored.
* The DL-Net split ``f = h ∘ g``, one convention for all models (the
  :class:`lightrestore.models.split.SplitModel` contract; check a model with
  :func:`lightrestore.models.split.check_split`):

  - ``features(x) -> z`` is ``g``: the last hidden representation **before** its
    activation (for pre-activation / BatchNorm models, the normalised tensor that
    the activation would take);
  - ``head(z, x) -> y`` is ``h``: that activation, the last layer (one conv or
    transposed conv), and the global skip where the model has one. ``x`` is the same
    LR input that ``features`` saw; ``h`` reads the skip from it (the bicubic
    upscaling of ``x`` for VDSR, DRRN, IDN; the coarser pyramid levels for LapSRN,
    whose learned image-reconstruction branch makes it the one model whose ``h`` has
    parameters besides its last conv — see :class:`~lightrestore.models.sr.lapsrn.LapSRN`).
    Models without a skip (SRCNN, EDSR) ignore it, but it is always passed, so
    callers need not know the model.
  - ``forward(x) == head(features(x), x)`` exactly (same operations, same order).

  Nothing is stashed on the module between the two calls, so ``head`` may be called
  many times with different ``z`` for one ``x`` (DL-Net's inner loop).

Helpers: :func:`bicubic_upsample` (the one place the bicubic skip is computed),
:class:`MeanShift` (EDSR's RGB-mean handling), :func:`transposed_upsampler`
(IDN's ``RBlock``, also the upscaling layer of the LR-grid VDSR/DRRN),
:func:`msra_init_` and :func:`count_parameters`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

#: DIV2K's RGB mean in [0, 1] (EDSR's ``rgb_mean``, their values ×255 are (114.4, 111.5, 103.0)).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)


def bicubic_upsample(x: Tensor, scale: int) -> Tensor:
    """Bicubic upscaling ``(B, C, h, w) -> (B, C, h·scale, w·scale)``, unclamped.

    MATLAB's ``imresize(..., 'bicubic')`` (Keys' kernel with ``a = -0.5``, symmetric
    borders; :func:`lightrestore.degradations.resize.imresize`), the same operator that
    made the LR images, as the SR literature's pre-upsampling inputs and global skips.
    """
    if scale == 1:
        return x
    from lightrestore.degradations.resize import imresize

    h, w = x.shape[-2:]
    return imresize(x, scale=float(scale), size=(h * scale, w * scale))


class MeanShift(nn.Module):
    """Add (``sign=+1``) or subtract (``sign=-1``) a fixed per-channel mean.

    EDSR's ``MeanShift`` on images in ``[0, 1]``: the mean is a buffer (saved with
    the state dict, never trained, not counted as a parameter).
    """

    def __init__(self, mean: Sequence[float], sign: int = -1) -> None:
        super().__init__()
        if sign not in (-1, 1):
            raise ValueError(f"sign must be -1 or +1, got {sign}")
        self.sign = sign
        self.register_buffer(
            "mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.sign * self.mean.to(x.dtype)


def default_mean(channels: int) -> tuple[float, ...]:
    """DIV2K's RGB mean for 3 channels; otherwise its average repeated per channel."""
    if channels == 3:
        return DIV2K_RGB_MEAN
    return (sum(DIV2K_RGB_MEAN) / 3.0,) * channels


class SubPixelConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (stride ``s``, odd kernel ``k``, padding ``k // 2``,
    ``output_padding = s - 1``) computed as its sub-pixel equivalent: one ``conv2d`` with
    ``s² · C_out`` outputs and a ``ceil``-sized kernel, then ``pixel_shuffle``.

    The same parameters and state-dict keys as the transposed conv (``weight``
    ``(C_in, C_out, k, k)``, ``bias``) and the same output, ``(B, C_out, h·s, w·s)`` up to
    float rounding; the phases of the kernel are gathered from ``weight`` at every call (so
    gradients reach it). On a CPU a 17 × 17 transposed conv (IDN's upscaler) runs several
    times slower than this (``benchmarks.dlnet_overhead``, where DL-Net calls it K times).
    """

    def _phases(self) -> tuple[Tensor, int, int]:
        s, k, p = self.stride[0], self.kernel_size[0], self.padding[0]
        ds = [d for d in range(-k - 1, k + 2) if any(0 <= s * d + a + p < k for a in range(s))]
        dmin, dmax = min(ds), max(ds)
        n = dmax - dmin + 1
        lo = max(0, -(s * dmin + p))
        hi = max(0, s * dmax + s - 1 + p - (k - 1))
        w = torch.nn.functional.pad(self.weight, (lo, hi, lo, hi))  # (C_in, C_out, k', k')
        rows = []
        for a in range(s):
            ya = s * dmin + a + p + lo
            cols = []
            for b in range(s):
                xb = s * dmin + b + p + lo
                tap = w[:, :, ya : ya + s * (n - 1) + 1 : s, xb : xb + s * (n - 1) + 1 : s]
                cols.append(tap.flip(-1, -2))  # correlation order: in[i - d] -> tap dmax - d
            rows.append(torch.stack(cols, dim=2))  # (C_in, C_out, s_b, n, n)
        taps = torch.stack(rows, dim=2)  # (C_in, C_out, s_a, s_b, n, n)
        c_in, c_out = taps.shape[:2]
        weight = taps.permute(1, 2, 3, 0, 4, 5).reshape(c_out * s * s, c_in, n, n)
        return weight, dmax, -dmin

    def _plain(self) -> bool:
        s, k, p = self.stride, self.kernel_size, self.padding
        return (
            s[0] == s[1] and k[0] == k[1] and k[0] % 2 == 1 and p == (k[0] // 2, k[1] // 2)
            and self.output_padding == (s[0] - 1, s[1] - 1) and self.groups == 1
            and self.dilation == (1, 1) and self.padding_mode == "zeros"
        )  # fmt: skip

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is not None or not self._plain():
            return super().forward(x, output_size)
        weight, before, after = self._phases()
        y = torch.nn.functional.conv2d(
            torch.nn.functional.pad(x, (before, after, before, after)), weight
        )
        y = torch.nn.functional.pixel_shuffle(y, self.stride[0])
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


def transposed_upsampler(
    in_channels: int, out_channels: int, scale: int, kernel_size: int = 17
) -> nn.ConvTranspose2d:
    """A ``k × k`` transposed conv with stride ``scale`` mapping ``(h, w)`` to ``(h·s, w·s)``.

    IDN's reconstruction block (``k = 17``, padding 8, stride ``s``). Caffe's version
    returns ``(h-1)·s + 1`` pixels; ``output_padding = s - 1`` completes the grid to
    exactly ``h·s``. ``kernel_size`` must be odd. Computed as its sub-pixel equivalent
    (:class:`SubPixelConvTranspose2d`: same parameters, same output).
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd, got {kernel_size}")
    if scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")
    pad = kernel_size // 2
    return SubPixelConvTranspose2d(
        in_channels, out_channels, kernel_size, stride=scale, padding=pad, output_padding=scale - 1
    )


def msra_init_(module: nn.Module, negative_slope: float = 0.0) -> None:
    """He ("MSRA") normal init, fan-in, of every (transposed) conv in ``module``; biases 0.

    ``negative_slope`` is the leaky-ReLU slope the gain accounts for (0 for ReLU).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(
                m.weight, a=negative_slope, mode="fan_in", nonlinearity="leaky_relu"
            )
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter elements (shared tensors counted once; works on ``meta``)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def conv3x3(in_channels: int, out_channels: int, bias: bool = True, groups: int = 1) -> nn.Conv2d:
    """3 × 3 convolution, stride 1, 'same' padding."""
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias, groups=groups)


class SRNet(nn.Module):
    """Base of the SR backbones: ``forward(x) = head(features(x), x)`` (module docstring).

    Subclasses implement :meth:`features` and :meth:`head`; ``scale`` and
    ``channels`` are set here.
    """

    def __init__(self, scale: int, channels: int) -> None:
        super().__init__()
        if int(scale) != scale or scale < 1:
            raise ValueError(f"scale must be a positive integer, got {scale}")
        if int(channels) != channels or channels < 1:
            raise ValueError(f"channels must be a positive integer, got {channels}")
        self.scale = int(scale)
        self.channels = int(channels)

    def features(self, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``g``: LR image ``(B, C, h, w)`` -> pre-activation hidden representation."""
        raise NotImplementedError

    def head(self, z: Tensor, x: Tensor) -> Tensor:  # pragma: no cover - abstract
        """``h``: ``(z, LR image)`` -> SR image ``(B, C, h·s, w·s)``."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x), x)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, channels={self.channels}"
