"""Restoring images larger than a model's input with overlapping tiles, in bounded memory.

:func:`restore_tiled` applies a model to overlapping ``tile``×``tile`` windows of an
image (edge-replicated at the bottom and right to a whole number of strides; images
smaller than a tile are padded to one tile) and averages the overlapping outputs.

It never holds every window at once: tiles are visited in row-major order, ``batch_size``
at a time; each batch is cut straight out of the (compact, e.g. uint8) image, run
through the model, and folded into an accumulator one tile row high (a *band*). Once a
tile row is complete, the output rows no later tile touches are averaged, written into
the output image (float or uint8) and dropped from the band. The working memory is
``batch_size`` tiles plus one band, whatever the image height; the band grows with the
image width only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

#: a run of consecutive tiles of one tile row: ``(row, first column, end column)``
Segment = tuple[int, int, int]

_CHUNK = 1024  # output columns averaged and stored at a time


def tile_grid(h: int, w: int, tile: int, stride: int) -> tuple[int, int, int, int]:
    """Padded size and tile counts ``(hh, ww, rows, cols)`` for an ``h``×``w`` image.

    Each side is padded to at least one tile, and beyond a tile to a whole number of
    strides: ``(hh - tile) % stride == 0``; ``rows = (hh - tile) // stride + 1``.
    """
    hh = max(tile, h + (-(h - tile) % stride if h > tile else 0))
    ww = max(tile, w + (-(w - tile) % stride if w > tile else 0))
    return hh, ww, (hh - tile) // stride + 1, (ww - tile) // stride + 1


def tile_count(h: int, w: int, tile: int, stride: int) -> int:
    """Number of windows :func:`restore_tiled` runs for an ``h``×``w`` image."""
    _, _, rows, cols = tile_grid(h, w, tile, stride)
    return rows * cols


def _segments(rows: int, cols: int, batch_size: int) -> Iterator[list[Segment]]:
    """The tiles in row-major order, ``batch_size`` per batch, each batch as segments.

    A batch that crosses the end of a tile row holds one segment per row it touches.
    """
    total, start = rows * cols, 0
    while start < total:
        end = min(start + batch_size, total)
        batch, t = [], start
        while t < end:
            r, c0 = divmod(t, cols)
            c1 = min(cols, c0 + end - t)
            batch.append((r, c0, c1))
            t += c1 - c0
        yield batch
        start = end


def _cover_count(size: int, tile: int, stride: int, n: int, device: torch.device) -> Tensor:
    """How many of the ``n`` windows ``[k·stride, k·stride + tile)`` cover each position.

    Returns a float ``(size,)`` tensor of small whole numbers (exact in float).
    """
    pos = torch.arange(size, device=device)
    first = torch.clamp(torch.div(pos - tile + stride, stride, rounding_mode="floor"), min=0)
    last = torch.clamp(torch.div(pos, stride, rounding_mode="floor"), max=n - 1)
    return (last - first + 1).clamp(min=0).float()


def _windows(
    image: Tensor, seg: Segment, tile: int, stride: int, rows_at: Tensor, cols_at: Tensor
) -> Tensor:
    """The windows of one segment as float ``(c1 - c0, C, tile, tile)``.

    ``rows_at`` / ``cols_at`` map padded coordinates to image ones (edge replication).
    uint8 images are scaled to [0, 1] (``x.float() / 255``), float ones are used as is.
    """
    r, c0, c1 = seg
    ys = rows_at[r * stride : r * stride + tile]
    xs = cols_at[c0 * stride : (c1 - 1) * stride + tile]
    region = image[:, ys[:, None], xs[None, :]]  # (C, tile, segment width)
    region = region.float().div(255) if region.dtype == torch.uint8 else region
    cols = F.unfold(region[None], tile, stride=stride)  # (1, C*tile*tile, c1 - c0)
    return cols[0].T.reshape(c1 - c0, image.shape[0], tile, tile)


def _store(dst: Tensor, values: Tensor) -> None:
    """Write averaged float values into ``dst`` (uint8: ``round(clamp(v, 0, 1) · 255)``);
    ``values`` is a temporary and is overwritten."""
    if dst.dtype == torch.uint8:
        values = values.clamp_(0, 1).mul_(255).round_()
    dst.copy_(values)


def restore_tiled(
    fn: Callable[[Tensor], Tensor],
    image: Tensor,
    tile: int,
    stride: int,
    batch_size: int = 64,
    *,
    scale: int = 1,
    out: Tensor | None = None,
    progress: Callable[[int], object] | None = None,
) -> Tensor:
    """Apply ``fn`` to overlapping ``tile``×``tile`` windows and average the overlaps.

    Args:
        fn: ``(N, C, tile, tile) -> (N, C', tile·scale, tile·scale)``, images in [0, 1];
            called with ``N <= batch_size`` windows in row-major order.
        image: ``(C, H, W)``, float in [0, 1] or uint8 in [0, 255] (scaled by 1/255 tile
            by tile, so a large image can stay compact). Any size: padded by edge
            replication to a whole number of strides (at least one tile), the padding
            cropped from the result.
        tile: the model's input side.
        stride: step between windows (``1 <= stride <= tile``; smaller is smoother and
            slower; the ODL authors' denoising demo used 3).
        batch_size: windows per call of ``fn``.
        scale: output pixels per input pixel (super-resolution models), 1 otherwise.
        out: optional ``(C', H·scale, W·scale)`` tensor to write into: float, or uint8
            (values ``round(clamp(v, 0, 1) · 255)``). Default: a new float32 tensor.
        progress: called with the number of windows after each call of ``fn``.

    Returns:
        ``(C', H·scale, W·scale)`` restored image (``out`` when given). The same numbers
        as unfolding every window and folding all outputs at once, up to float rounding
        of the summation order (~1e-7).
    """
    if not 0 < stride <= tile:
        raise ValueError(f"stride must be in 1..{tile}, got {stride}")
    if batch_size < 1 or scale < 1:
        raise ValueError(f"batch_size and scale must be >= 1, got {batch_size}, {scale}")
    _, h, w = image.shape
    hh, ww, rows, cols = tile_grid(h, w, tile, stride)
    dev = image.device
    rows_at = torch.arange(hh, device=dev).clamp(max=h - 1)
    cols_at = torch.arange(ww, device=dev).clamp(max=w - 1)
    big, step = tile * scale, stride * scale  # window and stride in output pixels
    row_count = _cover_count(hh * scale, big, step, rows, dev)
    col_count = _cover_count(ww * scale, big, step, cols, dev)[: w * scale]
    band: Tensor | None = None  # (C', big, ww·scale): output rows [r·step, r·step + big)
    for batch in _segments(rows, cols, batch_size):
        windows = torch.cat([_windows(image, s, tile, stride, rows_at, cols_at) for s in batch])
        restored = fn(windows)
        n = windows.shape[0]
        if restored.dim() != 4 or restored.shape[0] != n or restored.shape[-2:] != (big, big):
            raise ValueError(
                f"fn must map ({n}, C, {tile}, {tile}) to ({n}, C', {big}, {big}), "
                f"got {tuple(restored.shape)}"
            )
        if band is None:
            band = restored.new_zeros(restored.shape[1], big, ww * scale)
            if out is None:
                out = restored.new_empty(restored.shape[1], h * scale, w * scale)
        i = 0
        for r, c0, c1 in batch:
            part = restored[i : i + c1 - c0].flatten(1).T[None]  # (1, C'·big², c1 - c0)
            i += c1 - c0
            width = (c1 - c0 - 1) * step + big
            band[:, :, c0 * step : c0 * step + width] += F.fold(
                part, (big, width), big, stride=step
            )[0]
            if c1 == cols:  # tile row r is complete
                _finish_row(band, out, r, rows, step, row_count, col_count)
        if progress is not None:
            progress(n)
    assert out is not None
    return out


def _finish_row(
    band: Tensor, out: Tensor, r: int, rows: int, step: int, row_count: Tensor, col_count: Tensor
) -> None:
    """Average and store the output rows no tile row after ``r`` touches; shift the band.

    ``band`` holds the sums of output rows ``[r·step, r·step + big)``: rows up to
    ``(r + 1)·step`` are final (all of them after the last tile row). Afterwards it holds
    the rows from ``(r + 1)·step`` on, zeros below. Works on ``_CHUNK`` columns at a time,
    so its temporaries do not grow with the image width.
    """
    big, top = band.shape[1], r * step
    done = big if r == rows - 1 else step
    keep = min(done, out.shape[1] - top)  # rows inside the image (padding is cropped)
    width = out.shape[2]
    for c0 in range(0, band.shape[2], _CHUNK):
        c1 = min(c0 + _CHUNK, band.shape[2])
        if keep > 0 and c0 < width:
            e = min(c1, width)
            counts = row_count[top : top + keep, None] * col_count[None, c0:e]
            _store(out[:, top : top + keep, c0:e], band[:, :keep, c0:e] / counts)
        chunk = band[:, :, c0:c1]
        if done < big:
            chunk[:, : big - done] = chunk[:, done:].clone()
        chunk[:, big - done :] = 0
