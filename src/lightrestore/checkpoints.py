"""Loading lightrestore checkpoints safely (``weights_only=True``) with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lightrestore.errors import UserError


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, or not what the command needs."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Lightning checkpoint written by lightrestore (tensors and plain containers).

    Raises :class:`CheckpointError` when the file is missing, is not a torch
    checkpoint, or was not written by lightrestore (no ``"lightrestore"`` record).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint '{path}' does not exist: give the path of a .ckpt file "
            "(e.g. logs/<experiment>/runs/<run>/checkpoints/last.ckpt)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated zip archives, foreign objects
        raise CheckpointError(
            f"cannot read checkpoint '{path}' ({type(e).__name__}: {str(e)[:200]}): "
            "is it a .ckpt written by lightrestore, and complete?"
        ) from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"'{path}' is not a Lightning checkpoint (no state_dict)")
    info = ckpt.get("lightrestore")
    if not isinstance(info, dict) or not info.get("config"):
        raise CheckpointError(
            f"'{path}' was not written by lightrestore (it has no 'lightrestore' record with the "
            "run's config), so its model cannot be rebuilt: use a checkpoint from a "
            "lightrestore run folder"
        )
    return ckpt


def check_method(ckpt: dict[str, Any], expected: str | None, path: str | Path = "") -> None:
    """Raise :class:`CheckpointError` unless the checkpoint's method is ``expected``."""
    info = ckpt["lightrestore"]
    if expected is not None and info.get("method") != expected:
        raise CheckpointError(
            f"checkpoint {path} comes from method '{info.get('method')}' "
            f"(model {info.get('model')}), not '{expected}': pass a checkpoint of a "
            f"'{expected}' run, or drop the method expectation"
        )


def load_weights(module: torch.nn.Module, ckpt: dict[str, Any], path: str | Path = "") -> None:
    """Load ``ckpt["state_dict"]`` into ``module`` strictly, with a readable mismatch error."""
    info = ckpt["lightrestore"]
    try:
        result = module.load_state_dict(ckpt["state_dict"], strict=False)
    except RuntimeError as e:  # shape mismatches
        raise CheckpointError(
            f"checkpoint {path} (method '{info.get('method')}', model {info.get('model')}) does not "
            f"fit this {type(module).__name__}: {str(e).splitlines()[0][:300]}"
        ) from e
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} (method '{info.get('method')}', model {info.get('model')}) does not "
            f"fit this {type(module).__name__}: {len(missing)} missing keys (e.g. {missing[:3]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:3]}). Evaluate it with the model it "
            "was trained with"
        )
