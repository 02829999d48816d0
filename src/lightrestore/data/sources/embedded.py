"""The embedded data set: bundled photographs (no files, no download), split by REGION.

Photos: :data:`EMBEDDED_COLOUR_PHOTOS` (scikit-image's colour photographs plus
matplotlib's ``grace_hopper.jpg`` sample, both shipped inside the installed packages),
plus :data:`EMBEDDED_GREY_PHOTOS` when ``channels == 1``. Every photo contributes to
every split: splitting by image made validation one photograph (chelsea) and testing
another (astronaut), so the val-test gap measured two photographs, not the model.

Region scheme (:func:`region_boxes`). Each photo is decoded once per process, converted
to uint8 ``(C, H, W)`` and resized so its shorter side ``S`` is ``load_size``; then, with
``L`` its longer side, ``c`` the largest crop and ``g`` the guard (default ``c + 1``)::

    long axis:   [ train: t ][ guard g ][ eval band: e ]        t + g + e = L
    eval band, across the short axis:
                 [ val: v ][ guard g ][ test: S - g - v ]

``e ~ (f_val + f_test)·(L - g)`` and ``v ~ f_val / (f_val + f_test)·(S - g)`` with the
``fractions`` ``(f_train, f_val, f_test)`` (default 0.70 / 0.15 / 0.15: the shares of the
photo's area outside the guards), each length clamped so that every region holds a
``c``×``c`` crop (on a square 256-px photo with 64-px crops the eval band grows to 64
px and train keeps ~50 %). Any two regions are at least ``g > c`` pixels apart along
one axis, so no crop-sized window touches two splits (and the regions are handed out
as separate images, so no crop can straddle two of them). Val and test come from the
same band of each photo; val takes the band's first half in even-numbered photos and
its second half in odd-numbered ones (``val_first``), so neither split systematically
gets the tops (skies) of the photos. The grid is 2-D because three bands along one
axis do not fit a square photo (256 px, 64-px crops, 65-px guards: 3·64 + 2·65 > 256).

The layout fits when ``S >= 2c + g``. If ``load_size`` is smaller (``debug=smoke``:
64 px for 32-px crops), the photos are resized to ``S = 2c + g`` instead (``enlarge``,
the default; a ``UserWarning`` when that upsamples a photo beyond its native size) and
``describe()`` records the size used; with ``enlarge=False`` (or ``load_size=None``,
native sizes) that is a :class:`DataError` naming the fix.

Stereo pair: ``skimage.data.stereo_motorcycle()`` gives two views of one scene
(horizontal disparity up to 60 px at native size). Only the left view is used: with
both, the val region of one view would show what the other view's train region shows
whenever the disparity exceeds the guard, and the second view adds almost no new
content anyway.

The photo lists and the scheme are pinned by tests/test_constants.py: changing them
changes every embedded evaluation set.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np

from lightrestore.data.images import (
    check_channels,
    check_load_size,
    resize_shorter,
    to_uint8_chw,
)
from lightrestore.data.sources.base import SPLITS, ImageSource, check_split
from lightrestore.data.sources.image_list import TensorImageList
from lightrestore.errors import ConfigError, DataError

log = logging.getLogger(__name__)

EMBEDDED_COLOUR_PHOTOS: tuple[str, ...] = (
    "rocket",
    "coffee",
    "hubble_deep_field",
    "immunohistochemistry",
    "motorcycle_left",
    "chelsea",
    "astronaut",
    "grace_hopper",
)
"""Colour photographs used for every ``channels`` (``grace_hopper`` is matplotlib's
sample; the rest are ``skimage.data``; ``motorcycle_left`` is the left view of
``stereo_motorcycle``)."""

EMBEDDED_GREY_PHOTOS: tuple[str, ...] = (
    "brick",
    "grass",
    "gravel",
    "moon",
    "page",
    "text",
    "coins",
    "clock",
    "camera",
)
"""scikit-image greyscale photographs added when ``channels == 1``."""

DEFAULT_FRACTIONS: tuple[float, float, float] = (0.7, 0.15, 0.15)
"""Default ``(train, val, test)`` shares of each photo."""

_MATPLOTLIB_SAMPLES = {"grace_hopper": "grace_hopper.jpg"}

Box = tuple[int, int, int, int]
"""A region ``(top, left, height, width)`` in pixels of the resized photo."""


def embedded_photo_names(split: str, channels: int) -> tuple[str, ...]:
    """Photo names feeding ``split`` (every split gets a region of every photo)."""
    check_split(split)
    names = EMBEDDED_COLOUR_PHOTOS
    return names + EMBEDDED_GREY_PHOTOS if check_channels(channels) == 1 else names


def photo_id(name: str) -> str:
    """``skimage:<name>`` or ``matplotlib:<name>``: where a photo comes from."""
    return f"matplotlib:{name}" if name in _MATPLOTLIB_SAMPLES else f"skimage:{name}"


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """Three positive ``(train, val, test)`` shares summing to 1 (within 1e-6)."""
    try:
        f = tuple(float(x) for x in fractions)
    except (TypeError, ValueError):
        f = ()
    if len(f) != 3 or min(f) <= 0 or abs(sum(f) - 1.0) > 1e-6:
        raise ConfigError(
            f"data.source.fractions must be three positive (train, val, test) shares summing "
            f"to 1, e.g. [0.7, 0.15, 0.15], got {list(fractions)!r}"
        )
    return f  # type: ignore[return-value]


def min_shorter_side(crop_size: int, guard: int) -> int:
    """Smallest shorter side on which :func:`region_boxes` fits: ``2 * crop + guard``."""
    return 2 * crop_size + guard


def _clamp_round(x: float, lo: int, hi: int) -> int:
    return max(lo, min(hi, int(np.floor(x + 0.5))))


def region_boxes(
    h: int,
    w: int,
    crop_size: int,
    guard: int,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    val_first: bool = True,
) -> dict[str, Box]:
    """The train / val / test regions of an ``h``×``w`` photo (see the module doc).

    Returns ``{split: (top, left, height, width)}``; every region is at least
    ``crop_size`` on both sides and any two are ``>= guard`` pixels apart along one axis.
    Raises ``ValueError`` if ``min(h, w) < 2 * crop_size + guard``.
    """
    f_train, f_val, f_test = check_fractions(fractions)
    c, g = int(crop_size), int(guard)
    short, long_ = min(h, w), max(h, w)
    if short < min_shorter_side(c, g):
        raise ValueError(f"{h}x{w} is too small for crop {c} and guard {g}")
    lp, sp = long_ - g, short - g
    e = _clamp_round((f_val + f_test) * lp, c, lp - c)  # eval band depth (long axis)
    t = lp - e  # train depth
    v = _clamp_round(f_val / (f_val + f_test) * sp, c, sp - c)  # val width (short axis)
    te = sp - v
    a0 = t + g  # eval band start on the long axis
    # across the short axis: (start, length) of val and test
    if val_first:
        val, test = (0, v), (v + g, te)
    else:
        test, val = (0, te), (te + g, v)
    if w >= h:  # long axis horizontal
        return {
            "train": (0, 0, short, t),
            "val": (val[0], a0, val[1], e),
            "test": (test[0], a0, test[1], e),
        }
    return {
        "train": (0, 0, t, short),
        "val": (a0, val[0], e, val[1]),
        "test": (a0, test[0], e, test[1]),
    }


@cache
def _stereo_motorcycle_left() -> np.ndarray:
    """Left view of ``skimage.data.stereo_motorcycle()``, (500, 741, 3) uint8."""
    import skimage.data

    left, _right, _disparity = skimage.data.stereo_motorcycle()
    return left


def _matplotlib_sample(filename: str) -> np.ndarray:
    """A sample image shipped in matplotlib's package data (no download)."""
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data(filename) as f, Image.open(f) as img:
        return np.asarray(img.convert("RGB"))


@cache
def _embedded_photo(name: str) -> np.ndarray:
    """A bundled photograph as ``(H, W)`` or ``(H, W, 3)`` array, decoded once per process."""
    try:
        if name == "motorcycle_left":
            return _stereo_motorcycle_left()
        if name in _MATPLOTLIB_SAMPLES:
            return _matplotlib_sample(_MATPLOTLIB_SAMPLES[name])
        import skimage.data

        return getattr(skimage.data, name)()
    except Exception as exc:
        raise DataError(
            f"the bundled photograph '{photo_id(name)}' cannot be loaded "
            f"({type(exc).__name__}: {exc}). Reinstall scikit-image and matplotlib, or use "
            f"your own images with data=folder and data.source.root=<folder of images>."
        ) from exc


def _working_size(
    name: str,
    native: tuple[int, int],
    load_size: int | None,
    crop_size: int,
    guard: int,
    enlarge: bool,
) -> int:
    """The shorter side the photo is resized to before cutting its regions."""
    need = min_shorter_side(crop_size, guard)
    native_short = min(native)
    size = native_short if load_size is None else load_size
    if size >= need:
        return size
    what = (
        "at native size (data.source.load_size=null)"
        if load_size is None
        else f"at data.source.load_size={load_size}"
    )
    h, w = native
    head = (
        f"embedded photo '{photo_id(name)}' ({h}x{w} px natively) is too small {what} for its "
        f"train / val / test regions: each must hold a {crop_size}x{crop_size} crop "
        f"(data.crop_size, via data.source.crop_size) with a {guard}-px guard between them, "
        f"which needs a shorter side >= 2*{crop_size}+{guard} = {need} px."
    )
    if load_size is None or not enlarge:
        raise DataError(
            f"{head} Set data.source.load_size>={need}, or lower data.crop_size or "
            f"data.source.guard"
            + ("." if load_size is None else ", or set data.source.enlarge=true.")
        )
    if need > native_short:
        fit = max(1, (native_short - 1) // 3)  # 2c + (c + 1) <= native shorter side
        warnings.warn(
            f"{head} It is enlarged to {need} px, beyond its native size: upsampled, so "
            f"blurrier than the other photos (a poor super-resolution target). Lower "
            f"data.crop_size (<= {fit} with the default guard crop+1) or data.source.guard "
            f"to avoid it.",
            UserWarning,
            stacklevel=2,
        )
    return need


@cache
def _embedded_regions(
    channels: int,
    load_size: int | None,
    crop_size: int,
    guard: int,
    fractions: tuple[float, float, float],
    enlarge: bool,
) -> dict[str, tuple[tuple[int, int], dict[str, Box], dict[str, Any]]]:
    """Per photo: (resized size, region boxes, region tensors by split); cached per process."""
    out: dict[str, tuple[tuple[int, int], dict[str, Box], dict[str, Any]]] = {}
    sizes = set()
    for k, name in enumerate(embedded_photo_names("train", channels)):
        chw = to_uint8_chw(_embedded_photo(name), channels)
        native = (int(chw.shape[1]), int(chw.shape[2]))
        size = _working_size(name, native, load_size, crop_size, guard, enlarge)
        img = resize_shorter(chw, size)
        h, w = int(img.shape[1]), int(img.shape[2])
        boxes = region_boxes(h, w, crop_size, guard, fractions, val_first=k % 2 == 0)
        regions = {
            s: img[:, t : t + bh, left : left + bw].clone()
            for s, (t, left, bh, bw) in boxes.items()
        }
        out[name] = ((h, w), boxes, regions)
        sizes.add(size)
    if load_size is not None and sizes != {load_size}:
        log.info(
            "embedded photos resized to a shorter side of %s px instead of load_size=%d so every "
            "region holds a %d-px crop with a %d-px guard",
            sorted(sizes),
            load_size,
            crop_size,
            guard,
        )
    return out


class RegionImageList(TensorImageList):
    """The regions of one split, one per photo; names are ``<photo id>#<split>``."""

    def check_min_size(self, size: int, what: str = "crop") -> None:
        try:
            super().check_min_size(size, what)
        except DataError as exc:
            raise DataError(
                f"{exc} (Embedded photos are cut into train / val / test regions sized for "
                f"data.source.crop_size; keep it >= data.crop_size.)"
            ) from None


@cache
def _embedded_list(
    split: str,
    channels: int,
    load_size: int | None,
    crop_size: int,
    guard: int,
    fractions: tuple[float, float, float],
    enlarge: bool,
) -> RegionImageList:
    """The ``split`` regions of every photo (cached per process)."""
    regions = _embedded_regions(channels, load_size, crop_size, guard, fractions, enlarge)
    names = [f"{photo_id(p)}#{split}" for p in regions]
    return RegionImageList(names, [r[2][split] for r in regions.values()], load_size)


class EmbeddedSource(ImageSource):
    """Bundled photographs (scikit-image + matplotlib), split by region; nothing is downloaded.

    Every split holds one region of every photo (colour: :data:`EMBEDDED_COLOUR_PHOTOS`;
    grey, ``channels=1``: the same photos as luma plus :data:`EMBEDDED_GREY_PHOTOS`);
    see the module doc for the layout.

    Args:
        channels: 1 (grey, BT.601 luma) or 3.
        load_size: shorter side the photos are resized to (``None``: native size);
            raised to ``2 * crop_size + guard`` when smaller and ``enlarge`` is set.
        crop_size: the largest crop taken from a region (``${data.crop_size}`` in
            the configs); every region is at least this large on both sides.
        guard: pixels between two regions (default ``crop_size + 1``: wider than a crop).
        fractions: ``(train, val, test)`` shares of each photo.
        enlarge: resize photos beyond ``load_size`` when the regions do not fit
            (else raise :class:`DataError`).

    Photos are decoded on first use and cached per process, so several sources (or
    DataModules) with the same settings share one copy and ``split()`` returns the
    same object.
    """

    def __init__(
        self,
        channels: int = 3,
        load_size: int | None = 256,
        crop_size: int = 64,
        guard: int | None = None,
        fractions: Sequence[float] = DEFAULT_FRACTIONS,
        enlarge: bool = True,
    ) -> None:
        self.channels = check_channels(channels)
        self.load_size = check_load_size(load_size)
        if isinstance(crop_size, bool) or int(crop_size) != crop_size or crop_size < 1:
            raise ConfigError(
                f"data.source.crop_size must be a positive integer, got {crop_size!r}"
            )
        self.crop_size = int(crop_size)
        if guard is None:
            guard = self.crop_size + 1
        if isinstance(guard, bool) or int(guard) != guard or guard < 0:
            raise ConfigError(
                f"data.source.guard must be a non-negative integer (pixels) or null "
                f"(crop_size + 1), got {guard!r}"
            )
        self.guard = int(guard)
        self.fractions = check_fractions(fractions)
        self.enlarge = bool(enlarge)

    def _key(self) -> tuple:
        return (
            self.channels,
            self.load_size,
            self.crop_size,
            self.guard,
            self.fractions,
            self.enlarge,
        )

    def split(self, name: str) -> RegionImageList:
        return _embedded_list(check_split(name), *self._key())

    def regions(self) -> dict[str, dict[str, Any]]:
        """``{photo id: {"size": [h, w], split: [top, left, height, width], ...}}``."""
        return {
            photo_id(p): {"size": list(hw), **{s: list(b) for s, b in boxes.items()}}
            for p, (hw, boxes, _) in _embedded_regions(*self._key()).items()
        }

    def describe(self) -> dict[str, Any]:
        names = {s: self.split(s).names for s in SPLITS}
        regions = self.regions()
        return {
            "kind": "embedded",
            "root": "skimage.data + matplotlib sample_data",
            "channels": self.channels,
            "load_size": self.load_size,
            "split_mode": "regions",
            "fractions": list(self.fractions),
            "guard": self.guard,
            "crop_size": self.crop_size,
            "enlarge": self.enlarge,
            "shorter_side": sorted({min(r["size"]) for r in regions.values()}),
            "splits": {s: len(n) for s, n in names.items()},
            "names": names,
            "regions": regions,
        }

    def __repr__(self) -> str:
        return (
            f"EmbeddedSource(channels={self.channels}, load_size={self.load_size}, "
            f"crop_size={self.crop_size}, guard={self.guard}, fractions={list(self.fractions)})"
        )
