"""JPEG compression (LIRA's third base distortion; RL-Restore's ``imwrite(..., 'Quality', q)``).

:func:`jpeg_compress` encodes and decodes a batch at per-sample qualities, as MATLAB's
``imwrite(im, f, 'jpg', 'Quality', q)`` followed by ``im2double(imread(f))`` does on
double images: the input is rounded to 8 bits, coded, and the decoded image is 8-bit
again. Two backends:

* ``"kornia"`` (default): :func:`kornia.enhance.jpeg_codec_differentiable` on the input's
  device, batched with per-sample quality tables (libjpeg's quality scaling of the
  standard tables, 4:2:0 chroma subsampling, replicate padding to multiples of 16 done by
  kornia itself). It approximates libjpeg (its rounding is a smooth polynomial, its
  chroma up-sampling and colour conversion are not libjpeg's fixed-point ones): 35.6 to
  43.3 dB PSNR from Pillow's output at qualities 10 to 95 on a 64×64 photograph crop
  (kornia 0.9.0, Pillow 13.0.0; ``tests/test_blended.py``), the gap widest at low quality.
  kornia checks the quality range with one ``.item()`` (a host sync per call).
* ``"pillow"``: the exact libjpeg codec through Pillow (``save(format="JPEG",
  quality=q)``, default 4:2:0 subsampling), one image at a time on the CPU, then back to
  the input's device and dtype. A documented CPU fallback for exact-codec data sets; the
  per-sample loop makes it slow on large batches.

Qualities are rounded to integers and clamped to ``1..100``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import torch
from kornia.enhance import jpeg_codec_differentiable
from PIL import Image
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.errors import ConfigError

BACKENDS = ("kornia", "pillow")


def jpeg_quality(quality: Tensor | float, batch: int, device: torch.device) -> Tensor:
    """``(B,)`` float32 integer qualities in ``1..100`` on ``device`` (rounded, clamped)."""
    q = torch.as_tensor(quality, dtype=torch.float32, device=device)
    if q.ndim == 0:
        q = q.expand(batch)
    if q.shape != (batch,):
        raise ValueError(f"quality must be a scalar or ({batch},), got shape {tuple(q.shape)}")
    return q.round().clamp(1.0, 100.0)


def quantize8(x: Tensor) -> Tensor:
    """Round ``x`` in [0, 1] to the nearest of the 256 8-bit values (``im2uint8``), as floats."""
    return x.clamp(0.0, 1.0).mul(255.0).round().div(255.0)


def jpeg_compress(x: Tensor, quality: Tensor | float, backend: str = "kornia") -> Tensor:
    """JPEG-code every image at its own quality and decode it.

    Args:
        x: ``(B, C, H, W)`` images in [0, 1], ``C`` 3 (RGB) or 1 (grey: kornia codes it
            as a 3-channel grey image, which has constant chroma, and averages the channels
            back; Pillow codes a greyscale JPEG).
        quality: ``(B,)`` (or a scalar) JPEG quality, rounded to an integer and clamped to
            ``1..100`` (MATLAB's ``imwrite`` range; 100 is the least lossy).
        backend: ``"kornia"`` (batched, on ``x``'s device) or ``"pillow"`` (exact libjpeg,
            per-image loop on the CPU); see the module doc.

    Returns:
        ``(B, C, H, W)`` decoded images in [0, 1], on ``x``'s device and in its dtype,
        quantised to 8 bits (multiples of 1/255).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"jpeg backend must be one of {BACKENDS}, got {backend!r}")
    b, c, h, w = x.shape
    if c not in (1, 3):
        raise ValueError(f"jpeg_compress needs 1 or 3 channels, got {c}")
    q = jpeg_quality(quality, b, x.device)
    if b == 0:
        return x.clone()
    if backend == "pillow":
        return _pillow(x, q)
    x8 = quantize8(x.float())
    rgb = x8.expand(b, 3, h, w) if c == 1 else x8
    y = jpeg_codec_differentiable(rgb, q)
    if c == 1:
        y = y.mean(dim=1, keepdim=True)
    return quantize8(y).to(x.dtype)


def _pillow(x: Tensor, quality: Tensor) -> Tensor:
    """The exact codec: Pillow on the CPU, one image at a time (see :func:`jpeg_compress`)."""
    u8 = x.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).cpu()
    arr = u8.permute(0, 2, 3, 1).numpy()
    qs = [int(v) for v in quality.cpu().tolist()]
    out = np.empty_like(arr)
    for i, q in enumerate(qs):
        img = Image.fromarray(arr[i, :, :, 0] if arr.shape[3] == 1 else arr[i])
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as dec:
            dec_arr = np.asarray(dec.convert(img.mode))
        out[i] = dec_arr.reshape(arr.shape[1:])
    y = torch.from_numpy(out).permute(0, 3, 1, 2).float().div(255.0)
    return y.to(device=x.device, dtype=x.dtype)


class JPEG(Degradation):
    """JPEG compression at a per-sample quality.

    The severity is ``100 - quality`` (0..99), so that harder levels have higher
    severities as the :class:`Ladder` requires. Default levels (severity): 0-20, 20-40,
    40-60, 60-75, 75-90, i.e. quality 100-80, 80-60, 60-40, 40-25, 25-10 (LIRA's quality
    range [10, 100]); no extra level by default (quality 10 is the range's end).

    Args:
        bins: training bins of ``100 - quality`` ``[[lo, hi], ...]``, within ``0..99``.
        extra: the extra test level's bin, or None / ``[]`` for none.
        backend: ``"kornia"`` or ``"pillow"``, see :func:`jpeg_compress`.

    A drawn severity is rounded to the integer quality that is applied, and ``severity``
    reports that applied value (``100 - quality``).

    Params: ``severity`` ``(B,)`` float (``100 - quality``), ``quality`` ``(B,)`` float
    (integers in ``1..100``).
    """

    name = "jpeg"

    def __init__(
        self,
        bins: Sequence[Sequence[float]] | None = None,
        extra: Sequence[float] | None = None,
        backend: str = "kornia",
    ) -> None:
        ladder = Ladder.from_config(
            bins if bins is not None else [[0, 20], [20, 40], [40, 60], [60, 75], [75, 90]],
            extra if extra is not None else [],
            name="JPEG severity (100 - quality)",
        )
        lo = min(a for a, _ in ladder.all_bins())
        if lo < 0 or ladder.max_severity > 99:
            raise ConfigError(
                "JPEG severity (100 - quality) bins must lie within 0..99 (quality 100..1), "
                f"got {[list(b) for b in ladder.all_bins()]}"
            )
        if backend not in BACKENDS:
            raise ConfigError(f"jpeg backend must be one of {BACKENDS}, got {backend!r}")
        super().__init__(ladder)
        self.backend = backend

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        s = self._severity(levels, generator, severity)
        quality = (100.0 - s).round().clamp(1.0, 100.0)
        return {"severity": 100.0 - quality, "quality": quality}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """JPEG-coded ``x`` ``(B, C, H, W)``, 8-bit values in [0, 1]."""
        return jpeg_compress(x, params["quality"], self.backend)
