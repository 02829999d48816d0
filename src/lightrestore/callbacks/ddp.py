"""Clean shutdown of torch.distributed (avoids gloo's abort at interpreter exit)."""

from __future__ import annotations

import atexit

import torch.distributed as dist
from lightning.pytorch import Callback, LightningModule, Trainer


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DestroyProcessGroupAtExit(Callback):
    """Registers ``destroy_process_group`` with ``atexit`` once a process group exists.

    On CPU (gloo) a DDP run otherwise aborts at exit in about a third of runs
    ("terminate called without an active exception"); see LIBRARY-NOTES.md.
    """

    _registered = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not DestroyProcessGroupAtExit._registered:
            atexit.register(_destroy)
            DestroyProcessGroupAtExit._registered = True
