"""Where the Hydra configs live, and the OmegaConf resolvers they use."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def config_dir() -> Path:
    """The ``conf/`` folder: inside the installed package (wheel) or the source tree (editable)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parents[1] / "conf"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"lightrestore's config folder was not found next to {here}: reinstall the package "
        "(pip install -e . from the repository, or the wheel, which ships lightrestore/conf)"
    )


def process_rank() -> int:
    """This process's rank as launchers set it (torchrun/Lightning: RANK, LOCAL_RANK;
    SLURM: SLURM_PROCID); 0 when none is set."""
    for var in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(var)
        if value not in (None, "", "0"):
            try:
                return int(value)
            except ValueError:
                continue
    return 0


def register_resolvers() -> None:
    """``${pid:}`` (process id, for unique run folders), ``${mul:a,b}`` (a product) and
    ``${rank_zero_file:path}`` (the path on rank 0, ``os.devnull`` elsewhere: only rank 0
    writes the log file)."""
    if not OmegaConf.has_resolver("pid"):
        OmegaConf.register_new_resolver("pid", lambda: os.getpid(), use_cache=True)
    if not OmegaConf.has_resolver("mul"):  # e.g. crop_size: ${mul:48,${task.scale}}
        OmegaConf.register_new_resolver("mul", lambda a, b: a * b)
    if not OmegaConf.has_resolver("rank_zero_file"):
        OmegaConf.register_new_resolver(
            "rank_zero_file", lambda path: path if process_rank() == 0 else os.devnull
        )
