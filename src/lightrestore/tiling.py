"""Restoring images larger than a fixed-size model's input with overlapping tiles."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def restore_tiled(
    fn: Callable[[Tensor], Tensor], image: Tensor, tile: int, stride: int, batch_size: int = 64
) -> Tensor:
    """Apply ``fn`` to overlapping ``tile``×``tile`` windows and average the overlaps.

    Args:
        fn: ``(N, C, tile, tile) -> (N, C, tile, tile)``, images in [0, 1].
        image: ``(C, H, W)`` in [0, 1], any size (padded by edge replication to a whole
            number of strides, then cropped back).
        tile: the model's input side.
        stride: step between windows (``<= tile``; smaller is smoother and slower; the
            ODL authors' denoising demo used 3).
        batch_size: windows per call of ``fn``.

    Returns:
        ``(C, H, W)`` restored image.
    """
    if not 0 < stride <= tile:
        raise ValueError(f"stride must be in 1..{tile}, got {stride}")
    c, h, w = image.shape
    ph = max(tile, h + (-(h - tile) % stride if h > tile else 0)) - h
    pw = max(tile, w + (-(w - tile) % stride if w > tile else 0)) - w
    x = F.pad(image[None], (0, pw, 0, ph), mode="replicate")
    hh, ww = x.shape[-2:]
    cols = F.unfold(x, tile, stride=stride)  # (1, C*tile*tile, L)
    n = cols.shape[-1]
    windows = cols[0].T.reshape(n, c, tile, tile)
    out = torch.cat([fn(windows[i : i + batch_size]) for i in range(0, n, batch_size)])
    out_cols = out.reshape(n, -1).T[None]
    summed = F.fold(out_cols, (hh, ww), tile, stride=stride)
    count = F.fold(torch.ones_like(out_cols), (hh, ww), tile, stride=stride)
    return (summed / count)[0, :, :h, :w]
