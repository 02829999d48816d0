"""Per-image quality measures, the field's conventions, built on torchmetrics.

All functions take ``pred`` and ``target`` of shape ``(B, C, H, W)`` with values in
``[0, 1]`` (data range 1) and return one value per image, ``(B,)``.

* PSNR: ``10·log10(1 / MSE)`` over all pixels and channels of an image.
* SSIM: Gaussian window 11×11, σ = 1.5, K1 = 0.01, K2 = 0.03, per channel, averaged
  over the *valid* region (a border of 5 pixels — half the window — is excluded),
  which is scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1)`` convention.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.image import peak_signal_noise_ratio
from torchmetrics.functional.image.ssim import _ssim_update

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


PSNR_CAP = 100.0


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR in dB, data range 1: ``(B,)``, capped at 100 dB (identical images)."""
    value = peak_signal_noise_ratio(
        pred.float(), target.float(), data_range=1.0, reduction="none", dim=(1, 2, 3)
    )
    return value.clamp_max(PSNR_CAP)


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image SSIM (scikit-image convention, see module doc): ``(B,)``."""
    pad = (SSIM_WINDOW - 1) // 2
    if min(pred.shape[-2:]) <= 2 * pad:
        raise ValueError(
            f"SSIM needs images larger than {2 * pad}x{2 * pad}, got {tuple(pred.shape[-2:])}"
        )
    _, full = _ssim_update(
        pred.float(),
        target.float(),
        gaussian_kernel=True,
        sigma=SSIM_SIGMA,
        kernel_size=SSIM_WINDOW,
        data_range=1.0,
        return_full_image=True,
    )
    return full[..., pad:-pad, pad:-pad].mean(dim=(1, 2, 3))


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image mean absolute error: ``(B,)``."""
    return (pred.float() - target.float()).abs().mean(dim=(1, 2, 3))


def l2(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image mean squared error: ``(B,)``."""
    return (pred.float() - target.float()).pow(2).mean(dim=(1, 2, 3))


MEASURES = {"psnr": psnr, "ssim": ssim, "l1": l1, "l2": l2}


@torch.no_grad()
def measure_all(pred: Tensor, target: Tensor) -> dict[str, Tensor]:
    """All per-image measures: ``{"psnr", "ssim", "l1", "l2"}`` each ``(B,)``."""
    pred = pred.clamp(0.0, 1.0)
    return {name: fn(pred, target) for name, fn in MEASURES.items()}
