"""The GPU paths: bf16-mixed training, channels-last and compile, corruption on the device,
a multi-optimiser method, CUDA restore. Marked ``gpu``: skipped on a machine without CUDA
(see conftest.py); ``make test-gpu`` runs only these."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from omegaconf import OmegaConf, open_dict
from PIL import Image
from toy_methods import toy_method_config

from lightrestore.cli.restore import run_restore
from lightrestore.cli.train import run

pytestmark = pytest.mark.gpu
GPU = ("trainer=gpu", "trainer.max_epochs=2", "data.num_workers=0")


def _finite_results(run_dir: Path) -> dict:
    doc = json.loads((run_dir / "results.json").read_text())
    assert doc["levels"] and all(math.isfinite(r["psnr"]) for r in doc["levels"].values())
    return doc


@pytest.mark.parametrize("experiment", ["ondemand_inpaint", "sr_edsr_x2_pspl", "sr_lapsrn_x4"])
def test_bf16_training_on_the_gpu(tmp_path, experiment):
    out = run(compose_cfg(tmp_path, f"experiment={experiment}", *GPU))
    assert out["trainer"].precision == "bf16-mixed"
    assert next(out["method"].parameters()).device.type == "cuda"
    _finite_results(tmp_path / "run")


def test_channels_last_and_compile(tmp_path):
    out = run(compose_cfg(tmp_path, "experiment=ondemand_deblur", *GPU,
                          "method.channels_last=true", "method.compile=true"))  # fmt: skip
    assert out["method"]._compiled is not None
    _finite_results(tmp_path / "run")


def test_corruption_runs_on_the_device(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=ondemand_interp", *GPU)
    from lightrestore.build import build

    dm = build(cfg)["datamodule"]
    dm.setup("fit")
    clean = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, device="cuda")
    batch = dm.corrupt(clean)
    assert batch.degraded.device.type == "cuda" and batch.level.device.type == "cuda"


def test_two_optimiser_method_on_the_gpu(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=ondemand_inpaint", *GPU)
    with open_dict(cfg):
        cfg.method = OmegaConf.create(toy_method_config())
    run(cfg)
    doc = _finite_results(tmp_path / "run")
    assert set(doc["outputs"]) == {"input", "after_F", "G_1", "restored_known"}


def test_restore_on_cuda_matches_the_cpu(tmp_path):
    cfg = compose_cfg(tmp_path / "t", "experiment=rigid_joint_deblur", "trainer.max_epochs=1", "test=false")
    ckpt = run(cfg)["trainer"].checkpoint_callback.last_model_path
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(src)
    outs = {}
    for device in ("cpu", "cuda"):
        (dst,) = run_restore(compose_cfg(tmp_path / device, f"ckpt={ckpt}", f"input={src}",
                                         f"output={tmp_path / device / 'out'}", f"device={device}",
                                         config_name="restore", smoke=False))  # fmt: skip
        outs[device] = np.asarray(Image.open(dst)).astype(int)
    assert np.abs(outs["cpu"] - outs["cuda"]).max() <= 1  # TF32/cuDNN rounding at most
