"""Block inpainting: one square hole per image, filled with the dataset mean colour.

ODL (code): the hole side ``s`` is drawn uniformly within the level's bin and the
hole is placed anywhere in the image; DL-Net's test protocol places it at the centre,
shifted by up to ``max_shift`` pixels per axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.errors import ConfigError

#: The CelebA mean colour the ODL authors fill holes with, in [0, 1].
MEAN_COLOUR: tuple[float, float, float] = (117 / 255, 104 / 255, 123 / 255)

#: ITU-R BT.601 luma weights: a colour fill seen by a 1-channel image.
_LUMA = (0.299, 0.587, 0.114)


class Fill:
    """The value masked pixels are set to, per channel, cached per device/dtype.

    Args:
        fill: one grey value, or one value per channel (usually RGB) in ``[0, 1]``.
            A 3-value fill applied to 1-channel images becomes its luminance
            ``.299 R + .587 G + .114 B``; a 1-value fill is used for every channel.
    """

    def __init__(self, fill: float | Sequence[float]) -> None:
        if isinstance(fill, (int, float)):
            values: tuple[float, ...] = (float(fill),)
        else:
            values = tuple(float(v) for v in fill)
        if not values:
            raise ConfigError("fill needs at least one value (a grey level or an RGB colour)")
        self.values = values
        self._cache: dict[tuple, Tensor] = {}

    def for_channels(self, channels: int) -> tuple[float, ...]:
        """The fill as ``channels`` plain floats."""
        v = self.values
        if len(v) == channels:
            return v
        if len(v) == 1:
            return v * channels
        if channels == 1 and len(v) == 3:
            return (sum(w * c for w, c in zip(_LUMA, v)),)
        raise ConfigError(
            f"fill {list(v)} has {len(v)} values but the images have {channels} channels: "
            "give one grey value or one value per channel"
        )

    def tensor(self, channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """``(1, C, 1, 1)`` fill values on ``device`` (created once, then cached)."""
        key = (channels, str(device), dtype)
        t = self._cache.get(key)
        if t is None:
            t = torch.tensor(self.for_channels(channels), dtype=dtype).view(1, -1, 1, 1)
            t = t.to(device)
            self._cache[key] = t
        return t

    def __repr__(self) -> str:
        return f"Fill({', '.join(f'{v:.4g}' for v in self.values)})"


def _indicators(
    top: Tensor, left: Tensor, side: Tensor, height: int, width: int
) -> tuple[Tensor, Tensor]:
    """Boolean ``(B, H)`` rows and ``(B, W)`` columns inside each square (``(B,)`` long
    ``top``, ``left``, ``side``): broadcast comparisons, no ``(B, H, W)`` index tensors."""
    rows = torch.arange(height, device=top.device)
    cols = torch.arange(width, device=top.device)
    top, left, side = top.view(-1, 1), left.view(-1, 1), side.view(-1, 1)
    return (rows >= top) & (rows < top + side), (cols >= left) & (cols < left + side)


def box_mask(top: Tensor, left: Tensor, side: Tensor, height: int, width: int) -> Tensor:
    """Boolean ``(B, 1, H, W)``: True in the square ``[top, top+side) x [left, left+side)``.
    ``top``, ``left``, ``side`` are ``(B,)`` integer tensors."""
    in_rows, in_cols = _indicators(top, left, side, height, width)
    return (in_rows[:, :, None] & in_cols[:, None, :]).unsqueeze(1)


def box_weight(
    top: Tensor, left: Tensor, side: Tensor, height: int, width: int, dtype: torch.dtype
) -> Tensor:
    """``(B, 1, H, W)`` of ``dtype``: 1 in the square of :func:`box_mask`, 0 elsewhere
    (the outer product of the row and column indicators; cheaper than a boolean AND
    on CPU)."""
    in_rows, in_cols = _indicators(top, left, side, height, width)
    return in_rows.to(dtype)[:, None, :, None] * in_cols.to(dtype)[:, None, None, :]


class Inpaint(Degradation):
    """One square hole of side ``s`` per image (ODL block inpainting).

    The severity is the hole side in pixels (integer ladder). Default levels:
    1-6, 7-12, 13-18, 19-24, 25-30 px, extra level 31-36 px.

    Args:
        bins: training bins ``[[lo, hi], ...]`` overriding the default ladder.
        extra: the extra test level's bin ``[lo, hi]``.
        fill: the hole's colour in ``[0, 1]`` (default the CelebA mean colour); see
            :class:`Fill` for 1-channel images.
        centered: put every hole exactly at the centre ``((H-s)//2, (W-s)//2)``.
        max_shift: if given (and not ``centered``), the hole is at the centre shifted by
            independent uniform integers in ``[-max_shift, max_shift]`` per axis, then
            clamped to stay inside the image (DL-Net's protocol). Otherwise the top-left
            corner is uniform over every position that keeps the hole inside.

    ``sample(..., fixed=...)`` accepts ``severity`` (a side in px), ``centered`` and
    ``max_shift``, overriding the constructor's values for that call.

    A side larger than the image is clamped to ``min(H, W)``; the params' ``severity``
    holds the side actually used.

    Params: ``severity`` ``(B,)`` float (the side), ``top``/``left`` ``(B,)`` long.
    """

    name = "inpaint"
    fixed_keys = frozenset({"centered", "max_shift"})

    def __init__(
        self,
        bins: Sequence[Sequence[float]] | None = None,
        extra: Sequence[float] | None = None,
        fill: float | Sequence[float] = MEAN_COLOUR,
        centered: bool = False,
        max_shift: int | None = None,
    ) -> None:
        ladder = Ladder.from_config(
            bins if bins is not None else [[1, 6], [7, 12], [13, 18], [19, 24], [25, 30]],
            extra if extra is not None else [31, 36],
            name="hole side",
            unit="px",
            integer=True,
        )
        super().__init__(ladder)
        self.fill = Fill(fill)
        self.centered = bool(centered)
        self.max_shift = _check_shift(max_shift)

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        _, h, w = shape
        side = self._severity(levels, generator, severity).clamp(0, min(h, w)).long()
        centered = bool(fixed.get("centered", self.centered))
        max_shift = _check_shift(fixed.get("max_shift", self.max_shift))
        room_y, room_x = h - side, w - side  # (B,) >= 0: valid tops are 0..room
        if centered:
            top, left = room_y // 2, room_x // 2
        else:
            u = torch.rand((levels.shape[0], 2), generator=generator, device=levels.device)
            if max_shift is not None:
                shift = torch.floor(u * (2 * max_shift + 1)).long() - max_shift
                top = torch.minimum((room_y // 2 + shift[:, 0]).clamp_min(0), room_y)
                left = torch.minimum((room_x // 2 + shift[:, 1]).clamp_min(0), room_x)
            else:
                top = torch.minimum(torch.floor(u[:, 0] * (room_y + 1)).long(), room_y)
                left = torch.minimum(torch.floor(u[:, 1] * (room_x + 1)).long(), room_x)
        return {"severity": side.float(), "top": top, "left": left}

    def hole_mask(self, params: Params, shape: Sequence[int]) -> Tensor:
        """Boolean ``(B, 1, H, W)``, True in the hole; ``shape`` ends with ``(H, W)``."""
        side = params["severity"].long()
        return box_mask(params["top"], params["left"], side, int(shape[-2]), int(shape[-1]))

    def observed_mask(
        self, params: Params, shape: Sequence[int], dtype: torch.dtype = torch.float32
    ) -> Tensor:
        """``(B, 1, H, W)`` in ``{0, 1}``: 1 where the pixel is observed (outside the hole)."""
        return (~self.hole_mask(params, shape)).to(dtype)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """``x`` ``(B, C, H, W)`` in [0, 1] with the hole set to the fill colour.

        ``lerp`` with a {0, 1} weight is exact (weight 0 gives ``x``, 1 gives the fill)
        and, on CPU, about 3x faster than ``torch.where`` on a broadcast boolean mask.
        """
        fill = self.fill.tensor(x.shape[1], x.device, x.dtype)
        hole = box_weight(
            params["top"], params["left"], params["severity"].long(), x.shape[-2], x.shape[-1],
            x.dtype,
        )  # fmt: skip
        return x.lerp(fill.expand_as(x), hole)

    def operator(self, x: Tensor, params: Params) -> Tensor:
        """``M x``: the hole's pixels set to 0 (DL-Net's forward model)."""
        return x * self.observed_mask(params, x.shape, x.dtype)


def _check_shift(max_shift) -> int | None:
    """``max_shift`` as an int (None stays None); ConfigError unless a non-negative integer."""
    if max_shift is None:
        return None
    if (
        isinstance(max_shift, bool)
        or not isinstance(max_shift, (int, float))
        or (int(max_shift) != max_shift or max_shift < 0)
    ):
        raise ConfigError(f"max_shift must be a non-negative integer or null, got {max_shift!r}")
    return int(max_shift)
