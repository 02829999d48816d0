"""``python -m lightrestore.restore ckpt=<path> input=<image|folder> [output=<folder>]``.

Restores real degraded images with a trained checkpoint and writes PNGs (same names,
``.png``). The model is rebuilt from the config stored in the checkpoint. Models with a
fixed input size (``image_size``, e.g. ODL's autoencoder) run on overlapping tiles
(``tile_stride``) whose overlaps are averaged; others see the whole image.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightrestore.cli.app import report_user_errors, run_app
from lightrestore.config import register_resolvers
from lightrestore.errors import DataError

register_resolvers()


def _inputs(path: Path) -> list[Path]:
    from lightrestore.data.images import has_image_extension

    if not path.exists():
        raise DataError(f"input '{path}' does not exist: give an image file or a folder of images")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and has_image_extension(p))
        if not files:
            raise DataError(f"no image files (png, jpg, bmp, tif, webp, ppm, pgm) in '{path}'")
        return files
    return [path]


def run_restore(cfg: Any) -> list[Path]:
    """Restore every input image; returns the written files."""
    import numpy as np
    import torch
    from omegaconf import OmegaConf
    from PIL import Image

    from lightrestore.checkpoints import check_method, load_checkpoint, load_weights
    from lightrestore.cli.train import instantiate
    from lightrestore.data.images import load_image
    from lightrestore.tiling import restore_tiled

    ckpt_path = Path(str(cfg.ckpt)).expanduser()
    ckpt = load_checkpoint(ckpt_path)
    check_method(ckpt, cfg.get("expect_method"), ckpt_path)
    train_cfg = OmegaConf.create(ckpt["lightrestore"]["config"])
    model = instantiate(train_cfg.model)
    # the checkpoint holds the method's state: take the model's part
    prefix = "model."
    weights = {k[len(prefix) :]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    load_weights(model, {"state_dict": weights, "lightrestore": ckpt["lightrestore"]}, ckpt_path)
    device = cfg.get("device", "auto")
    device = torch.device(
        "cuda"
        if device == "auto" and torch.cuda.is_available()
        else ("cpu" if device == "auto" else device)
    )
    model.to(device).eval()
    channels = int(getattr(model, "channels", train_cfg.task.channels))
    tile = getattr(model, "image_size", None)
    out_dir = (
        Path(str(cfg.output)) if cfg.get("output") else Path(str(cfg.paths.output_dir)) / "restored"
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    src = Path(str(cfg.input)).expanduser()
    written = []
    with torch.inference_mode():
        for f in _inputs(src):
            try:
                img = load_image(f, channels).float().div(255).to(device)
            except DataError as e:
                reason = f"{type(e.__cause__).__name__}: {e.__cause__}" if e.__cause__ else str(e)
                raise DataError(
                    f"'{f}' is not an image lightrestore can read ({reason[:200]}): give an image "
                    "file (png, jpg, bmp, tif, webp, ppm, pgm) or a folder of them"
                ) from None
            if tile:
                out = restore_tiled(
                    model, img, int(tile), int(cfg.tile_stride), int(cfg.batch_size)
                )
            else:
                out = model(img[None])[0]
            arr = (out.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
            rel = f.relative_to(src) if src.is_dir() else Path(f.name)
            dst = (out_dir / rel).with_suffix(".png")
            dst.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else np.ascontiguousarray(arr)).save(
                dst
            )
            written.append(dst)
    print(f"restored {len(written)} image(s) into {out_dir}")
    return written


def _main(cfg: Any) -> None:
    report_user_errors("lightrestore.restore", run_restore, cfg)


def main() -> None:
    run_app("restore", _main)


if __name__ == "__main__":
    main()
