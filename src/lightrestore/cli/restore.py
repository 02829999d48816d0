"""``python -m lightrestore.restore ckpt=<path> input=<image|folder> [output=<folder>]``.

Restores real degraded images with a trained checkpoint and writes PNGs. The method is
rebuilt from the config stored in the checkpoint (the one builder,
:func:`lightrestore.build.build_from_checkpoint`) and restores through ``method.restore``.

* Inputs are never overwritten: an output folder equal to (or inside) the input folder
  is refused, and no result is ever written over an input file.
* Output names are unique: ``a.jpg`` -> ``a.png``; inputs that would share a name keep
  their extension (``a_jpg.png``, ``a_png.png``). Files already in the output folder are
  replaced only with ``overwrite=true``; every destination is checked before anything is
  written.
* Unreadable files in a folder are skipped with a warning and listed in the summary; a
  single unreadable input file, or a folder where nothing can be read, is an error.
* Images are restored the way viewers show them (EXIF orientation applied); grey inputs
  give grey PNGs, alpha channels are carried through unchanged, a 1-channel model
  restores colour inputs as grey (with a warning), 16-bit inputs give 8-bit outputs.
* Memory: models with a fixed input size (``image_size``, e.g. ODL's autoencoder) run on
  overlapping tiles (``tile_stride``) whose overlaps are averaged, ``batch_size`` tiles
  at a time, in bands (:func:`lightrestore.inference.tiling.restore_tiled`); other models see the
  whole image when it has at most ``whole_image_max_pixels`` pixels, else overlapping
  ``tile_size`` tiles (``tile_overlap`` pixels averaged) with at most that many pixels per
  call. Images stay uint8 in memory; the extra memory does not grow with the height.
* Known degradation (:mod:`lightrestore.inference.known_degradation`): ``mask=`` (the
  missing pixels of inpainting / interpolation inputs: one image, or a folder of masks
  named like the inputs) and ``blur_width=`` (super-resolution with blur) give the method
  the degradation's parameters, so DL-Net runs its likelihood loop on real images. A mask
  travels with its image as an extra channel (tiles cut both) and the missing pixels are
  set to the task's fill colour before the network sees them.
"""

from __future__ import annotations

import logging
import sys
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightrestore.cli.app import report_user_errors, run_app
from lightrestore.config import register_resolvers
from lightrestore.errors import ConfigError, DataError

register_resolvers()
log = logging.getLogger(__name__)

GREY_MODEL_WARNING = "model is greyscale: colour input restored as grey"


# --------------------------------------------------------------------------- settings


def _int_setting(cfg: Any, key: str, lo: int, hi: int | None = None, why: str = "") -> int:
    """``cfg[key]`` as an int in ``lo..hi`` (``hi=None``: no upper bound).

    Raises:
        ConfigError: naming the key and the valid range.
    """
    value = cfg.get(key)
    try:
        n = int(value)
        ok = not isinstance(value, bool) and n == float(value)
    except (TypeError, ValueError):
        ok = False
    if not ok or n < lo or (hi is not None and n > hi):
        valid = f"an integer in {lo}..{hi}" if hi is not None else f"an integer >= {lo}"
        raise ConfigError(f"{key}={value} is invalid: give {key}=<{valid}>{why}")
    return n


def resolve_device(name: Any) -> Any:
    """The ``torch.device`` for ``device=auto|cpu|cuda|cuda:N|mps``.

    Raises:
        ConfigError: an unknown device, or one this machine does not have.
    """
    import torch

    text = str(name).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        dev = None
    if dev is not None and dev.type == "cpu":
        return dev
    if dev is not None and dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device={name} but CUDA is not available on this machine (no GPU, or torch "
                f"{torch.__version__} built without CUDA): use device=cpu or device=auto"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device={name} but this machine has {torch.cuda.device_count()} GPU(s): use "
                f"device=cuda:0 .. cuda:{torch.cuda.device_count() - 1}, or device=auto"
            )
        return dev
    if dev is not None and dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(
                f"device={name} but Apple's MPS is not available: use device=cpu or device=auto"
            )
        return dev
    raise ConfigError(
        f"unknown device '{name}': use device=auto (a GPU when there is one), device=cpu, "
        "device=cuda or device=cuda:<index>"
    )


@dataclass
class Plan:
    """How images are fed to the model (see the module docstring)."""

    tile: int | None  # the model's fixed input side, None for whole-image models
    stride: int  # tile_stride, for fixed-size models
    batch_size: int  # tiles per model call
    scale: int  # output pixels per input pixel
    channels: int  # model channels (1 grey, 3 RGB)
    max_pixels: int  # whole_image_max_pixels
    tile_size: int  # tiles of whole-image models over max_pixels
    overlap: int  # tile_overlap

    def tiling(self, h: int, w: int) -> tuple[int, int, int] | None:
        """``(tile, stride, batch)`` for an ``h``×``w`` image, ``None`` for one whole call."""
        if self.tile is not None:
            return self.tile, self.stride, self.batch_size
        if h * w <= self.max_pixels:
            return None
        per_call = max(1, min(self.batch_size, self.max_pixels // self.tile_size**2))
        return self.tile_size, self.tile_size - self.overlap, per_call


def _settings(cfg: Any) -> dict[str, Any]:
    """Validate the model-independent settings (before the checkpoint is read)."""
    tile_size = _int_setting(cfg, "tile_size", 1, why=" (tile side for whole-image models)")
    overlap = _int_setting(
        cfg, "tile_overlap", 0, tile_size - 1, why=f" (less than tile_size={tile_size})"
    )
    overwrite = cfg.get("overwrite", False)
    if not isinstance(overwrite, bool):
        raise ConfigError(f"overwrite={overwrite} is invalid: give overwrite=true or false")
    return {
        "batch_size": _int_setting(cfg, "batch_size", 1, why=" (tiles per model call)"),
        "max_pixels": _int_setting(cfg, "whole_image_max_pixels", 1),
        "tile_size": tile_size,
        "overlap": overlap,
        "overwrite": overwrite,
        "device": resolve_device(cfg.get("device", "auto")),
    }


# --------------------------------------------------------------------------- model


def _load_method(cfg: Any, device: Any) -> tuple[Any, int]:
    """The checkpoint's method (weights loaded, eval mode, on ``device``) and the number
    of channels its network takes."""
    from lightrestore.build import build_from_checkpoint
    from lightrestore.storage.checkpoints import check_method, load_checkpoint

    ckpt_path = Path(str(cfg.ckpt)).expanduser()
    ckpt = load_checkpoint(ckpt_path)
    check_method(ckpt, cfg.get("expect_method"), ckpt_path)
    method = build_from_checkpoint(ckpt, ckpt_path, weights=str(cfg.get("weights") or "raw"))
    method = method.to(device)
    channels = method.inference_spec().get("channels")
    return method, int(channels or ckpt["lightrestore"]["config"]["task"]["channels"])


def restorer(method: Any, known: Any = None) -> Any:
    """``x -> method.restore(batch of x)``: the whole method, e.g. DL-Net's inner loop;
    with ``known`` (:class:`~lightrestore.inference.known_degradation.Known`) the batch
    carries the known degradation's parameters (``x``'s last channel is then the mask
    when there are masks)."""
    from lightrestore.data.batch import RestorationBatch

    if known is not None:
        return known.restorer(method)
    return lambda x: method.restore(RestorationBatch.of_degraded(x))


def _plan(cfg: Any, method: Any, channels: int, s: dict[str, Any]) -> Plan:
    spec = method.inference_spec()
    tile = spec.get("image_size")
    tile = int(tile) if tile else None
    why = (
        f" (the step between this model's {tile}-pixel tiles; smaller is smoother and slower)"
        if tile
        else ""
    )
    stride = _int_setting(cfg, "tile_stride", 1, tile, why=why)
    return Plan(
        tile, stride, s["batch_size"], int(spec.get("scale") or 1),
        channels, s["max_pixels"], s["tile_size"], s["overlap"],
    )  # fmt: skip


def restore_pixels(model: Any, pixels: Any, plan: Plan, label: str = "") -> Any:
    """Restore one image.

    Args:
        model: ``(N, C, h, w) -> (N, C', h·scale, w·scale)`` in [0, 1].
        pixels: uint8 ``(C, H, W)`` on the model's device (``C`` may exceed the model's
            ``C' = plan.channels`` by a mask channel the model splits off).
        plan: how to feed the model.
        label: name shown on the progress bar (over tile batches, when there are several).

    Returns:
        uint8 ``(C', H·scale, W·scale)`` on the CPU, ``round(clamp(y, 0, 1) · 255)``.
    """
    import torch
    from tqdm import tqdm

    from lightrestore.inference.tiling import restore_tiled, tile_count

    _, h, w = pixels.shape
    tiling = plan.tiling(h, w)
    if tiling is None:
        y = model(pixels.float().div(255)[None])[0]
        return (y.clamp(0, 1) * 255).round().byte().cpu()
    tile, stride, batch = tiling
    out = torch.empty(
        plan.channels, h * plan.scale, w * plan.scale, dtype=torch.uint8, device=pixels.device
    )
    n = tile_count(h, w, tile, stride)
    with tqdm(total=n, desc=label, unit="tile", leave=False, file=sys.stderr, disable=None) as bar:
        restore_tiled(
            model, pixels, tile, stride, batch, scale=plan.scale, out=out,
            progress=bar.update if n > batch else None,
        )  # fmt: skip
    return out.cpu()


# --------------------------------------------------------------------------- run


def _output_dir(cfg: Any) -> Path:
    if cfg.get("output"):
        return Path(str(cfg.output)).expanduser()
    return Path(str(cfg.paths.output_dir)) / "restored"


def _summary(count: int, out_dir: Path, skipped: list[str]) -> str:
    text = f"restored {count} image(s) into {out_dir}"
    if skipped:
        names = ", ".join(skipped[:10]) + (f" and {len(skipped) - 10} more" if skipped[10:] else "")
        text += f"; skipped {len(skipped)} unreadable: {names}"
    return text


def _restore_all(
    method: Any,
    device: Any,
    plan: Plan,
    jobs: list[tuple[Path, Path, str]],
    single: bool,
    known: Any = None,
) -> tuple[list[Path], list[str]]:
    """Restore and write every ``(input, destination, display name)``; returns the
    written files and the display names of the skipped (unreadable) inputs. Runs in
    inference mode, except for methods that need gradients at evaluation (no_grad: they
    enable gradients where they need them). ``known``: the known degradation (masks,
    blur width), or ``None``."""
    import torch
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    from lightrestore.inference.image_files import UnreadableImage, output_image, read_source
    from lightrestore.storage.atomic import atomic_write

    written: list[Path] = []
    skipped: list[str] = []
    warned_grey = False
    model = restorer(method, known)
    grad_free = torch.no_grad() if method.needs_grad_at_eval else torch.inference_mode()
    bar = tqdm(jobs, unit="image", file=sys.stderr, disable=True if single else None)
    with bar, logging_redirect_tqdm() if not bar.disable else nullcontext(), grad_free:
        for f, dst, name in bar:
            try:
                source = read_source(f, plan.channels)
            except UnreadableImage as e:
                if single:
                    raise
                log.warning("skipping %s: not an image lightrestore can read (%s)", name, e.reason)
                skipped.append(name)
                continue
            if plan.channels == 1 and not source.grey and not warned_grey:
                log.warning("%s (first: %s)", GREY_MODEL_WARNING, name)
                warned_grey = True
            if source.deep:
                log.warning("%s has more than 8 bits per sample: written as 8-bit", name)
            pixels = source.pixels if known is None else known.model_input(f, source.pixels, name)
            restored = restore_pixels(model, pixels.to(device), plan, name)
            img = output_image(restored, source)
            atomic_write(dst, lambda fh, img=img: img.save(fh, format="PNG"), binary=True)
            written.append(dst)
    return written, skipped


def run_restore(cfg: Any) -> list[Path]:
    """Restore every input image; returns the written files."""
    from lightrestore.cli.validation import validate
    from lightrestore.inference.image_files import (
        check_destinations,
        check_output_folder,
        list_inputs,
        plan_outputs,
    )
    from lightrestore.inference.known_degradation import known_degradation

    validate(cfg, "restore")  # mandatory ckpt= and input=
    settings = _settings(cfg)
    method, channels = _load_method(cfg, settings["device"])
    plan = _plan(cfg, method, channels, settings)
    src = Path(str(cfg.input)).expanduser()
    known, files = known_degradation(cfg, method, list_inputs(src), src)  # mask=, blur_width=
    out_dir = _output_dir(cfg)
    check_output_folder(out_dir, src)
    root = src if src.is_dir() else None
    rels = plan_outputs(files, root)
    dsts = [out_dir / r for r in rels]
    check_destinations(files, dsts, out_dir, settings["overwrite"])
    names = [str(f.relative_to(src)) if root else f.name for f in files]
    jobs = list(zip(files, dsts, names))
    written, skipped = _restore_all(method, settings["device"], plan, jobs, root is None, known)
    if not written:
        raise DataError(
            f"none of the {len(files)} image file(s) in '{src}' could be read "
            f"({', '.join(skipped[:5])}{' ...' if skipped[5:] else ''}): replace or remove "
            "them, or give another input="
        )
    print(_summary(len(written), out_dir, skipped))
    return written


def _main(cfg: Any) -> None:
    report_user_errors("lightrestore.restore", run_restore, cfg)


def main() -> None:
    run_app("restore", _main)


if __name__ == "__main__":
    main()
