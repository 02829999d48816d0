"""Atomic checkpoint writes: a crash mid-write never leaves a truncated ``.ckpt``."""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lightrestore.utils.io import atomic_write


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes the checkpoint to a temporary file in the target folder, flushes it to disk
    and renames it over the target (see :func:`lightrestore.utils.io.atomic_write`)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not support storage_options")
        atomic_write(path, lambda f: torch.save(checkpoint, f), binary=True)
