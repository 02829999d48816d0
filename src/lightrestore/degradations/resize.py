"""MATLAB-compatible bicubic resizing and the super-resolution degradation.

:func:`imresize` reproduces MATLAB's ``imresize(x, scale, 'bicubic')`` on double images
(the resizer SR papers build their LR inputs and bicubic baselines with):

* Keys' cubic kernel with ``a = -0.5``, support ``[-2, 2]``;
* output size ``ceil(in * scale)`` (or the size asked for);
* output pixel ``x`` (1-based) samples the input at ``u = x / scale + 0.5 * (1 - 1 / scale)``
  (pixel centres aligned);
* when downscaling with antialiasing the kernel is stretched by ``1 / scale`` (support
  ``4 / scale``) and scaled by ``scale``; the weights of every output pixel are
  normalised to sum to 1 (upscaling too);
* indices outside the image are mirrored symmetrically about the edge
  (``... b a | a b c ... y z | z y ...``, MATLAB's ``[1:n, n:-1:1]`` wrap), so border
  pixels match MATLAB as well.

Each axis becomes one dense ``(out, in)`` weight matrix, built once in float64 per
``(in_size, out_size, scale, antialias)`` and cached per device and dtype; a resize is
``W_h @ x @ W_w^T``: batched, exact, differentiable and GPU-friendly. Values are **not**
clamped (MATLAB's double output is not either): bicubic overshoot can leave [0, 1].
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.degradations.blur import gaussian_kernels, separable_filter
from lightrestore.errors import ConfigError

#: Support of the unstretched cubic kernel (MATLAB's ``kernel_width`` for bicubic).
CUBIC_WIDTH = 4.0

#: Resize matrices kept (least recently used dropped): test sets of many image sizes
#: (DIV2K's 2040-px matrices are ~8 MB each) must not fill the GPU.
CACHE_SIZE = 64


def cubic(t: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``), elementwise."""
    a = np.abs(t)
    a2, a3 = a * a, a * a * a
    inner = (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1)
    outer = (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1) & (a <= 2))
    return inner + outer


@functools.lru_cache(maxsize=CACHE_SIZE)
def _weights_f64(in_size: int, out_size: int, scale: float, antialias: bool) -> np.ndarray:
    """``(out_size, in_size)`` float64 resize matrix of one axis (MATLAB's ``contributions``).

    Row ``i`` holds the normalised cubic weights of output pixel ``i``; taps that fall
    outside the input are folded back by symmetric mirroring (period ``2 * in_size``),
    accumulating onto the pixel they mirror to.
    """
    width = CUBIC_WIDTH
    stretch = scale < 1 and antialias
    if stretch:
        width = CUBIC_WIDTH / scale
    x = np.arange(1, out_size + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)  # 1-based input coordinate
    left = np.floor(u - width / 2)
    taps = math.ceil(width) + 2
    ind = left[:, None] + np.arange(taps)[None, :]  # 1-based, may leave 1..in_size
    dist = u[:, None] - ind
    w = scale * cubic(scale * dist) if stretch else cubic(dist)
    w = w / w.sum(axis=1, keepdims=True)
    period = 2 * in_size
    src = np.mod(ind.astype(np.int64) - 1, period)  # 0-based in 0..2n-1
    src = np.where(src >= in_size, period - 1 - src, src)  # fold the mirrored half
    mat = np.zeros((out_size, in_size), dtype=np.float64)
    np.add.at(mat, (np.repeat(np.arange(out_size), taps), src.ravel()), w.ravel())
    return mat


def resize_weights(
    in_size: int,
    out_size: int,
    scale: float,
    antialias: bool = True,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The ``(out_size, in_size)`` bicubic resize matrix of one axis, cached (LRU).

    Args:
        in_size, out_size: pixels along the axis before and after resizing.
        scale: ``out / in`` as MATLAB uses it for the coordinate mapping and the
            antialiasing stretch (not necessarily ``out_size / in_size``, see
            :func:`imresize`).
        antialias: stretch the kernel by ``1 / scale`` when ``scale < 1``.
        device, dtype: where the matrix lives (built in float64, then cast).

    Returns:
        ``(out_size, in_size)`` tensor, shared with the cache (do not modify it in
        place); every row sums to 1.
    """
    return _weights(int(in_size), int(out_size), float(scale), bool(antialias), str(device), dtype)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _weights(
    in_size: int, out_size: int, scale: float, antialias: bool, device: str, dtype: torch.dtype
) -> Tensor:
    weights = _weights_f64(in_size, out_size, scale, antialias)
    return torch.tensor(weights, device=device, dtype=dtype)  # a copy: never aliases the f64 cache


def _plan(
    in_hw: tuple[int, int],
    scale: float | Sequence[float] | None,
    size: Sequence[int] | None,
) -> tuple[tuple[int, int], tuple[float, float]]:
    """Output size and per-axis scale from MATLAB's two ways of asking for a resize."""
    if scale is None and size is None:
        raise ValueError("imresize needs a scale or a size")
    if scale is not None:
        scales = (
            (float(scale), float(scale))
            if isinstance(scale, (int, float))
            else tuple(float(s) for s in scale)
        )
        if len(scales) != 2 or min(scales) <= 0:
            raise ValueError(f"scale must be positive (one value or two), got {scale!r}")
    if size is not None:
        out = tuple(int(s) for s in size)
        if len(out) != 2 or min(out) < 1:
            raise ValueError(f"size must be two positive integers (H, W), got {size!r}")
        if scale is None:
            scales = (out[0] / in_hw[0], out[1] / in_hw[1])
    else:
        out = tuple(math.ceil(n * s) for n, s in zip(in_hw, scales))
    return out, scales


def imresize(
    x: Tensor,
    scale: float | Sequence[float] | None = None,
    size: Sequence[int] | None = None,
    antialias: bool = True,
) -> Tensor:
    """Resize like MATLAB's ``imresize(x, scale, 'bicubic')`` on double images.

    Args:
        x: ``(B, C, H, W)`` floating-point images (any leading dims; the last two are
            resized), any value range.
        scale: output/input ratio (one value, or ``(scale_h, scale_w)``). Alone, it gives
            the output size ``ceil(H * scale), ceil(W * scale)`` as MATLAB (plain
            float64 ``ceil``).
        size: output ``(H_out, W_out)``. Alone, the scale of each axis is
            ``out / in`` (MATLAB's ``imresize(x, [h w])``). Given together with
            ``scale`` (an extension), ``size`` fixes the shape and ``scale`` the
            coordinate mapping: the result is MATLAB's ``imresize(x, scale)`` cropped
            or extended at the bottom/right, which keeps LR and HR grids aligned when
            ``H`` is not a multiple of the factor.
        antialias: stretch the kernel when downscaling (MATLAB's default ``true``).

    Returns:
        ``(B, C, H_out, W_out)`` in ``x``'s dtype and device, **not clamped**: bicubic
        overshoot can leave the input's range (as MATLAB's double output).
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"imresize needs a floating-point tensor, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"imresize needs (..., H, W) images, got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    (oh, ow), (sh, sw) = _plan((h, w), scale, size)
    wh = resize_weights(h, oh, sh, antialias, x.device, x.dtype)
    ww = resize_weights(w, ow, sw, antialias, x.device, x.dtype).T
    # contract the axis that shrinks the intermediate most first (fewer flops)
    if oh * w * (h + ow) <= h * ow * (w + oh):
        return torch.matmul(torch.matmul(wh, x), ww)
    return torch.matmul(wh, torch.matmul(x, ww))


def lr_size(hr_size: Sequence[int], scale: int) -> tuple[int, int]:
    """``(ceil(H / scale), ceil(W / scale))`` in integer arithmetic (MATLAB's LR size)."""
    return tuple(-(-int(n) // int(scale)) for n in hr_size[-2:])


class Resize(Degradation):
    """Single-image super-resolution: ``y = (U * x)↓s`` (DL-Net's SISR model).

    ``U`` is an isotropic Gaussian blur of width ``u`` (sigma in HR pixels, reflect
    padding, see :mod:`.blur`), ``↓s`` MATLAB's bicubic downscaling by ``1 / s``
    (:func:`imresize`, antialiased). The severity is ``u``. Default levels (DL-Net SR
    study, ``u`` in px): 0-0.6, 0.6-1.2, 1.2-1.8, 1.8-2.4, 2.4-3.0, extra 3.0-3.6.
    ``u = 0`` is classic bicubic SR (PSPL: ``bins=[[0, 0]], extra=[0, 0]``) and gives
    exactly ``imresize(x, 1 / s)``: the Gaussian kernel is then a unit impulse.

    The LR image has ``(ceil(H / s), ceil(W / s))`` pixels; use HR sizes that are
    multiples of ``s`` (modcrop) for clean shapes: otherwise MATLAB's ``ceil``
    semantics apply, and :meth:`upsample` returns the top-left ``H x W`` of the ``s``-fold
    upscaling, aligned with the HR grid.

    Args:
        scale: the integer SR factor ``s`` (``>= 1``).
        bins: training bins ``[[lo, hi], ...]`` of ``u`` overriding the default ladder.
        extra: the extra test level's bin ``[lo, hi]``.
        kernel_radius: blur taps on each side of the centre; default
            ``ceil(3 * u_max)`` with ``u_max`` the ladder's largest severity (11 px by
            default, 0 — no blur at all — for the bicubic-only ladder).

    ``sample(..., fixed={"severity": u})`` gives every sample the width ``u``.

    Params: ``severity`` ``(B,)`` and ``sigma`` ``(B,)`` float, both ``u`` in HR px.
    """

    name = "resize"

    def __init__(
        self,
        scale: int = 2,
        bins: Sequence[Sequence[float]] | None = None,
        extra: Sequence[float] | None = None,
        kernel_radius: int | None = None,
    ) -> None:
        ladder = Ladder.from_config(
            bins
            if bins is not None
            else [[0, 0.6], [0.6, 1.2], [1.2, 1.8], [1.8, 2.4], [2.4, 3.0]],
            extra if extra is not None else [3.0, 3.6],
            name="blur width",
            unit="px",
        )
        super().__init__(ladder)
        if int(scale) != scale or scale < 1:
            raise ConfigError(f"scale must be a positive integer, got {scale!r}")
        if min(lo for lo, _ in ladder.all_bins()) < 0:
            raise ConfigError(f"blur widths must be >= 0, got bins {ladder.all_bins()}")
        if kernel_radius is None:
            kernel_radius = math.ceil(3 * ladder.max_severity)
        if int(kernel_radius) != kernel_radius or kernel_radius < 0:
            raise ConfigError(
                f"kernel_radius must be a non-negative integer, got {kernel_radius!r}"
            )
        self.scale = int(scale)
        self.kernel_radius = int(kernel_radius)

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        if severity is not None and 3 * float(severity) > self.kernel_radius + 1e-9:
            warnings.warn(
                f"blur width {severity:g} exceeds kernel_radius/3 = {self.kernel_radius / 3:g}: "
                "the kernel is truncated; raise kernel_radius",
                stacklevel=3,
            )
        sigma = self._severity(levels, generator, severity)
        return {"severity": sigma, "sigma": sigma}

    def blur(self, x: Tensor, params: Params) -> Tensor:
        """``U * x``: per-sample Gaussian blur of ``x`` ``(B, C, H, W)``; same shape."""
        if self.kernel_radius == 0:
            return x
        k = gaussian_kernels(params["sigma"], self.kernel_radius)
        return separable_filter(x, k, k, "reflect")

    def downsample(self, x: Tensor) -> Tensor:
        """``x↓s``: MATLAB bicubic downscaling to ``(ceil(H / s), ceil(W / s))``, unclamped."""
        return imresize(x, scale=1.0 / self.scale, size=lr_size(x.shape, self.scale))

    def operator(self, x: Tensor, params: Params) -> Tensor:
        """The linear forward model ``(U * x)↓s``: ``(B, C, ceil(H/s), ceil(W/s))``, unclamped."""
        return self.downsample(self.blur(x, params))

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """The LR image ``(B, C, ceil(H/s), ceil(W/s))``, clamped to [0, 1]."""
        return self.operator(x, params).clamp(0.0, 1.0)

    def upsample(self, y: Tensor, size: Sequence[int] | None = None) -> Tensor:
        """MATLAB bicubic upscaling of ``y`` ``(B, C, h, w)`` by ``s`` to ``size`` ``(H, W)``.

        The bicubic input (or global skip) of VDSR-style models; ``size`` defaults to
        ``(h * s, w * s)``. The coordinate mapping is always the factor ``s``, so a
        smaller ``size`` is the top-left crop of the full upscaling. Unclamped.
        """
        if size is None:
            size = (y.shape[-2] * self.scale, y.shape[-1] * self.scale)
        return imresize(y, scale=float(self.scale), size=tuple(size)[-2:])
