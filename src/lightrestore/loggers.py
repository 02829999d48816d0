"""Logger factories. CSV always; wandb as the dashboard, offline unless credentials exist."""

from __future__ import annotations

import logging
import netrc
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_has_credentials() -> bool:
    """True when wandb could log in without asking: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        auth = netrc.netrc(str(path)).authenticators(
            os.environ.get("WANDB_BASE_URL", "api.wandb.ai").split("//")[-1]
        )
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def resolve_wandb_mode(mode: str = "auto") -> str:
    """The wandb mode to use.

    ``WANDB_MODE`` in the environment always wins; ``auto`` means ``online`` when
    credentials exist and ``offline`` otherwise (never a prompt, never a hang
    without network). Sync an offline run later with ``wandb sync <run>/wandb/offline-run-*``.
    """
    env = os.environ.get("WANDB_MODE")
    if env:
        return "offline" if env == "dryrun" else env
    if mode not in WANDB_MODES:
        raise ValueError(f"logger wandb mode must be one of {WANDB_MODES}, got {mode!r}")
    if mode == "auto":
        return "online" if wandb_has_credentials() else "offline"
    return mode


def wandb_logger(save_dir: str, project: str = "lightrestore", mode: str = "auto", **kwargs: Any):
    """A Lightning ``WandbLogger`` in the resolved mode, writing under ``save_dir``."""
    from lightning.pytorch.loggers import WandbLogger

    resolved = resolve_wandb_mode(mode)
    os.environ["WANDB_MODE"] = resolved  # also for DDP child processes
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    log.info("wandb mode: %s", resolved)
    return WandbLogger(
        save_dir=save_dir, project=project, offline=resolved == "offline", mode=resolved, **kwargs
    )
