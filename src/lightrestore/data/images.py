"""Image decoding and conversion to uint8 ``(C, H, W)`` tensors.

Everything the data pipeline reads goes through :func:`load_image` (pixels) or
:func:`read_size` (header only), so every source sees the same conversions:

* grey, grey + alpha, palette, RGB(A), CMYK, 16-bit and float images all become
  uint8 with values in [0, 255];
* ``channels=3`` replicates grey images, ``channels=1`` turns colour into BT.601 luma
  computed exactly as Pillow's ``convert("L")`` does;
* ``load_size`` resizes so the shorter side equals ``load_size`` (Pillow bicubic,
  antialiased when shrinking; aspect ratio kept).

EXIF orientation tags are not applied (neither does Pillow by default); restoration
models do not care which way up a photo is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import numpy as np
import torch
from PIL import Image

from lightrestore.errors import ConfigError, DataError

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
)
"""Lower-case file suffixes (with the dot) treated as images; matching is case-insensitive."""

_PathLike = str | os.PathLike

# Pillow's fixed-point BT.601 luma (libImaging/Convert.c, ``L24``): the weights sum to
# 2**16, so grey pixels (R = G = B) map to themselves.
_LUMA_WEIGHTS = (19595, 38470, 7471)

_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")


def normalize_extensions(extensions: Iterable[str] | None) -> frozenset[str]:
    """Return ``extensions`` as lower-case suffixes with a leading dot.

    ``None`` gives :data:`IMAGE_EXTENSIONS`; ``["PNG", ".jpg"]`` gives
    ``{".png", ".jpg"}``.
    """
    if extensions is None:
        return IMAGE_EXTENSIONS
    if isinstance(extensions, str):
        extensions = [extensions]
    out = {e.strip().lower() for e in extensions if e.strip()}
    out = {e if e.startswith(".") else "." + e for e in out}
    if not out:
        raise ConfigError("data.source.extensions is empty: give at least one, e.g. [png, jpg]")
    return frozenset(out)


def has_image_extension(path: _PathLike, extensions: Iterable[str] | None = None) -> bool:
    """True when ``path``'s suffix (case-insensitive) is one of ``extensions``."""
    exts = IMAGE_EXTENSIONS if extensions is None else normalize_extensions(extensions)
    return os.path.splitext(os.fspath(path))[1].lower() in exts


def check_channels(channels: int) -> int:
    """Validate a ``channels`` argument (1 = grey, 3 = RGB) and return it as an int."""
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    return int(channels)


def check_load_size(load_size: int | None) -> int | None:
    """Validate a ``load_size`` (a positive int, or ``None`` for native size)."""
    if load_size is None:
        return None
    if isinstance(load_size, bool) or int(load_size) != load_size or load_size < 1:
        raise ConfigError(
            f"data.source.load_size must be a positive integer (the shorter side in pixels) "
            f"or null to keep native sizes, got {load_size!r}"
        )
    return int(load_size)


def scaled_size(h: int, w: int, load_size: int | None) -> tuple[int, int]:
    """Size ``(h, w)`` after resizing the shorter side to ``load_size`` (``None``: unchanged).

    The longer side is ``round(long * load_size / short)`` (halves round up), at least 1.
    """
    if load_size is None:
        return h, w
    if h <= w:
        return load_size, max(1, (2 * w * load_size + h) // (2 * h))
    return max(1, (2 * h * load_size + w) // (2 * w)), load_size


# --------------------------------------------------------------------------- conversion


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """Pixels of a Pillow image as ``(H, W)`` or ``(H, W, 3)`` numpy array.

    uint8 for 8-bit modes, uint16/int32 for 16-bit modes ('I;16', 'I'), float32 for
    'F'; alpha is dropped, palette and CMYK images become RGB.
    """
    mode = img.mode
    if mode in ("L", "RGB"):
        return np.asarray(img)
    if mode in ("1", "LA", "La"):
        return np.asarray(img.convert("L"))
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        return np.asarray(img)
    if mode in ("P", "PA"):
        # via RGBA: Pillow warns when palette transparency is converted straight to RGB
        return np.asarray(img.convert("RGBA"))[..., :3]
    return np.asarray(img.convert("RGB"))


def _array_to_uint8(a: np.ndarray) -> np.ndarray:
    """Scale an array of any supported dtype to uint8 (same shape).

    bool -> {0, 255}; uint8 unchanged; other integers are 16-bit samples, clipped to
    [0, 65535] and mapped to ``round(v / 257)`` (65535 -> 255, 32896 -> 128); floats
    are in [0, 1], clipped, mapped to ``round(v * 255)``.
    """
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.integer):
        v = np.clip(a, 0, 65535).astype(np.uint32)
        # round(v / 257) without ties: 257 is odd, so floor((v + 128) / 257) is exact
        return ((v + 128) // 257).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        v = np.clip(np.nan_to_num(a.astype(np.float64)), 0.0, 1.0)
        return np.rint(v * 255.0).astype(np.uint8)
    raise ValueError(f"unsupported pixel dtype {a.dtype}")


def _split_channels(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """Return ``(pixels, is_grey)``: ``(H, W)`` grey or ``(H, W, 3)`` RGB, alpha dropped."""
    if a.ndim == 2:
        return a, True
    if a.ndim == 3 and a.shape[2] in (1, 2):  # grey, grey + alpha
        return a[..., 0], True
    if a.ndim == 3 and a.shape[2] in (3, 4):  # RGB, RGBA
        return a[..., :3], False
    raise ValueError(f"expected an (H, W) or (H, W, 1|2|3|4) image array, got shape {a.shape}")


def _owned_tensor(chw: np.ndarray) -> torch.Tensor:
    """A contiguous uint8 tensor holding a fresh, writable copy of ``chw``.

    Arrays from Pillow are read-only and caller arrays must not be aliased.
    """
    return torch.from_numpy(np.array(chw, dtype=np.uint8, order="C", copy=True))


def rgb_to_luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of a uint8 ``(H, W, 3)`` array as uint8 ``(H, W)``.

    ``(19595 R + 38470 G + 7471 B + 2**15) >> 16``: Pillow's ``convert("L")``
    bit for bit (≈ ``round(.299 R + .587 G + .114 B)``, which differs by 1 for about
    0.06 % of colours).
    """
    c = rgb.astype(np.uint32)
    r, g, b = _LUMA_WEIGHTS
    return ((r * c[..., 0] + g * c[..., 1] + b * c[..., 2] + 32768) >> 16).astype(np.uint8)


def to_uint8_chw(image: Image.Image | np.ndarray, channels: int) -> torch.Tensor:
    """Convert a Pillow image or an ``(H, W[, C])`` array to a uint8 ``(channels, H, W)`` tensor.

    Args:
        image: a Pillow image of any common mode ('1', 'L', 'LA', 'P', 'RGB', 'RGBA',
            'CMYK', 'I;16', 'I', 'F', ...), or a numpy array ``(H, W)``,
            ``(H, W, 1|2|3|4)`` of dtype bool, uint8, uint16 (16-bit), other
            integers (treated as 16-bit) or float (values in [0, 1]).
        channels: 1 (grey: colour becomes BT.601 luma, as Pillow's 'L') or 3 (RGB:
            grey is replicated, alpha dropped).

    Returns:
        Contiguous uint8 tensor of shape ``(channels, H, W)``, values in [0, 255].
    """
    channels = check_channels(channels)
    a = _pil_to_array(image) if isinstance(image, Image.Image) else np.asarray(image)
    pixels, is_grey = _split_channels(a)
    pixels = _array_to_uint8(pixels)
    if channels == 1:
        chw = pixels[None] if is_grey else rgb_to_luma(pixels)[None]
    elif is_grey:
        chw = np.broadcast_to(pixels[None], (3, *pixels.shape))
    else:
        chw = pixels.transpose(2, 0, 1)
    return _owned_tensor(chw)


# --------------------------------------------------------------------------- resizing


def _pil_resize(pixels: np.ndarray, h: int, w: int) -> np.ndarray:
    """Pillow bicubic resize of a uint8 ``(H, W)`` or ``(H, W, 3)`` array to ``(h, w)``."""
    img = Image.fromarray(np.ascontiguousarray(pixels))
    return np.asarray(img.resize((w, h), Image.Resampling.BICUBIC))


def resize_shorter(image: torch.Tensor, size: int | None) -> torch.Tensor:
    """Resize a uint8 ``(C, H, W)`` tensor so its shorter side is ``size``.

    Pillow bicubic with its built-in antialiasing (when shrinking); the longer side is
    scaled by the same factor (see :func:`scaled_size`). ``size=None`` or an image that
    already has that size is returned unchanged (same object).
    """
    if size is None:
        return image
    _, h, w = image.shape
    new_h, new_w = scaled_size(h, w, check_load_size(size))
    if (new_h, new_w) == (h, w):
        return image
    return _resize_tensor(image, new_h, new_w, "resize_shorter")


def _resize_tensor(image: torch.Tensor, h: int, w: int, caller: str) -> torch.Tensor:
    """Pillow bicubic resize of a uint8 ``(C, H, W)`` tensor to ``(C, h, w)``."""
    if image.dtype != torch.uint8:
        raise TypeError(f"{caller} expects a uint8 tensor, got {image.dtype}")
    hwc = image.permute(1, 2, 0).numpy()
    if image.shape[0] == 3:
        out = _pil_resize(hwc, h, w).transpose(2, 0, 1)
    else:  # grey (or any other band count): each band alone, as 'L'
        out = np.stack([_pil_resize(hwc[..., k], h, w) for k in range(image.shape[0])])
    return _owned_tensor(out)


def resize_exact(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 ``(C, H, W)`` tensor to ``(C, size, size)``, aspect ratio not kept
    (DL-Net's CelebA 64×64: resized, not cropped). Pillow bicubic with antialiasing; an
    image already of that size is returned unchanged (same object)."""
    size = int(check_load_size(size))
    if tuple(image.shape[-2:]) == (size, size):
        return image
    return _resize_tensor(image, size, size, "resize_exact")


# --------------------------------------------------------------------------- files


def _reason(exc: BaseException) -> str:
    """Short human-readable reason for a decode failure."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_image(path: _PathLike, channels: int, load_size: int | None = None) -> torch.Tensor:
    """Decode an image file fully and return it as uint8 ``(channels, H, W)``, in [0, 255].

    The file is decoded completely (``Image.load()``), so truncated files fail here
    rather than later. When ``load_size`` is an int the result is resized so its
    shorter side equals ``load_size`` (:func:`resize_shorter`).

    Raises:
        DataError: the file cannot be opened or decoded; the message names the file.
    """
    channels = check_channels(channels)
    load_size = check_load_size(load_size)
    try:
        with Image.open(path) as img:
            img.load()
            tensor = to_uint8_chw(img, channels)
    except Exception as exc:  # any decoder failure is a problem with this file
        raise DataError(
            f"cannot decode image '{os.fspath(path)}': {_reason(exc)}. Remove or replace the "
            f"file (or leave it out of the split lists)."
        ) from exc
    return resize_shorter(tensor, load_size)


def read_size(path: _PathLike, load_size: int | None = None) -> tuple[int, int]:
    """Image size ``(h, w)`` from the file header alone, as it will be after ``load_size``.

    No pixels are decoded, so a truncated file can pass here and fail in
    :func:`load_image`.

    Raises:
        DataError: the header cannot be parsed; the message names the file.
    """
    load_size = check_load_size(load_size)
    try:
        with Image.open(path) as img:
            w, h = img.size
    except Exception as exc:  # unidentified format, unreadable file, decompression bomb...
        raise DataError(
            f"cannot read the image header of '{os.fspath(path)}': {_reason(exc)}. Remove or "
            f"replace the file (or leave it out of the split lists)."
        ) from exc
    return scaled_size(h, w, load_size)
