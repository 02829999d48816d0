"""Reading a pretrained-weights file the user names (VGG for the perceptual loss, LPIPS's
backbones and linear layers), with errors that name the file and what was expected."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lightrestore.errors import ConfigError


def read_state_file(file: Path, what: str, expected: str) -> Any:
    """``torch.load(file, weights_only=True)`` onto the CPU; a file it cannot read (not a
    torch file, truncated, pickled objects) is a :class:`ConfigError` naming ``what`` (the
    config key or the weights' name) and the ``expected`` file."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ConfigError(
            f"{what}: cannot read {file} ({type(e).__name__}: {str(e)[:200]}); expected {expected}, "
            "a state dict saved with torch.save"
        ) from e


def few(items: list[str], n: int = 5) -> str:
    """The first ``n`` of ``items`` for an error message, and how many there are."""
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")
