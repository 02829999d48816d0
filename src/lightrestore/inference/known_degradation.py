"""The known degradation of the user's images in ``lightrestore.restore``.

* ``mask=<image or folder>``: the missing pixels of each input (inpainting, pixel
  interpolation): an image of the input's size, non-zero (white) where a pixel is missing.
  A folder holds one mask per input, found by the input's relative path without its
  extension (``a.jpg`` -> ``<folder>/a.png``, any image extension); a single file serves
  every input. The missing pixels are set to the task's fill colour before the network
  sees them (what it was trained on), and DL-Net's likelihood takes the mask as ``W``
  (:data:`lightrestore.methods.likelihood.OBSERVED`).
* ``blur_width=<u>``: the Gaussian blur width of super-resolution with blur (tasks
  ``srblur_x*``), within the checkpoint's ladder; DL-Net's likelihood then uses the task's
  forward model with ``{"severity": u, "sigma": u}``.

The mask travels as an extra uint8 channel of the image (255 = missing), so tiles of
fixed-size models cut the mask with their pixels; :meth:`Known.restorer` splits it off
again before the method runs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import Tensor

from lightrestore.data.images import has_image_extension
from lightrestore.errors import ConfigError, DataError

_DEEP_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
_ORIENTATION = 0x0112
_SWAPS_SIDES = frozenset({5, 6, 7, 8})  # EXIF orientations that turn the image by 90°


@dataclass
class Known:
    """What is known about the degradation of every input.

    Attributes:
        masks: input file -> its mask file (``mask=``), or ``None``.
        blur_width: the blur width ``u`` (``blur_width=``), or ``None``.
        fill: the task's fill (:class:`lightrestore.degradations.inpaint.Fill`) missing
            pixels are set to, or ``None``.
    """

    masks: dict[Path, Path] | None = None
    blur_width: float | None = None
    fill: Any = None
    _cached: tuple[Path, Tensor] | None = field(default=None, repr=False)

    def model_input(self, f: Path, pixels: Tensor, name: str) -> Tensor:
        """``pixels`` uint8 ``(C, H, W)`` of input ``f``, with its mask appended as channel
        ``C`` (255 = missing) when there are masks.

        Raises:
            DataError: the mask cannot be read, or its size differs from the image's.
        """
        if self.masks is None:
            return pixels
        path = self.masks[f]
        if self._cached is None or self._cached[0] != path:
            self._cached = (path, read_mask(path))
        mask = self._cached[1]
        if mask.shape[-2:] != pixels.shape[-2:]:
            raise _size_error(path, mask.shape[-2:], name, pixels.shape[-2:])
        return torch.cat([pixels, mask.to(pixels.device)])

    def restorer(self, method: Any) -> Callable[[Tensor], Tensor]:
        """``x -> method.restore(batch)`` with the known parameters: ``x`` ``(N, C(+1), h, w)``
        in [0, 1], its last channel the mask when there are masks."""
        from lightrestore.data.batch import RestorationBatch
        from lightrestore.methods.likelihood import OBSERVED

        def restore(x: Tensor) -> Tensor:
            params: dict[str, Tensor] = {}
            if self.masks is not None:
                x, missing = x[:, :-1], x[:, -1:] > 0.5
                if self.fill is not None:
                    x = torch.where(missing, self.fill.tensor(x.shape[1], x.device, x.dtype), x)
                params[OBSERVED] = (~missing).to(x.dtype)
            if self.blur_width is not None:
                u = torch.full((x.shape[0],), self.blur_width, device=x.device, dtype=x.dtype)
                params["severity"] = params["sigma"] = u
            return method.restore(RestorationBatch.of_degraded(x, params))

        return restore


def _task_name(method: Any) -> str:
    cfg = getattr(method, "run_config", None) or {}
    try:
        return str(cfg["task"]["name"])
    except (KeyError, TypeError):
        return str(getattr(getattr(method, "degradation", None), "name", "unknown"))


def _blur_width(value: Any, degradation: Any, task: str) -> float:
    from lightrestore.degradations.resize import Resize

    if not isinstance(degradation, Resize):
        raise ConfigError(
            f"blur_width={value} is the blur width of super-resolution with blur (tasks "
            f"srblur_x2/x3/x4), but this checkpoint's task is '{task}': remove blur_width="
        )
    bins = degradation.ladder.all_bins()
    lo, hi = min(b[0] for b in bins), max(b[1] for b in bins)
    try:
        u = float(value)
        ok = not isinstance(value, bool) and math.isfinite(u)
    except (TypeError, ValueError):
        ok = False
    if ok:
        try:
            degradation.ladder.level_of(u)
        except ValueError:
            ok = False
    if not ok:
        raise ConfigError(
            f"blur_width={value} lies outside the blur widths this checkpoint was trained for "
            f"({lo:g}..{hi:g} px, task '{task}'): give blur_width=<a width in {lo:g}..{hi:g}>"
        )
    return u


def known_degradation(
    cfg: Any, method: Any, files: Sequence[Path], src: Path
) -> tuple[Known | None, list[Path]]:
    """Validate ``mask=`` / ``blur_width=`` against the checkpoint's task and find every
    input's mask; returns the :class:`Known` (``None`` without either option) and the
    inputs, less the masks themselves when they lie in the input folder.

    Raises:
        ConfigError: an option the checkpoint's task has no use for, a blur width outside
            its ladder, a mask folder that is the input folder.
        DataError: a missing mask or mask folder, or a mask whose size differs from its
            image's.
    """
    mask, blur = cfg.get("mask"), cfg.get("blur_width")
    files = list(files)
    if mask is None and blur is None:
        return None, files
    degradation = getattr(method, "degradation", None)
    task = _task_name(method)
    known = Known()
    if blur is not None:
        known.blur_width = _blur_width(blur, degradation, task)
    if mask is not None:
        if not hasattr(degradation, "observed_mask"):
            raise ConfigError(
                f"mask={mask} marks missing pixels for inpainting and interpolation "
                f"checkpoints (tasks inpaint, interp), but this checkpoint's task is "
                f"'{task}': remove mask="
            )
        path = Path(str(mask)).expanduser()
        files = _without_masks(files, path, src)
        if not files:
            raise DataError(f"no image files in '{src}' besides the masks in '{path}'")
        known.masks = mask_files(path, files, src if src.is_dir() else None)
        known.fill = getattr(degradation, "fill", None)
        check_mask_sizes(known.masks, src if src.is_dir() else None)
    return known, files


def _without_masks(files: list[Path], mask: Path, src: Path) -> list[Path]:
    """The inputs that are not masks: a mask folder inside the input folder (or the mask
    file) holds masks, not images to restore."""
    if not mask.exists():
        raise DataError(
            f"mask '{mask}' does not exist: give mask=<a mask image (white = missing)>, or "
            "mask=<a folder with one mask per input, named like it>"
        )
    m = mask.resolve()
    if src.is_dir() and mask.is_dir() and m == src.resolve():
        raise ConfigError(
            f"mask={mask} is the input folder: put the masks in a folder of their own "
            "(named like the inputs, e.g. a.jpg -> masks/a.png) and give mask=<that folder>"
        )
    if mask.is_dir():
        return [f for f in files if m not in f.resolve().parents]
    return [f for f in files if f.resolve() != m]


def mask_files(mask: Path, files: Sequence[Path], root: Path | None) -> dict[Path, Path]:
    """Every input's mask: ``mask`` itself when it is a file, else the image in the folder
    ``mask`` with the input's relative path (``root``: the input folder, ``None`` for a
    single input: its name) and any image extension.

    Raises:
        DataError: an input without a mask (named), or with several.
    """
    if mask.is_file():
        return {f: mask for f in files}
    found: dict[str, list[Path]] = {}
    for p in sorted(mask.rglob("*")):
        if p.is_file() and has_image_extension(p):
            found.setdefault(p.relative_to(mask).with_suffix("").as_posix(), []).append(p)
    out: dict[Path, Path] = {}
    missing: list[str] = []
    for f in files:
        rel = f.relative_to(root) if root is not None else Path(f.name)
        hits = found.get(rel.with_suffix("").as_posix(), [])
        if len(hits) > 1:
            names = ", ".join(str(h.relative_to(mask)) for h in hits)
            raise DataError(
                f"'{rel}' has {len(hits)} masks in '{mask}' ({names}): keep one of them"
            )
        if hits:
            out[f] = hits[0]
        else:
            missing.append(str(rel))
    if missing:
        names = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if missing[5:] else "")
        example = Path(missing[0]).with_suffix(".png")
        raise DataError(
            f"no mask for {len(missing)} input(s) in '{mask}': {names}. Give each input a "
            f"mask named like it, any image extension (e.g. {mask / example}), or one mask "
            "file for every input"
        )
    return out


def _size_error(mask: Path, mask_hw: Sequence[int], name: str, hw: Sequence[int]) -> DataError:
    return DataError(
        f"mask '{mask}' is {mask_hw[1]}x{mask_hw[0]} pixels but its image '{name}' is "
        f"{hw[1]}x{hw[0]}: give a mask of the image's size (white = missing)"
    )


def _oriented_size(path: Path) -> tuple[int, int] | None:
    """``(H, W)`` of an image as viewers show it (EXIF orientation), from its header only;
    ``None`` when it cannot be opened."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            turned = img.getexif().get(_ORIENTATION) in _SWAPS_SIDES
    except Exception:  # unreadable inputs are reported (or skipped) when restored
        return None
    return (w, h) if turned else (h, w)


def check_mask_sizes(masks: dict[Path, Path], root: Path | None) -> None:
    """Compare every input's size with its mask's before anything is restored (headers
    only; the restore checks the decoded sizes again).

    Raises:
        DataError: a mask of another size (both sizes named), or an unreadable mask.
    """
    sizes: dict[Path, tuple[int, int]] = {}
    for f, m in masks.items():
        if m not in sizes:
            size = _oriented_size(m)
            if size is None:
                read_mask(m)  # raises, naming the mask
            sizes[m] = size  # type: ignore[assignment]
        hw = _oriented_size(f)
        if hw is not None and hw != sizes[m]:
            raise _size_error(m, sizes[m], str(f.relative_to(root)) if root else f.name, hw)


def read_mask(path: Path) -> Tensor:
    """uint8 ``(1, H, W)``: 255 where the mask is non-zero (missing), else 0; oriented by
    its EXIF tag like the inputs. Colour masks count a pixel missing when any channel is
    non-zero; transparency is ignored.

    Raises:
        DataError: the file cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            if img.mode in _DEEP_MODES:
                missing = np.asarray(img) != 0
            else:
                missing = np.asarray(img.convert("RGB")).any(axis=-1)
    except Exception as e:  # any decoder failure is a problem with this file
        raise DataError(
            f"mask '{path}' is not an image lightrestore can read ({type(e).__name__}: "
            f"{str(e)[:200]}): give a PNG (white = missing)"
        ) from None
    return torch.from_numpy(missing.astype(np.uint8) * 255)[None]
