"""Clean / corrupted / restored examples per level, saved as PNG and sent to wandb."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from PIL import Image
from torch import Tensor


def make_grid(rows: list[list[Tensor]], pad: int = 2, value: float = 1.0) -> Tensor:
    """Tile images into a grid.

    Args:
        rows: rows of ``(C, H, W)`` images in [0, 1] (all the same size).
    Returns:
        ``(C, R·(H+pad)+pad, K·(W+pad)+pad)`` in [0, 1].
    """
    c, h, w = rows[0][0].shape
    k = max(len(r) for r in rows)
    out = torch.full((c, len(rows) * (h + pad) + pad, k * (w + pad) + pad), value)
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[:, y : y + h, x : x + w] = img.detach().float().cpu().clamp(0, 1)
    return out


def to_pil(img: Tensor) -> Image.Image:
    arr = (img.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


class ValidationImageGrid(Callback):
    """After each validation: one row per level of ``k`` groups (clean, corrupted, restored;
    for inpainting and interpolation also the restoration with the known pixels put back).

    Args:
        output_dir: run folder; grids go to ``images/val_epoch_XXXX.png``.
        k: examples per level.
        every_n_epochs: how often.
    """

    def __init__(self, output_dir: str, k: int = 3, every_n_epochs: int = 1) -> None:
        self.dir = Path(output_dir) / "images"
        self.k = k
        self.every = max(1, every_n_epochs)

    @torch.no_grad()
    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if (
            trainer.sanity_checking
            or not trainer.is_global_zero
            or not hasattr(pl_module, "restore")
            or trainer.current_epoch % self.every
        ):
            return
        val_set = getattr(trainer.datamodule, "val_set", None)
        if val_set is None:
            return
        rows, with_known = [], False
        missing_region = getattr(pl_module, "missing_region", None)
        for _level, batch in val_set.examples(self.k).items():
            batch = batch.to(pl_module.device)
            restored = pl_module.restore(batch).float()
            region = missing_region(batch) if callable(missing_region) else None
            # inpainting / interpolation: also the restoration with the known pixels put back
            known = [None] * len(restored) if region is None else torch.lerp(batch.degraded, restored, region).cpu()
            with_known = region is not None
            row = []
            for c, d, r, k in zip(batch.clean.cpu(), batch.degraded.cpu(), restored.cpu(), known):
                if d.shape != c.shape:  # super-resolution: show the LR input at HR size
                    d = F.interpolate(d[None], size=c.shape[-2:], mode="nearest")[0]
                row += [c, d, r] if k is None else [c, d, r, k]
            rows.append(row)
        grid = make_grid(rows)
        self.dir.mkdir(parents=True, exist_ok=True)
        image = to_pil(grid)
        image.save(self.dir / f"val_epoch_{trainer.current_epoch:04d}.png")
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image(
                    key="val/examples",
                    images=[np.asarray(image)],
                    caption=["rows: levels; columns: clean | corrupted | restored"
                             + (" | restored, known pixels put back" if with_known else "")],
                    step=trainer.global_step,
                )
