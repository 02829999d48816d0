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
    logger = WandbLogger(
        save_dir=save_dir, project=project, offline=resolved == "offline", mode=resolved, **kwargs
    )
    # Lightning passes anonymous=None to wandb.init, which wandb >= 0.19 answers with a
    # deprecation warning on every run; leave the setting out unless the caller gave it.
    if "anonymous" not in kwargs:
        getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def csv_logger(save_dir: str, name: str = "csv", version: str = ""):
    """A Lightning ``CSVLogger`` writing ``<save_dir>/<name>/<version>/metrics.csv``.

    Lightning's CSV logger deletes an existing ``metrics.csv`` in its folder. That folder
    exists when a SLURM-requeued job continues its own run: the earlier job's folder is
    kept as ``<name>_part<k>`` (k = 1, 2, ...) first, so no logged value is lost.
    """
    from lightning.pytorch.loggers import CSVLogger

    from lightrestore.config import process_rank

    folder = Path(save_dir) / name
    if process_rank() == 0 and folder.is_dir() and any(folder.iterdir()):
        k = 1
        while (Path(save_dir) / f"{name}_part{k}").exists():
            k += 1
        folder.rename(Path(save_dir) / f"{name}_part{k}")
        log.info("continuing a run: its earlier CSV logs are kept in %s_part%d", folder, k)
    return CSVLogger(save_dir=save_dir, name=name, version=version)
