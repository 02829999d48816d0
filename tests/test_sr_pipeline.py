"""Super-resolution end to end: LR/HR patches, whole-image benchmark sets on the Y
channel with a border crop, the bicubic baseline, PSPL's schedule in the logs, and the
convergence report."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from PIL import Image
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio as sk_psnr

from lightrestore.cli.train import run
from lightrestore.degradations.resize import imresize
from lightrestore.reporting.convergence import first_epoch
from lightrestore.reporting.convergence import main as convergence_main


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("benchmark")
    rng = np.random.default_rng(0)
    (root / "Set5" / "HR").mkdir(parents=True)
    for i, (h, w) in enumerate([(37, 45), (40, 33)]):  # odd sizes: modcrop to multiples of 3
        img = np.clip(rng.normal(0.5, 0.2, (h, w, 3)), 0, 1)
        Image.fromarray((img * 255).round().astype(np.uint8)).save(
            root / "Set5" / "HR" / f"img{i}.png"
        )
    return root


def test_sr_run_with_a_whole_image_benchmark(tmp_path, bench_root):
    """SRCNN is a Y-channel model: the benchmark's clean images are MATLAB's rgb2ycbcr Y
    (uint8) of the files, the LR inputs their bicubic downscaling."""
    out = run(compose_cfg(tmp_path, "experiment=sr_srcnn_x3", f"data.benchmark_root={bench_root}",
                          "data.benchmark_sets=[Set5]", "trainer.max_epochs=1"))  # fmt: skip
    dm = out["datamodule"]
    assert dm.crop_size == 30  # the smoke crop 32 rounded to a multiple of 3
    bench = dm.test_sets["Set5"]
    assert [tuple(c.shape) for c in bench.clean] == [(1, 36, 45), (1, 39, 33)]  # modcrop, Y
    assert [tuple(d.shape) for d in bench.degraded] == [(1, 12, 15), (1, 13, 11)]
    files = sorted((bench_root / "Set5" / "HR").glob("*.png"))
    for c, d, f in zip(bench.clean, bench.degraded, files):
        rgb = np.asarray(Image.open(f))[: c.shape[1], : c.shape[2]]
        y8 = np.round(rgb2ycbcr(rgb)[..., 0])  # MATLAB rgb2ycbcr on uint8 -> uint8 Y
        np.testing.assert_array_equal(c[0].numpy(), y8)
        lr = imresize(torch.from_numpy(y8 / 255).float()[None, None], scale=1 / 3)[0].clamp(0, 1)
        torch.testing.assert_close(d, lr, atol=1e-5, rtol=0)
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "Y channel" in doc["protocol"] and "border of 3 px" in doc["protocol"]
    assert "rounded to 8 bits" in doc["protocol"]
    row = doc["variants"]["Set5"]["levels"]["1"]
    assert row["count"] == 2
    # the bicubic baseline, computed independently: the 8-bit bicubic Y, 3 px border
    ref = []
    for c, d in zip(bench.clean, bench.degraded):
        up = imresize(d[None], scale=3.0, size=tuple(c.shape[1:]))[0, 0].clamp(0, 1)
        y_hr = c[0].numpy().astype(np.float64)
        y_up = (up.numpy() * 255).round().astype(np.float64)  # 8-bit, as measured
        ref.append(sk_psnr(y_hr[3:-3, 3:-3], y_up[3:-3, 3:-3], data_range=255))
    assert row["input_psnr"] == pytest.approx(float(np.mean(ref)), abs=1e-3)


def test_pspl_delta_grows_in_the_logs(tmp_path):
    run(
        compose_cfg(
            tmp_path,
            "experiment=sr_edsr_x2_pspl",
            "loss.batches_per_epoch=2",
            "trainer.max_epochs=2",
        )
    )
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    deltas = [float(r["train/PSPLoss/delta"]) for r in rows if r.get("train/PSPLoss/delta")]
    assert deltas == pytest.approx(
        [0.5, 1.0, 1.5, 2.0]
    )  # t = k / 2 before batch k, alpha 1, beta 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["state_dict"]["loss._extra_state"] == {
        "t": pytest.approx(2.0)
    }  # saved: resume continues


def test_convergence_report(tmp_path):
    for name, values in {"l1": [20.0, 24.0, 26.0, 27.0], "pspl": [22.0, 25.5, 27.5, 28.0]}.items():
        d = tmp_path / name
        (d / "csv").mkdir(parents=True)
        (d / ".hydra").mkdir()
        (d / ".hydra" / "config.yaml").write_text("a: 1\n")
        (d / ".hydra" / "overrides.yaml").write_text(
            f"- experiment=sr_edsr_x2{'_pspl' if name == 'pspl' else ''}\n"
        )
        rows = ["epoch,step,val/psnr/mean"] + [f"{e},{e},{v}" for e, v in enumerate(values)]
        (d / "csv" / "metrics.csv").write_text("\n".join(rows) + "\n")
        (d / "results.json").write_text(json.dumps({"levels": {}, "curriculum": "rigid_joint"}))
    assert first_epoch([(1, 20.0), (2, 25.0)], 24.0) == 2
    assert (
        convergence_main([str(tmp_path / "l1"), str(tmp_path / "pspl"), "--out", str(tmp_path)])
        == 0
    )
    md = (tmp_path / "convergence.md").read_text()
    assert ">= 27.00 dB" in md  # default target: the highest PSNR both reach
    assert "| sr_edsr_x2 | 4 |" in md and "| sr_edsr_x2_pspl | 3 |" in md
    assert (tmp_path / "convergence.png").is_file()
