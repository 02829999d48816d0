"""Anisotropic Gaussian blur with per-sample widths (ODL deblurring).

ODL draws sigma_x and sigma_y independently in the level's bin; the authors blurred with
OpenCV (border ``BORDER_REFLECT_101``), which is torch's ``reflect`` padding and
scipy's ``mode='mirror'``. Here the kernel radius is fixed per degradation (not
derived from the drawn sigmas, so there is no host sync): ``ceil(3 * sigma_max)`` of
the ladder by default, 18 px (37 taps) for the default ladder.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from kornia.filters import get_gaussian_kernel1d
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.errors import ConfigError

#: Smallest sigma handed to the kernel builder: a sigma of 0 (identity) becomes
#: 1e-2, whose kernel is a unit impulse in float32 (exp(-5000) == 0). kornia 0.9
#: already returns the impulse at sigma 0; older versions divide 0 / 0.
MIN_SIGMA = 1e-2


_PADDINGS = ("reflect", "replicate", "circular")
_INDEX_CACHE: dict[tuple, Tensor] = {}


def border_index(size: int, radius: int, padding: str, device: torch.device) -> Tensor:
    """``(size + 2*radius,)`` long: the source of every position ``-radius..size-1+radius``.

    ``reflect`` mirrors about the edge pixels (``d c b | a b c d | c b a``: torch's
    ``reflect`` = scipy's ``mirror`` = OpenCV's ``BORDER_REFLECT_101``), repeatedly when
    ``radius >= size``, so it is exact for images smaller than the kernel;
    ``replicate`` repeats the edge pixel, ``circular`` wraps around. Cached per call
    signature (a few hundred integers).
    """
    key = (size, radius, padding, str(device))
    idx = _INDEX_CACHE.get(key)
    if idx is None:
        i = torch.arange(-radius, size + radius)
        if padding == "reflect":
            period = max(2 * (size - 1), 1)
            i = torch.remainder(i, period)
            i = torch.where(i > size - 1, period - i, i)
        elif padding == "replicate":
            i = i.clamp(0, size - 1)
        elif padding == "circular":
            i = torch.remainder(i, size)
        else:
            raise ConfigError(f"padding must be one of {_PADDINGS}, got {padding!r}")
        idx = i.to(device)
        _INDEX_CACHE[key] = idx
    return idx


def separable_filter(
    x: Tensor, kernel_y: Tensor, kernel_x: Tensor, padding: str = "reflect"
) -> Tensor:
    """Filter each image with its own separable kernel; output has ``x``'s shape.

    Two 1-D grouped convolutions over ``(1, B*C, H, W)`` (correlation, as ``conv2d``):
    first along H with ``kernel_y``, then along W with ``kernel_x``.

    Args:
        x: ``(B, C, H, W)`` images.
        kernel_y: ``(B, Ky)`` (or ``(1, Ky)``, shared) taps along H, ``Ky`` odd.
        kernel_x: ``(B, Kx)`` (or ``(1, Kx)``) taps along W, ``Kx`` odd.
        padding: ``reflect`` (scipy ``mirror``, OpenCV ``BORDER_REFLECT_101``; exact
            even when the image is smaller than the kernel), ``replicate`` or
            ``circular``; see :func:`border_index`.

    Returns:
        ``(B, C, H, W)`` in ``x``'s dtype.
    """
    b, c, h, w = x.shape
    n = b * c
    y = x.reshape(1, n, h, w)
    for dim, kernel in ((2, kernel_y), (3, kernel_x)):
        k = kernel.shape[-1]
        if k % 2 != 1:
            raise ValueError(f"separable_filter needs odd kernel sizes, got {k}")
        r = k // 2
        weight = kernel.to(device=x.device, dtype=x.dtype).expand(b, k).repeat_interleave(c, 0)
        weight = weight.view(n, 1, k, 1) if dim == 2 else weight.view(n, 1, 1, k)
        if r:
            y = y.index_select(dim, border_index(y.shape[dim], r, padding, x.device))
        y = F.conv2d(y, weight, groups=n)
    return y.view(b, c, h, w)


def gaussian_kernels(sigma: Tensor, radius: int) -> Tensor:
    """``(B, 2*radius+1)`` normalised Gaussian taps for ``sigma`` ``(B,)`` (pixels).

    The taps sample ``exp(-n^2 / 2 sigma^2)`` at integer offsets and sum to 1 (as
    scipy's ``gaussian_filter`` and OpenCV's ``getGaussianKernel``); sigma 0 gives the
    unit impulse.
    """
    s = sigma.float().clamp_min(MIN_SIGMA).view(-1, 1)
    return get_gaussian_kernel1d(2 * radius + 1, s)


class GaussianBlur(Degradation):
    """Anisotropic Gaussian blur, ``sigma_x`` and ``sigma_y`` drawn independently.

    Default levels (sigma in px): 0-1, 1-2, 2-3, 3-4, 4-5, extra level 5-6.

    Args:
        bins: training bins ``[[lo, hi], ...]`` overriding the default ladder.
        extra: the extra test level's bin ``[lo, hi]``.
        kernel_radius: taps on each side of the centre; default ``ceil(3 * sigma_max)``
            with ``sigma_max`` the ladder's largest severity. A larger sigma (a fixed
            severity above the ladder) is truncated at this radius.
        padding: border handling, see :func:`separable_filter` (default ``reflect``).

    ``sample(..., fixed={"severity": s})`` gives ``sigma_x = sigma_y = s``.

    Params: ``severity`` ``(B,)`` (``max(sigma_x, sigma_y)``), ``sigma_x``, ``sigma_y``
    ``(B,)`` float, in px.
    """

    name = "blur"

    def __init__(
        self,
        bins: Sequence[Sequence[float]] | None = None,
        extra: Sequence[float] | None = None,
        kernel_radius: int | None = None,
        padding: str = "reflect",
    ) -> None:
        ladder = Ladder.from_config(
            bins if bins is not None else [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]],
            extra if extra is not None else [5, 6],
            name="blur sigma",
        )
        super().__init__(ladder)
        if kernel_radius is None:
            kernel_radius = math.ceil(3 * ladder.max_severity)
        if int(kernel_radius) != kernel_radius or kernel_radius < 0:
            raise ConfigError(
                f"kernel_radius must be a non-negative integer, got {kernel_radius!r}"
            )
        if padding not in _PADDINGS:
            raise ConfigError(f"padding must be one of {_PADDINGS}, got {padding!r}")
        self.kernel_radius = int(kernel_radius)
        self.padding = padding

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        if severity is not None and 3 * float(severity) > self.kernel_radius + 1e-9:
            warnings.warn(
                f"blur sigma {severity:g} exceeds kernel_radius/3 = {self.kernel_radius / 3:g}: "
                "the kernel is truncated; raise kernel_radius",
                stacklevel=3,
            )
        sigma_x = self._severity(levels, generator, severity)
        sigma_y = self._severity(levels, generator, severity)
        return {
            "severity": torch.maximum(sigma_x, sigma_y),
            "sigma_x": sigma_x,
            "sigma_y": sigma_y,
        }

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Blur ``x`` ``(B, C, H, W)``; values stay in [0, 1] (a normalised kernel)."""
        ky = gaussian_kernels(params["sigma_y"], self.kernel_radius)
        kx = gaussian_kernels(params["sigma_x"], self.kernel_radius)
        return separable_filter(x, ky, kx, self.padding)

    def operator(self, x: Tensor, params: Params) -> Tensor:
        """The same blur: it is linear and noiseless."""
        return self.apply(x, params)
