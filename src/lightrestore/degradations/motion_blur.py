"""Blind, spatially uniform camera-shake blur from random trajectories (synthetic GoPro-like
motion blur for the Golf Optimizer and any curriculum).

The model follows the idea of Boracchi & Foi (2012, "Modeling the performance of image
restoration from motion blur"), also used by DeblurGAN's trajectory generator; the code
here is written from that description, batched in torch:

* **Trajectory.** A 2-D random walk with inertia, sampled at ``steps`` points evenly
  spaced along its arc length: a unit velocity ``v`` (a complex number) is advanced
  ``v <- normalise(v·(1 + j_t) + shake·sqrt(ds)·xi_t - centripetal·p·ds)`` and
  ``p <- p + v·ds`` with ``ds = 1/(steps-1)``, where ``xi_t`` is complex Gaussian
  (a smooth jitter of the direction), ``j_t`` an impulsive change (with probability
  ``rate·ds`` per step, ``j = 2·e^{i(pi+delta)}``, ``delta ~ U(-1/2, 1/2)``: the hand
  jerks back) and the centripetal term pulls the camera back towards where it started.
  Per trajectory the initial direction is uniform and ``shake``, ``centripetal`` and
  ``rate`` are uniform in ``[0, max]``. The walk is simulated at unit total length and
  scaled to ``L`` px, so the shape distribution does not depend on ``L`` and the kernel's
  width grows linearly with the severity.
* **Kernel.** The trajectory is translated so that its mean sits on the centre pixel
  ``(K-1)/2`` (sub-pixel, before rasterising: the kernel's centre of mass is the centre,
  so the blur shifts nothing), then every sample is splatted bilinearly onto the ``K×K``
  grid (the tent weights ``max(0, 1-|y-i|)·max(0, 1-|x-j|)``, a batched matmul: no
  atomics, so the kernels are bit-reproducible on the GPU too) and the kernel is
  normalised to sum to 1. A path of arc length ``L`` lies within ``L/2`` of its mean, so
  ``K >= L + 2`` keeps every splat inside the grid (checked in the constructor).
* **Blur.** ``y = k * x``, a true convolution (``y(p) = sum_q k(q) x(p - q)``: the camera
  displaced by ``q`` for a fraction ``k(q)`` of the exposure), per sample, with ``reflect``
  borders by default (torch ``reflect`` = scipy ``mirror`` = OpenCV ``BORDER_REFLECT_101``,
  as :class:`~lightrestore.degradations.blur.GaussianBlur`; exact for images smaller than
  the kernel), output the input's size.

Severity = the trajectory length ``L`` in px; default levels 1-5, 5-9, 9-13, 13-17,
17-21, extra level 21-25; kernel 27×27.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.degradations.blur import _PADDINGS, border_index
from lightrestore.errors import ConfigError


def random_trajectories(
    length: Tensor,
    steps: int,
    generator: torch.Generator | None = None,
    shake: float = 1.5,
    centripetal: float = 6.0,
    rate: float = 1.5,
) -> Tensor:
    """Random camera trajectories of arc length ``length`` (see the module doc).

    Args:
        length: ``(B,)`` lengths in px; the trajectories are drawn on its device.
        steps: samples per trajectory (``>= 2``), evenly spaced along the arc.
        generator: a generator on ``length.device`` (or None for the global one).
        shake, centripetal, rate: the largest direction jitter (rad of direction drift,
            standard deviation, over the whole path), centripetal pull (per unit length) and
            expected number of impulsive changes per path; each trajectory draws its own
            uniformly in ``[0, max]``. All zero: straight lines.

    Returns:
        ``(B, steps, 2)`` float32 ``(y, x)`` positions in px with mean zero per trajectory;
        consecutive samples are ``length / (steps - 1)`` apart.
    """
    dev = length.device
    b, n = length.shape[0], int(steps)
    ds = 1.0 / (n - 1)

    def uniform(*size: int) -> Tensor:
        return torch.rand(size, generator=generator, device=dev)

    def cplx(*size: int) -> Tensor:
        re = torch.randn(size, generator=generator, device=dev)
        im = torch.randn(size, generator=generator, device=dev)
        return torch.complex(re, im)

    # every random quantity first (one call each), then a cheap recursion over the steps
    angle = 2 * math.pi * uniform(b)
    shake_b = shake * uniform(b)
    pull = centripetal * uniform(b) * ds
    rate_b = rate * uniform(b)
    jitter = cplx(b, n - 1) * (shake_b * math.sqrt(ds)).view(-1, 1)
    jump_at = uniform(b, n - 1) < (rate_b * ds).view(-1, 1)
    delta = uniform(b, n - 1) - 0.5
    jump = torch.polar(torch.full_like(delta, 2.0), math.pi + delta)
    gain = 1 + torch.where(jump_at, jump, torch.zeros_like(jump))

    v = torch.polar(torch.ones_like(angle), angle)
    p = torch.zeros_like(v)
    points = [p]
    for t in range(n - 1):
        v = v * gain[:, t] + jitter[:, t] - pull * p
        v = v / v.abs().clamp_min(1e-12)
        p = p + v * ds
        points.append(p)
    path = torch.stack(points, dim=1)
    path = (path - path.mean(dim=1, keepdim=True)) * length.float().view(-1, 1)
    return torch.stack((path.imag, path.real), dim=-1)


def splat_kernels(points: Tensor, kernel_size: int) -> Tensor:
    """Rasterise trajectories onto ``K×K`` kernels by bilinear splatting.

    Args:
        points: ``(B, N, 2)`` ``(y, x)`` positions in px relative to the kernel centre
            ``(K-1)/2``; positions beyond the grid are clamped onto its edge.
        kernel_size: ``K`` (odd).

    Returns:
        ``(B, K, K)`` float32 kernels, non-negative, each summing to 1; entry ``[i, j]``
        weights the displacement ``(i - (K-1)/2, j - (K-1)/2)``.
    """
    k = int(kernel_size)
    grid = torch.arange(k, device=points.device, dtype=torch.float32)
    pos = (points.float() + (k - 1) / 2).clamp(0, k - 1)
    tent = (1 - (pos.unsqueeze(-1) - grid).abs()).clamp_min(0)  # (B, N, 2, K)
    kernel = tent[:, :, 0].transpose(1, 2) @ tent[:, :, 1]  # (B, K, K)
    return kernel / kernel.sum(dim=(1, 2), keepdim=True)


def convolve_per_sample(x: Tensor, kernel: Tensor, padding: str = "reflect") -> Tensor:
    """Convolve each image with its own 2-D kernel; output has ``x``'s shape.

    ``y[b, c, p] = sum_q kernel[b, q] x[b, c, p - q]`` with ``q`` relative to the kernel
    centre (a true convolution: ``conv2d`` correlates with the flipped kernel), borders
    extended by ``padding`` (see :func:`~lightrestore.degradations.blur.border_index`).

    Args:
        x: ``(B, C, H, W)`` images.
        kernel: ``(B, Kh, Kw)`` kernels, odd sizes.
        padding: ``reflect``, ``replicate`` or ``circular``.
    """
    b, c, h, w = x.shape
    kh, kw = kernel.shape[-2:]
    if kh % 2 != 1 or kw % 2 != 1:
        raise ValueError(f"convolve_per_sample needs odd kernel sizes, got {kh}x{kw}")
    n = b * c
    weight = kernel.to(device=x.device, dtype=x.dtype).flip(-2, -1)
    weight = weight.repeat_interleave(c, 0).view(n, 1, kh, kw)
    y = x.reshape(1, n, h, w)
    y = y.index_select(2, border_index(h, kh // 2, padding, x.device))
    y = y.index_select(3, border_index(w, kw // 2, padding, x.device))
    return F.conv2d(y, weight, groups=n).view(b, c, h, w)


class MotionBlur(Degradation):
    """Camera-shake blur: one random trajectory kernel per image, optional Gaussian noise.

    Default levels (trajectory length in px): 1-5, 5-9, 9-13, 13-17, 17-21, extra level
    21-25 (see the module doc for the trajectory model).

    Args:
        bins: training bins ``[[lo, hi], ...]`` overriding the default ladder.
        extra: the extra test level's bin ``[lo, hi]``.
        kernel_size: ``K`` of the ``K×K`` kernels: odd and at least the longest trajectory
            of the ladder + 2 (default 27).
        noise_sigma: standard deviation of the additive Gaussian noise on [0, 1] images
            (default 0: none).
        padding: border handling of the blur (default ``reflect``; also ``replicate``,
            ``circular``).
        steps: samples per trajectory; default ``4·K`` (under 0.25 px apart).
        shake, centripetal, rate: the trajectory model's maxima, see
            :func:`random_trajectories`.

    ``sample(..., fixed={"severity": L})`` gives every sample a trajectory of length ``L``
    (the shapes stay random).

    Params: ``severity`` ``(B,)`` (length, px), ``kernel`` ``(B, K, K)`` float32, and
    ``noise`` ``(B, C, H, W)`` float32 (already scaled by ``noise_sigma``) only when
    ``noise_sigma > 0``.
    """

    name = "motion_blur"

    def __init__(
        self,
        bins: Sequence[Sequence[float]] | None = None,
        extra: Sequence[float] | None = None,
        kernel_size: int = 27,
        noise_sigma: float = 0.0,
        padding: str = "reflect",
        steps: int | None = None,
        shake: float = 1.5,
        centripetal: float = 6.0,
        rate: float = 1.5,
    ) -> None:
        ladder = Ladder.from_config(
            bins if bins is not None else [[1, 5], [5, 9], [9, 13], [13, 17], [17, 21]],
            extra if extra is not None else [21, 25],
            name="trajectory length",
            unit="px",
        )
        super().__init__(ladder)
        need = math.ceil(ladder.max_severity) + 2
        need += 1 - need % 2
        if (
            isinstance(kernel_size, bool)
            or int(kernel_size) != kernel_size
            or kernel_size % 2 != 1
            or kernel_size < ladder.max_severity + 2
        ):
            raise ConfigError(
                f"motion_blur: kernel_size={kernel_size!r} must be an odd integer >= the "
                f"longest trajectory ({ladder.max_severity:g} px) + 2: set "
                f"task.degradation.kernel_size={need} (or more)"
            )
        if not 0.0 <= float(noise_sigma) <= 1.0:
            raise ConfigError(
                f"motion_blur: noise_sigma is on [0, 1] images and must lie in [0, 1], "
                f"got {noise_sigma!r}"
            )
        if padding not in _PADDINGS:
            raise ConfigError(f"padding must be one of {_PADDINGS}, got {padding!r}")
        if steps is not None and (int(steps) != steps or steps < 2):
            raise ConfigError(f"motion_blur: steps must be an integer >= 2, got {steps!r}")
        if min(shake, centripetal, rate) < 0:
            raise ConfigError("motion_blur: shake, centripetal and rate must be >= 0")
        self.kernel_size = int(kernel_size)
        self.noise_sigma = float(noise_sigma)
        self.padding = padding
        self.steps = int(steps) if steps is not None else 4 * self.kernel_size
        self.shake, self.centripetal, self.rate = float(shake), float(centripetal), float(rate)

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        if severity is not None and float(severity) > self.kernel_size - 2 + 1e-9:
            warnings.warn(
                f"motion_blur length {severity:g} exceeds kernel_size - 2 = "
                f"{self.kernel_size - 2}: the kernel is truncated; raise kernel_size",
                stacklevel=3,
            )
        length = self._severity(levels, generator, severity)
        points = random_trajectories(
            length, self.steps, generator, self.shake, self.centripetal, self.rate
        )
        params = {"severity": length, "kernel": splat_kernels(points, self.kernel_size)}
        if self.noise_sigma > 0:
            c, h, w = shape
            noise = torch.randn(
                (levels.shape[0], c, h, w), generator=generator, device=levels.device
            )
            params["noise"] = noise * self.noise_sigma
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Blur ``x`` ``(B, C, H, W)`` with each sample's kernel, add the noise (if any),
        clamp to [0, 1]."""
        y = self.operator(x, params)
        if "noise" in params:
            y = y + params["noise"].to(device=y.device, dtype=y.dtype)
        return y.clamp_(0.0, 1.0)

    def operator(self, x: Tensor, params: Params) -> Tensor:
        """The blur alone (linear, noiseless, not clamped)."""
        return convolve_per_sample(x, params["kernel"], self.padding)
