"""Checkpoint files that are never truncated and never silently damaged.

Writes are atomic (temporary file, flushed, renamed over the target) and carry an
integrity record (a digest of every tensor and value, see
:mod:`lightrestore.storage.integrity`); loads for resuming training check that record and
refuse model weights holding NaN/Inf (:func:`lightrestore.storage.checkpoints.verify_checkpoint`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lightrestore.storage.atomic import atomic_write
from lightrestore.storage.integrity import append_record, integrity_record


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes the checkpoint to a temporary file in the target folder with its integrity
    record, flushes it to disk and renames it over the target (see
    :func:`lightrestore.storage.atomic.atomic_write`); checks the record when Lightning loads
    a checkpoint to resume (``trainer.fit(ckpt_path=...)``, SLURM requeue)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO does not support storage_options")
        record = integrity_record(checkpoint)  # the dict is read, never changed

        def write(f: Any) -> None:
            torch.save(checkpoint, f)
            append_record(f, record)

        atomic_write(path, write, binary=True)

    def load_checkpoint(
        self,
        path: str | os.PathLike,
        map_location: Callable | None = lambda storage, loc: storage,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Lightning's load, then :func:`lightrestore.storage.checkpoints.verify_checkpoint`:
        raises :class:`~lightrestore.storage.checkpoints.CheckpointError` on an unreadable or
        damaged file or non-finite weights."""
        from lightrestore.storage.checkpoints import unreadable, verify_checkpoint

        try:
            checkpoint = super().load_checkpoint(
                path, map_location=map_location, weights_only=weights_only
            )
        except FileNotFoundError:
            raise
        except Exception as e:  # pickle errors, truncated or damaged zip archives
            raise unreadable(path, e) from e
        verify_checkpoint(checkpoint, path)
        return checkpoint
