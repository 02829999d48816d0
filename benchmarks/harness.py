"""Building lightrestore objects for benchmarks from the real configs (no CLI, no run folder)."""

from __future__ import annotations

import tempfile
from typing import Any


def compose(*overrides: str, config_name: str = "train") -> Any:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from lightrestore.config import config_dir, register_resolvers

    register_resolvers()
    GlobalHydra.instance().clear()
    tmp = tempfile.mkdtemp(prefix="lightrestore_bench_")
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = hydra_compose(config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.output_dir = tmp
        cfg.hydra.runtime.output_dir = tmp
    HydraConfig.instance().set_config(cfg)
    return cfg


def build(*overrides: str) -> dict[str, Any]:
    """``lightrestore.cli.train.build`` on the composed config, CSV logging only."""
    from lightrestore.cli.train import build as build_objects

    return build_objects(compose("logger=csv", "trainer.enable_progress_bar=false", *overrides))
