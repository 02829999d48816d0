"""ODL's denoising Table 3: whole images at fixed noise levels, restored on sliding
windows with the overlaps averaged, one row per image; checked against scikit-image."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio as sk_psnr

from lightrestore.cli.evaluate import run_evaluate
from lightrestore.cli.train import run
from lightrestore.cli.whole_images import corrupt_whole, whole_image_seed
from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.inference.tiling import restore_tiled


def _train(tmp: Path, *overrides: str) -> Path:
    cfg = compose_cfg(tmp, "experiment=rigid_joint_denoise", "trainer.max_epochs=1", "test=false", *overrides)
    return Path(run(cfg)["trainer"].checkpoint_callback.last_model_path)


def _images(folder: Path) -> list[np.ndarray]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    out = []
    for name, (h, w) in (("a.png", (45, 37)), ("b.png", (40, 50))):
        smooth = np.cumsum(rng.normal(0, 6, (h, w)), axis=1)
        img = np.clip(128 + smooth - smooth.mean(), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / name)
        out.append(img)
    return out


def _evaluate(tmp: Path, ckpt: Path, folder: Path, *extra: str) -> dict:
    cfg = compose_cfg(tmp, f"ckpt={ckpt}", f"whole_images={folder}", "severities=[10,50]",
                      *extra, config_name="evaluate", smoke=False)  # fmt: skip
    return run_evaluate(cfg)


def test_whole_images_on_sliding_windows_match_an_independent_computation(tmp_path):
    ckpt = _train(tmp_path / "t")
    images = _images(tmp_path / "imgs")
    out = _evaluate(tmp_path / "e", ckpt, tmp_path / "imgs", "tile_stride=8")
    rows = list(csv.DictReader((tmp_path / "e" / "run" / "whole_images.csv").open()))
    assert [(r["image"], float(r["severity"])) for r in rows] == [
        ("a.png", 10.0), ("a.png", 50.0), ("b.png", 10.0), ("b.png", 50.0)]
    method, deg = out["method"], out["method"].degradation
    assert method.inference_spec()["image_size"] == 32  # the autoencoder: windows
    for i, img in enumerate(images):
        clean = torch.from_numpy(img)[None].float() / 255
        for j, sigma in enumerate((10.0, 50.0)):
            noisy = corrupt_whole(deg, clean, sigma, whole_image_seed(out["results"]["seed"], i, j))
            # noise of the requested sigma (clamping to [0, 1] trims a little)
            assert float((noisy - clean).std() * 255) == pytest.approx(sigma, rel=0.15)
            with torch.no_grad():
                restored = restore_tiled(lambda x: method.restore(RestorationBatch.of_degraded(x)),
                                         noisy, 32, 8).clamp(0, 1)  # fmt: skip
            row = rows[2 * i + j]
            assert float(row["input_psnr"]) == pytest.approx(sk_psnr(clean.numpy(), noisy.numpy(), data_range=1.0), abs=1e-3)
            assert float(row["psnr"]) == pytest.approx(sk_psnr(clean.numpy(), restored.numpy(), data_range=1.0), abs=1e-3)
    md = (tmp_path / "e" / "run" / "whole_images.md").read_text()
    assert "| mean of 2 | 10 |" in md and "32x32 windows with stride 8" in md
    doc = json.loads((tmp_path / "e" / "run" / "whole_images.json").read_text())
    assert set(doc["means"]) == {"10", "50"} and doc["means"]["10"]["images"] == 2


def test_whole_images_identity_and_bad_settings(tmp_path):
    ckpt = _train(tmp_path / "t", "model._target_=helpers.IdentityModel", "optimizer.lr=0")
    _images(tmp_path / "imgs")
    out = _evaluate(tmp_path / "e", ckpt, tmp_path / "imgs")
    for r in out["results"]["rows"]:  # a model without a fixed size sees the whole image
        assert r["psnr"] == pytest.approx(r["input_psnr"], abs=1e-4)
    cfg = compose_cfg(tmp_path / "f", f"ckpt={ckpt}", f"whole_images={tmp_path / 'imgs'}",
                      config_name="evaluate", smoke=False)  # fmt: skip
    with pytest.raises(ConfigError, match=r"needs severities=\[\.\.\.\]"):
        run_evaluate(cfg)
