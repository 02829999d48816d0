"""Test helpers: compose configs the way the CLI does; run the CLI in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch import Callback
from omegaconf import DictConfig, open_dict
from PIL import Image

from lightrestore.config import config_dir, register_resolvers

register_resolvers()
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")

REPO = Path(__file__).resolve().parents[1]


def compose_cfg(
    tmp_path: Path, *overrides: str, smoke: bool = True, config_name: str = "train"
) -> DictConfig:
    """Compose ``<config_name>.yaml`` (with ``debug=smoke``), the run folder in ``tmp_path``."""
    GlobalHydra.instance().clear()
    base = ["debug=smoke"] if smoke else []
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=[*base, *overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = str(tmp_path)
        cfg.paths.log_dir = str(tmp_path / "logs")
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
    HydraConfig.instance().set_config(cfg)
    return cfg


def run_cli(
    *args: str, cwd: Path, timeout: int = 300, module: str = "lightrestore", **kwargs
) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` in a subprocess (offline wandb, CPU; the tests folder
    on PYTHONPATH so configs can name test helpers such as ``helpers.IdentityModel``);
    ``kwargs`` go to ``subprocess.run``."""
    path = os.pathsep.join(p for p in (str(REPO / "tests"), os.environ.get("PYTHONPATH")) if p)
    env = dict(
        os.environ, WANDB_MODE="offline", WANDB_SILENT="true", PYTHONUNBUFFERED="1", PYTHONPATH=path
    )
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


class IdentityModel(torch.nn.Module):
    """A "restoration" that returns its input (one frozen-by-lr=0 scale parameter):
    its per-level PSNR is the degraded input's, which tests can compute independently."""

    def __init__(self, **_: object) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class RankDump(Callback):
    """Test callback: at the end of each epoch (after its validation and the policy's
    update) every rank writes what it holds (sampler weights, validation PSNR per level)
    to ``<out>/rank<r>_epoch<e>.json``."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        doc = {
            "weights": trainer.datamodule.sampler.weights.tolist(),
            "psnr": {str(k): v["psnr"] for k, v in pl_module.val_results.items()},
            "count": {str(k): v["count"] for k, v in pl_module.val_results.items()},
        }
        name = f"rank{trainer.global_rank}_epoch{trainer.current_epoch}.json"
        (self.out / name).write_text(json.dumps(doc))


class InterruptAt(Callback):
    """Test callback: sends this process SIGTERM after training step ``step`` (what a
    cluster pre-emption does). Lightning finishes the step and stops."""

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


class NaNAfter(torch.nn.Module):
    """Test model: an identity with one parameter whose output turns NaN from training
    call ``after`` on (a diverging run)."""

    def __init__(self, after: int = 3, **_: object) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.after = after
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                return x * self.scale * float("nan")
        return x * self.scale


class SlurmSignalAt(Callback):
    """Test callback: in the middle of training step ``step`` (after the batch was
    corrupted and the forward pass ran, before the backward pass) sends this process
    SLURM's requeue signal (SIGUSR1), then stops the process at the end of the step as
    SLURM's kill would. Needs the SLURM environment variables that make Lightning detect
    SLURM (see ``SLURM_ENV``)."""

    def __init__(self, step: int) -> None:
        self.step = int(step)

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGUSR1)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step + 1:
            raise KeyboardInterrupt


#: what SLURM sets for a one-task job (makes Lightning use SLURMEnvironment)
SLURM_ENV = {
    "SLURM_NTASKS": "1", "SLURM_JOB_NAME": "train", "SLURM_JOB_ID": "12345",
    "SLURM_NODELIST": "localhost", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0",
}  # fmt: skip


class SigintAt(Callback):
    """Test callback: in the middle of training step ``step`` (after the forward pass,
    before the backward pass) sends this process SIGINT, what Ctrl-C does; ``times=2``
    sends it twice (a second Ctrl-C)."""

    def __init__(self, step: int, times: int = 1) -> None:
        self.step, self.times = int(step), int(times)

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        if trainer.global_step == self.step:
            for _ in range(self.times):
                os.kill(os.getpid(), signal.SIGINT)


class WarnAtFitStart(Callback):
    """Test callback: raises a Python warning with ``text`` when training starts."""

    def __init__(self, text: str) -> None:
        self.text = text

    def on_train_start(self, trainer, pl_module) -> None:
        import warnings

        warnings.warn(self.text, UserWarning, stacklevel=1)


def make_gopro(root, sequences=("train/a", "train/b", "train/c", "test/d"), n=2, h=40, w=48):
    """A GoPro-shaped folder: sharp images of random noise, blur = 255 - sharp (so the
    pairing and the alignment of crops can be checked exactly)."""
    rng = np.random.default_rng(0)
    for seq in sequences:
        for i in range(n):
            sharp = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for sub, img in (("sharp", sharp), ("blur", 255 - sharp)):
                folder = root / seq / sub
                folder.mkdir(parents=True, exist_ok=True)
                Image.fromarray(img).save(folder / f"{i:06d}.png")
    return root
