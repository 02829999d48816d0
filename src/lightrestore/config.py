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


def register_resolvers() -> None:
    """``${pid:}`` (process id, for unique run folders) and ``${eval_len:...}`` helpers."""
    if not OmegaConf.has_resolver("pid"):
        OmegaConf.register_new_resolver("pid", lambda: os.getpid(), use_cache=True)
