"""Inpainting and interpolation are also scored over the missing region only (DL-Net's
Table 2 protocol) and with the known pixels put back; checked against scikit-image on the
very pairs of the test set and against exact pixel counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from skimage.metrics import peak_signal_noise_ratio as sk_psnr

from lightrestore.build import build
from lightrestore.cli.train import run
from lightrestore.metrics.image_quality import measure_region
from lightrestore.metrics.level_metrics import LevelMetrics

IDENTITY = ("model._target_=helpers.IdentityModel", "optimizer.lr=0")


def test_region_measures_match_scikit_image_on_the_region_pixels():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 3, 16, 16, generator=g)
    pred = (target + 0.1 * torch.randn(3, 3, 16, 16, generator=g)).clamp(0, 1)
    region = torch.zeros(3, 1, 16, 16)
    region[0, :, 2:7, 3:9] = 1  # a 5x6 hole
    region[1] = (torch.rand(1, 16, 16, generator=g) < 0.3).float()  # deleted pixels
    out = measure_region(pred, target, region)
    for i in (0, 1):
        m = region[i, 0].bool().numpy()
        t, p = target[i].numpy()[:, m], pred[i].numpy()[:, m]
        assert float(out["missing_psnr"][i]) == pytest.approx(sk_psnr(t, p, data_range=1.0), abs=1e-4)
        assert float(out["missing_l1"][i]) == pytest.approx(np.abs(t - p).mean(), rel=1e-5)
        assert float(out["missing_l2"][i]) == pytest.approx(((t - p) ** 2).mean(), rel=1e-5)
    assert out["pixels"].tolist() == [3 * 30, 3 * float(region[1].sum()), 0.0]


def test_level_metrics_average_the_region_over_images_that_have_one():
    target = torch.zeros(3, 1, 12, 12)
    pred = torch.full((3, 1, 12, 12), 0.1)
    region = torch.zeros(3, 1, 12, 12)
    region[0, :, :2] = 1
    region[1, :, :1] = 1  # the third image has no missing pixel: not counted
    pred[1, :, :1] = 0.2
    m = LevelMetrics(1)
    m.update(pred, target, torch.ones(3, dtype=torch.long), region)
    row = m.compute()[1]
    assert row["count"] == 3
    assert row["missing_l2"] == pytest.approx((0.01 + 0.04) / 2)
    assert row["missing_l1"] == pytest.approx((0.1 + 0.2) / 2)
    plain = LevelMetrics(1)
    plain.update(pred, target, torch.ones(3, dtype=torch.long))  # no region given
    assert "missing_psnr" not in plain.compute()[1]


@pytest.mark.parametrize("task", ["inpaint", "interp"])
def test_missing_region_is_the_hole_or_the_deleted_pixels(tmp_path, task):
    objs = build(compose_cfg(tmp_path, f"experiment=ondemand_{task}"))
    dm, method = objs["datamodule"], objs["method"]
    dm.setup("test")
    batch = dm.test_set.batch(torch.arange(len(dm.test_set)))
    region = method.missing_region(batch)
    assert region.shape == (len(batch), 1, *batch.clean.shape[-2:])
    counts = region.flatten(1).sum(1)
    if task == "inpaint":  # exact counts: a side x side hole
        assert counts.tolist() == (batch.params["severity"] ** 2).tolist()
    else:
        assert counts.tolist() == batch.params["deleted"].flatten(1).sum(1).float().tolist()
    # the known pixels are untouched by the degradation: degraded == clean outside
    assert torch.equal(batch.degraded * (1 - region), batch.clean * (1 - region))


def test_identity_restoration_scored_on_the_missing_region_against_scikit_image(tmp_path):
    """A "do nothing" model: its missing-region PSNR is the fill colour against the clean
    hole pixels, computed here with scikit-image from the same test pairs; putting the known
    pixels back changes nothing."""
    out = run(compose_cfg(tmp_path, "experiment=rigid_joint_inpaint", "trainer.max_epochs=1", *IDENTITY))
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    ts = out["datamodule"].test_set
    for lv, row in doc["levels"].items():
        rows = (ts.level == int(lv)).nonzero().flatten()
        batch = ts.batch(rows)
        hole = out["method"].missing_region(batch)[:, 0].bool()
        ref = [sk_psnr(c.numpy()[:, h.numpy()], d.numpy()[:, h.numpy()], data_range=1.0)
               for c, d, h in zip(batch.clean, batch.degraded, hole)]  # fmt: skip
        assert row["missing_psnr"] == pytest.approx(float(np.mean(ref)), abs=1e-3), lv
        known = doc["outputs"]["restored_known"]["default"]["levels"][lv]
        assert known["psnr"] == pytest.approx(row["psnr"], abs=1e-4)
        assert known["missing_psnr"] == pytest.approx(row["missing_psnr"], abs=1e-4)
    assert "missing_psnr" in doc["protocol"] and "known pixels put back" in doc["protocol"]
    md = (tmp_path / "run" / "results.md").read_text()
    assert "PSNR missing" in md.splitlines()[2]
    header = (tmp_path / "run" / "results.csv").read_text().splitlines()[0]
    assert header.endswith("missing_psnr,missing_l1,missing_l2")


def test_other_tasks_have_no_region_scores(tmp_path):
    run(compose_cfg(tmp_path, "experiment=rigid_joint_deblur", "trainer.max_epochs=1"))
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "missing_psnr" not in doc["levels"]["1"] and "restored_known" not in doc["outputs"]


def test_results_say_which_outputs_beat_the_input_and_how_far_the_budget_is():
    from lightrestore.degradations.base import Ladder
    from lightrestore.reporting.results import build_results, results_markdown

    ladder = Ladder([[1, 2], [3, 4]], None)

    def levels(psnrs):
        return {lv: {"psnr": p, "ssim": 0.5, "l1": 0.1, "l2": 0.01, "count": 4}
                for lv, p in enumerate(psnrs, start=1)}  # fmt: skip

    scores = {"default": {"restored": levels([20.0, 10.0]), "input": levels([15.0, 12.0]),
                          "restored_known": levels([25.0, 13.0])}}  # fmt: skip
    doc = build_results(levels([20.0, 10.0]), ladder, input_metrics=levels([15.0, 12.0]),
                        outputs=scores, extra={"global_step": 300, "batch_size": 100,
                        "paper_budget": {"steps": 1_500_000, "batch_size": 100, "what": "ODL"}})  # fmt: skip
    md = results_markdown(doc)
    assert ("Against the corrupted input (13.50 dB, mean PSNR of levels 1-2): restored 15.00 dB "
            "(+1.50: better than the input; ahead of the input at levels: 1); restored_known "
            "19.00 dB (+5.50: better than the input; ahead of the input at levels: 1, 2).") in md
    assert ("Training budget: 300 optimisation steps of batch 100 (30,000 images), 0.02 % of the "
            "paper's 1,500,000 steps of batch 100 (ODL).") in md
    worse = build_results(levels([10.0, 10.0]), ladder, outputs={"default": {
        "restored": levels([10.0, 10.0]), "input": levels([15.0, 12.0])}})  # fmt: skip
    assert "restored 10.00 dB (-3.50: not yet better than the input; ahead of the input at levels: none)" in results_markdown(worse)


def test_report_shows_the_missing_region_psnr(tmp_path):
    from lightrestore.reporting.report import write_summary

    run(compose_cfg(tmp_path / "a", "experiment=rigid_joint_inpaint", "trainer.max_epochs=1", *IDENTITY))
    doc = json.loads((tmp_path / "a" / "run" / "results.json").read_text())
    write_summary([tmp_path / "a"], out=tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "## PSNR (dB) over the missing region only, test set" in md
    cells = [f"{doc['levels'][str(lv)]['missing_psnr']:.2f}" for lv in range(1, 7)]
    assert any(" | ".join(cells) in line for line in md.splitlines())


def test_protocol_states_the_region_split_and_the_y_channel(tmp_path):
    from lightrestore.reporting.results import data_protocol

    regions = {"source": {"split_mode": "regions", "fractions": [0.7, 0.15, 0.15], "guard": 65}}
    text = data_protocol(regions)
    assert "disjoint regions of each photo" in text and "[0.7, 0.15, 0.15]" in text and "65 px" in text
    assert "rgb2ycbcr" in data_protocol({**regions, "colour": "ycbcr_y"})
    assert data_protocol({"source": {"split_mode": "folder"}}) == ""
    run(compose_cfg(tmp_path, "experiment=rigid_joint_deblur", "trainer.max_epochs=1"))
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "disjoint regions of each photo" in doc["protocol"]
