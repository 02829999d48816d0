"""Super-resolution metrics: PSNR / SSIM on the Y channel with a cropped border.

The field's convention (BasicSR's ``test_y_channel=True, crop_border=scale``, after the
MATLAB scripts of SRCNN/VDSR): convert to the Y of ITU-R BT.601 *studio range* as
MATLAB's ``rgb2ycbcr`` (Y in [16/255, 235/255]; **not** kornia's full-range
``rgb_to_ycbcr``), drop ``border`` pixels on every side, then measure with the
per-image functions of :mod:`.image_quality` (data range 1).

With ``quantize=True`` (``task.metrics.quantize``, on for the SR tasks) the output is
first rounded to 8 bits, ``(pred.clamp(0, 1) * 255).round() / 255``, in its own channel
space (RGB, or Y for a 1-channel model) as EDSR, BasicSR and the PSPL code do; Y computed
from rounded RGB is not rounded again (EDSR/BasicSR). The target is used as given: the
data's clean images are 8-bit already.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightrestore.metrics.image_quality import l1, l2, psnr, quantize_8bit, ssim

#: MATLAB ``rgb2ycbcr`` Y row for R, G, B in [0, 1], giving Y in [0, 255].
Y_COEFFS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def rgb_to_y(x: Tensor) -> Tensor:
    """Studio-range BT.601 luma as MATLAB's ``rgb2ycbcr``: ``(B, 3, H, W)`` -> ``(B, 1, H, W)``.

    ``Y = (16 + 65.481 R + 128.553 G + 24.966 B) / 255`` with ``R, G, B`` in [0, 1], so
    ``Y`` lies in ``[16/255, 235/255]``. A 1-channel input is taken to be Y already and
    returned as is.
    """
    c = x.shape[-3]
    if c == 1:
        return x
    if c != 3:
        raise ValueError(f"rgb_to_y needs 1 or 3 channels, got {c}")
    r, g, b = x.unbind(-3)
    y = (Y_OFFSET + Y_COEFFS[0] * r + Y_COEFFS[1] * g + Y_COEFFS[2] * b) / 255.0
    return y.unsqueeze(-3)


def crop_border(x: Tensor, border: int) -> Tensor:
    """Drop ``border`` pixels on each side of ``x`` ``(..., H, W)`` (0 keeps all)."""
    border = int(border)
    if border < 0:
        raise ValueError(f"border must be >= 0, got {border}")
    if border == 0:
        return x
    h, w = x.shape[-2:]
    if min(h, w) <= 2 * border:
        raise ValueError(f"cannot crop a border of {border} from a {h}x{w} image")
    return x[..., border:-border, border:-border]


def _y_cropped(pred: Tensor, target: Tensor, border: int) -> tuple[Tensor, Tensor]:
    return crop_border(rgb_to_y(pred), border), crop_border(rgb_to_y(target), border)


def psnr_y(pred: Tensor, target: Tensor, border: int = 0) -> Tensor:
    """Per-image PSNR (dB, data range 1) on Y with ``border`` px cropped: ``(B,)``.

    Args:
        pred, target: ``(B, 3, H, W)`` RGB (or ``(B, 1, H, W)`` Y) in [0, 1].
        border: pixels dropped on each side (the SR scale, by convention).
    """
    return psnr(*_y_cropped(pred, target, border))


def ssim_y(pred: Tensor, target: Tensor, border: int = 0) -> Tensor:
    """Per-image SSIM (scikit-image convention) on Y with ``border`` px cropped: ``(B,)``."""
    return ssim(*_y_cropped(pred, target, border))


@torch.no_grad()
def measure_y(
    pred: Tensor, target: Tensor, border: int = 0, quantize: bool = False
) -> dict[str, Tensor]:
    """All per-image measures on the cropped Y: ``{"psnr", "ssim", "l1", "l2"}``, each ``(B,)``.

    ``pred`` is clamped to [0, 1] first (as :func:`.image_quality.measure_all`) and, with
    ``quantize``, rounded to 8 bits before the Y conversion; a 1-channel ``pred``/``target``
    is Y already. L1 and L2 are on the cropped Y in [0, 1] units.
    """
    pred = quantize_8bit(pred) if quantize else pred.clamp(0.0, 1.0)
    yp, yt = _y_cropped(pred, target, border)
    return {"psnr": psnr(yp, yt), "ssim": ssim(yp, yt), "l1": l1(yp, yt), "l2": l2(yp, yt)}
