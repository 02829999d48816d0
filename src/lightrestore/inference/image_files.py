"""Reading the user's images for ``lightrestore.restore`` and writing the results safely.

* :func:`read_source` decodes a file the way viewers show it (EXIF orientation applied),
  records whether it is grey and keeps its alpha channel;
* :func:`output_image` turns a restored tensor back into a Pillow image of the source's
  kind (grey stays grey, the original alpha is re-attached);
* :func:`plan_outputs` gives every input a unique ``.png`` name;
  :func:`check_destinations` refuses, before anything is written, outputs that would
  overwrite an input or (without ``overwrite=true``) a file from before this run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from lightrestore.data.images import IMAGE_EXTENSIONS, has_image_extension, rgb_to_luma
from lightrestore.data.images import to_uint8_chw as _to_uint8_chw
from lightrestore.errors import DataError, UserError

_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_DEEP_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_LUMA_ROWS = 256
_EXTENSIONS = ", ".join(sorted(e[1:] for e in IMAGE_EXTENSIONS))


class OutputError(UserError):
    """An output folder or file that would destroy the user's files."""


class UnreadableImage(DataError):
    """An input file that cannot be decoded (``path``, ``reason``)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(
            f"'{path}' is not an image lightrestore can read ({reason}): give an image file "
            f"({_EXTENSIONS}) or a folder of them"
        )


@dataclass
class SourceImage:
    """A decoded input image.

    Attributes:
        pixels: uint8 ``(channels, H, W)`` in [0, 255], as the model takes it.
        grey: the file itself is greyscale (``'1'``, ``'L'``, ``'LA'``, 16-bit grey, ...).
        alpha: uint8 ``(H, W)`` alpha channel of the file (RGBA, LA, palette or colour-key
            transparency), ``None`` when it has none.
        deep: the file has more than 8 bits per sample (restored and written as 8-bit).
    """

    pixels: torch.Tensor
    grey: bool
    alpha: np.ndarray | None = None
    deep: bool = False


# --------------------------------------------------------------------------- inputs


def list_inputs(path: Path) -> list[Path]:
    """The image files to restore: ``path`` itself, or every image file under a folder.

    Raises:
        DataError: ``path`` does not exist, or the folder holds no image file.
    """
    if not path.exists():
        raise DataError(f"input '{path}' does not exist: give an image file or a folder of images")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and has_image_extension(p))
        if not files:
            raise DataError(f"no image files ({_EXTENSIONS}) in '{path}'")
        return files
    return [path]


def _is_deep(img: Image.Image) -> bool:
    """More than 8 bits per sample: 16-bit / 32-bit modes, or a 16-bit colour PNG
    (which Pillow opens as 8-bit ``'RGB'``/``'RGBA'``; its raw mode says ``;16``)."""
    return img.mode in _DEEP_MODES or any(";16" in str(t.args) for t in img.tile or [])


def _alpha(img: Image.Image) -> np.ndarray | None:
    """The uint8 ``(H, W)`` alpha of ``img``, ``None`` when it has no transparency."""
    if not img.has_transparency_data:
        return None
    grey = img.mode in _GREY_MODES and img.mode not in _DEEP_MODES
    try:
        rgba = img.convert("LA" if grey else "RGBA")
    except (ValueError, OSError):  # no alpha conversion for this mode (e.g. 16-bit grey)
        return None
    return np.array(rgba.getchannel("A"), dtype=np.uint8)


def read_source(path: Path, channels: int) -> SourceImage:
    """Decode ``path`` completely, oriented by its EXIF tag, for a ``channels`` model.

    Colour becomes BT.601 luma for a 1-channel model, grey is replicated for a 3-channel
    one (:func:`lightrestore.data.images.to_uint8_chw`); 16-bit samples become 8-bit.

    Raises:
        UnreadableImage: the file cannot be decoded; the message names it and the fix.
    """
    try:
        with Image.open(path) as img:
            deep = _is_deep(img)
            img.load()
            ImageOps.exif_transpose(img, in_place=True)  # as viewers show it
            return SourceImage(
                _to_uint8_chw(img, channels), img.mode in _GREY_MODES, _alpha(img), deep
            )
    except Exception as e:  # any decoder failure is a problem with this file
        raise UnreadableImage(path, f"{type(e).__name__}: {str(e)[:200]}") from None


# --------------------------------------------------------------------------- outputs


def output_image(restored: torch.Tensor, source: SourceImage) -> Image.Image:
    """The Pillow image to save for a restored uint8 ``(C, H', W')`` tensor (CPU).

    Grey sources give ``'L'`` (colour results become BT.601 luma, as Pillow's
    ``convert('L')``), colour sources ``'RGB'`` (or ``'L'`` from a 1-channel model);
    the source's alpha is re-attached unchanged (``'LA'`` / ``'RGBA'``), resized with
    Pillow bicubic only when the model changes the image size (super-resolution).
    """
    hwc = restored.permute(1, 2, 0).numpy()
    if hwc.shape[-1] == 1:
        colour = np.ascontiguousarray(hwc[..., 0])
    elif source.grey:
        colour = np.empty(hwc.shape[:2], dtype=np.uint8)
        for top in range(0, hwc.shape[0], _LUMA_ROWS):  # in bands: rgb_to_luma works in uint32
            colour[top : top + _LUMA_ROWS] = rgb_to_luma(hwc[top : top + _LUMA_ROWS])
    else:
        colour = np.ascontiguousarray(hwc)
    out = Image.fromarray(colour)
    if source.alpha is None:
        return out
    alpha = Image.fromarray(source.alpha)
    if alpha.size != out.size:
        alpha = alpha.resize(out.size, Image.Resampling.BICUBIC)
    out.putalpha(alpha)  # 'L' -> 'LA', 'RGB' -> 'RGBA'
    return out


def _key(path: Path) -> str:
    """Case-insensitive identity of a relative output path."""
    return path.as_posix().casefold()


def plan_outputs(files: Sequence[Path], root: Path | None) -> list[Path]:
    """Unique relative ``.png`` output paths for ``files`` (relative to ``root``, a folder,
    or just the file name when ``root`` is ``None``).

    ``a.jpg`` becomes ``a.png`` when no other input maps there. Inputs that would share a
    name (``a.jpg`` and ``a.png``, also differing only in case) keep their extension:
    ``a_jpg.png`` and ``a_png.png``; if that name is taken too, ``a_jpg_2.png``, ...
    Depends on the file names only, so a rerun gives the same names.
    """
    rels = [f.relative_to(root) if root is not None else Path(f.name) for f in files]
    plain = [r.with_suffix(".png") for r in rels]
    counts: dict[str, int] = {}
    for p in plain:
        counts[_key(p)] = counts.get(_key(p), 0) + 1
    taken = {_key(p) for p in plain if counts[_key(p)] == 1}
    out: list[Path] = []
    for rel, p in zip(rels, plain):
        if counts[_key(p)] == 1:
            out.append(p)
            continue
        base, n = f"{rel.stem}_{rel.suffix[1:]}", 1
        name = p.with_name(f"{base}.png")
        while _key(name) in taken:
            n += 1
            name = p.with_name(f"{base}_{n}.png")
        taken.add(_key(name))
        out.append(name)
    return out


def _same(a: Path, b: Path) -> bool:
    """``a`` and ``b`` are the same existing file or folder (links, case-insensitive file
    systems), or the same path once resolved."""
    try:
        if a.exists() and b.exists() and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies under it (following links)."""
    p = path.resolve()
    return any(_same(q, folder) for q in (p, *p.parents))


def check_output_folder(out_dir: Path, src: Path) -> None:
    """Refuse an output folder that is a folder input or lies inside it.

    Raises:
        OutputError: naming another ``output=`` as the fix.
    """
    if src.is_dir() and _inside(out_dir, src):
        where = "is the input folder" if _same(out_dir, src) else "is inside the input folder"
        raise OutputError(
            f"output '{out_dir}' {where} '{src}': restored images would be mixed with (or "
            f"overwrite) your originals. Choose another folder, e.g. "
            f"output={src.resolve().parent / (src.resolve().name + '_restored')}"
        )


def _identity(path: Path) -> tuple[int, int] | None:
    """``(device, inode)`` of an existing file (one file under any name or link)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def check_destinations(
    files: Sequence[Path], dsts: Sequence[Path], out_dir: Path, overwrite: bool
) -> None:
    """Check every destination before anything is written.

    Never an input file (whatever ``overwrite`` says: compared as files, so links and
    case-insensitive file systems are caught), never a folder, and no file that already
    exists unless ``overwrite``.

    Raises:
        OutputError: naming ``output=`` (and ``overwrite=true`` for existing files).
    """
    existing = [(f, d) for f, d in zip(files, dsts) if d.exists() or d.is_symlink()]
    if not existing:
        return
    inputs = {_identity(f): f for f in files}
    for f, d in existing:
        ident = _identity(d)
        same = inputs.get(ident) if ident else None
        if same is not None:
            raise OutputError(
                f"restoring '{f}' would write '{d}', over the input '{same}': choose "
                "another output=<folder> (inputs are never overwritten, even with overwrite=true)"
            )
        if d.is_dir():
            raise OutputError(
                f"'{d}' is a folder, where the restored '{f.name}' would be written: "
                "choose another output=<folder>"
            )
    if not overwrite:
        names = ", ".join(str(d.relative_to(out_dir)) for _, d in existing[:5])
        more = f" and {len(existing) - 5} more" if len(existing) > 5 else ""
        raise OutputError(
            f"{len(existing)} output file(s) already exist in '{out_dir}' ({names}{more}): "
            "pass overwrite=true to replace them, or choose another output=<folder>"
        )
