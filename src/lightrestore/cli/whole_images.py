"""Whole images corrupted at given severities and restored on sliding windows: ODL's
denoising table (Table 3: standard test images, AWGN σ, 64×64 windows, overlaps averaged).

    python -m lightrestore.evaluate ckpt=<denoise run>/checkpoints/last.ckpt \
        whole_images=<folder of images> severities=[10,30,50] tile_stride=3

Every image of the folder (decoded like ``restore``: EXIF orientation, grey/colour to the
model's channels) is corrupted once per severity with the task's degradation at that fixed
severity (seeded by ``seed``, the image's position and the severity), restored by the
method — on overlapping windows of its input size averaged (``tile_stride``, the authors'
demo used 3), or whole for models without a fixed size — and scored with the whole-image
PSNR / SSIM (data range 1). Writes ``whole_images.{json,md,csv}``: one row per image and
severity, then the mean per severity.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from lightrestore.errors import ConfigError

log = logging.getLogger("lightrestore")


def whole_image_seed(seed: int, image: int, severity: int) -> int:
    """The corruption seed of image number ``image`` at severity number ``severity``."""
    return int(seed) * 1_000_003 + 7919 * int(image) + int(severity)


def corrupt_whole(degradation: Any, image: torch.Tensor, severity: float, seed: int) -> torch.Tensor:
    """``image`` ``(C, H, W)`` in [0, 1] corrupted at the fixed ``severity`` (CPU, seeded):
    ``(C, H, W)`` in [0, 1]."""
    g = torch.Generator().manual_seed(int(seed))
    level = min(degradation.ladder.level_of(float(severity)), max(degradation.ladder.test_levels))
    levels = torch.tensor([level])
    params = degradation.sample(levels, image.shape, g, fixed={"severity": float(severity)})
    return degradation.apply(image[None], params)[0]


def evaluate_whole_images(cfg: Any, method: Any, degradation: Any) -> dict[str, Any]:
    """Score ``method`` on every image of ``cfg.whole_images`` at every ``cfg.severities``;
    writes the tables into ``cfg.paths.output_dir`` and returns the document."""
    from lightrestore.cli.restore import restorer
    from lightrestore.inference.image_files import UnreadableImage, list_inputs, read_source
    from lightrestore.inference.tiling import restore_tiled
    from lightrestore.metrics.image_quality import psnr, ssim
    from lightrestore.reporting.whole_image_tables import write_whole_image_tables

    folder = Path(str(cfg.whole_images)).expanduser()
    severities = [float(s) for s in (cfg.get("severities") or [])]
    if not severities:
        raise ConfigError("whole_images= needs severities=[...] (e.g. severities=[10,30,50] for noise sigma)")
    files = list_inputs(folder)
    spec = method.inference_spec()
    channels = int(spec.get("channels") or cfg.task.channels)
    tile = spec.get("image_size")
    stride = int(cfg.get("tile_stride") or 3)
    if tile and not 1 <= stride <= int(tile):
        raise ConfigError(f"tile_stride={stride} is invalid: give tile_stride=<1..{tile}>")

    fn = restorer(method)
    rows = []
    grad = torch.no_grad() if method.needs_grad_at_eval else torch.inference_mode()
    with grad:
        for i, f in enumerate(files):
            try:
                clean = read_source(f, channels).pixels.float() / 255.0
            except UnreadableImage as e:
                log.warning("skipping %s: %s", f.name, e.reason)
                continue
            for j, sev in enumerate(severities):
                noisy = corrupt_whole(degradation, clean, sev, whole_image_seed(cfg.seed, i, j))
                if tile:
                    restored = restore_tiled(fn, noisy, int(tile), stride)
                else:
                    restored = fn(noisy[None])[0]
                restored = restored.clamp(0, 1)
                rows.append({
                    "image": f.name, "severity": sev, "height": int(clean.shape[-2]),
                    "width": int(clean.shape[-1]),
                    "input_psnr": float(psnr(noisy[None], clean[None])[0]),
                    "psnr": float(psnr(restored[None], clean[None])[0]),
                    "ssim": float(ssim(restored[None], clean[None])[0]),
                })  # fmt: skip
    if not rows:
        raise ConfigError(f"no readable image in '{folder}': give whole_images=<folder of images>")
    protocol = (
        f"whole images corrupted by {type(degradation).__name__} at fixed severities, seeded; "
        + (f"restored on {tile}x{tile} windows with stride {stride}, overlaps averaged; "
           if tile else "restored whole; ")
        + "PSNR/SSIM with data range 1 over all channels, per image"
    )  # fmt: skip
    doc = {"folder": str(folder), "severities": severities, "rows": rows, "protocol": protocol,
           "checkpoint": str(cfg.ckpt), "seed": int(cfg.seed)}  # fmt: skip
    md = write_whole_image_tables(Path(str(cfg.paths.output_dir)), doc)
    log.info("whole images (%s):\n\n%s", Path(str(cfg.paths.output_dir)) / "whole_images.md", md)
    return doc
