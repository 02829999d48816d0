"""The weight average (``callbacks=ema``): hand-worked averaging, scored beside the raw
weights in validation and testing, checkpointed, exact on resume, used by evaluate and
restore (``weights=ema``)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from lightning.pytorch import Callback
from PIL import Image

from lightrestore.cli.evaluate import run_evaluate
from lightrestore.cli.restore import run_restore
from lightrestore.cli.train import run
from lightrestore.errors import ConfigError, UserError

DECAY, START = 0.5, 2
EMA = ["callbacks=ema", f"callbacks.ema.decay={DECAY}", f"callbacks.ema.start_step={START}"]


class RecordWeights(Callback):
    """Test callback: the method's parameters after every training batch."""

    trajectory: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        RecordWeights.trajectory.append(
            {k: v.detach().double().clone() for k, v in pl_module.named_parameters()}
        )


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    """ODL's autoencoder on inpainting, 2 epochs x 2 steps, averaged from step 2 on."""
    tmp = tmp_path_factory.mktemp("ema")
    RecordWeights.trajectory = []
    cfg = compose_cfg(tmp, "experiment=ondemand_inpaint", *EMA,
                      "+callbacks.record._target_=test_ema.RecordWeights")  # fmt: skip
    out = run(cfg)
    return tmp / "run", out, list(RecordWeights.trajectory)


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_average_is_the_hand_worked_moving_average(ema_run):
    run_dir, _, trajectory = ema_run
    assert len(trajectory) == 4  # 2 epochs x 2 optimisation steps
    expected = dict(trajectory[0])
    for step, weights in enumerate(trajectory, start=1):
        for k, w in weights.items():  # a copy up to start_step, then the average
            expected[k] = w if step <= START else DECAY * expected[k] + (1 - DECAY) * w
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    saved = ckpt["ema_state_dict"]
    assert set(saved) == set(expected)  # every parameter, named as in state_dict
    moved = 0
    for k, v in expected.items():
        torch.testing.assert_close(saved[k].double(), v, rtol=1e-5, atol=1e-6)
        raw = ckpt["state_dict"][k].double()
        torch.testing.assert_close(raw, trajectory[-1][k])  # the raw weights untouched
        moved += int(not torch.allclose(raw, v))
    assert moved > 0  # the average is not the raw weights
    assert ckpt["callbacks"]["EMA"]["updates"] == 4


def test_average_is_scored_beside_the_raw_weights(ema_run, tmp_path):
    run_dir, _, _ = ema_run
    rows = [r for r in _metrics(run_dir) if r.get("val/ema/psnr/mean")]
    assert len(rows) == 2  # every validation (not the sanity check)
    assert all(r["val/psnr/mean"] for r in rows)
    doc = json.loads((run_dir / "results.json").read_text())
    ema = doc["outputs"]["ema"]  # {test set: {level: row}}, beside "restored"'s
    assert set(ema) == {"default", "centered"}
    assert set(ema["default"]["levels"]) == set(doc["levels"])  # every level, the extra one too
    assert set(ema["centered"]["levels"]) == set(doc["variants"]["centered"]["levels"])
    # the average's test output is what the averaged weights restore: evaluate weights=ema
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    ev = run_evaluate(
        compose_cfg(tmp_path, f"ckpt={ckpt}", "weights=ema", config_name="evaluate", smoke=False)
    )
    raw = json.loads((tmp_path / "run" / "results.json").read_text())
    assert raw["weights"] == "ema"
    for level, row in ema["default"]["levels"].items():
        assert ev["results"][int(level)]["psnr"] == pytest.approx(row["psnr"], abs=1e-9)
    assert any(  # and differs from the raw weights' restoration
        abs(ema["default"]["levels"][lv]["psnr"] - doc["levels"][lv]["psnr"]) > 1e-6
        for lv in doc["levels"]
    )


def test_restore_uses_the_average_on_request(ema_run, tmp_path):
    run_dir, _, _ = ema_run
    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(photo)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    outs = {}
    for weights in ("raw", "ema"):
        cfg = compose_cfg(tmp_path / weights, f"ckpt={ckpt}", f"input={photo}", f"weights={weights}",
                          config_name="restore", smoke=False)  # fmt: skip
        [written] = run_restore(cfg)
        outs[weights] = np.asarray(Image.open(written))
    assert outs["raw"].shape == outs["ema"].shape == (40, 48, 3)
    assert not np.array_equal(outs["raw"], outs["ema"])


def test_weights_ema_needs_a_run_trained_with_it(tmp_path):
    cfg = compose_cfg(
        tmp_path, "experiment=rigid_joint_deblur", "trainer.max_epochs=1", "test=false"
    )
    ckpt = Path(run(cfg)["trainer"].checkpoint_callback.last_model_path)
    with pytest.raises(UserError, match=r"no EMA weights .* callbacks=ema\): use weights=raw"):
        run_evaluate(compose_cfg(tmp_path / "e", f"ckpt={ckpt}", "weights=ema",
                                 config_name="evaluate", smoke=False))  # fmt: skip
    with pytest.raises(ConfigError, match="weights must be raw or ema"):
        run_evaluate(compose_cfg(tmp_path / "f", f"ckpt={ckpt}", "weights=best",
                                 config_name="evaluate", smoke=False))  # fmt: skip


def test_bad_decay_is_refused():
    from lightrestore.callbacks.ema import EMA as Average

    with pytest.raises(ConfigError, match=r"decay must be in \[0, 1\)"):
        Average(decay=1.0)


@pytest.mark.slow
def test_interrupted_run_resumes_the_average_exactly(tmp_path):
    from test_resume import COMMON, _interrupted_then_resumed

    overrides = ("experiment=ondemand_inpaint", *EMA)
    run(compose_cfg(tmp_path / "full", *overrides, *COMMON))
    _interrupted_then_resumed(tmp_path, overrides, step=4)  # mid-epoch 1 of 3-batch epochs
    full, resumed = (
        torch.load(tmp_path / name / "run" / "checkpoints" / "last.ckpt", weights_only=True)
        for name in ("full", "resumed")
    )
    assert full["ema_state_dict"].keys() == resumed["ema_state_dict"].keys()
    for k, v in full["ema_state_dict"].items():
        assert torch.equal(resumed["ema_state_dict"][k], v), k
    docs = [
        json.loads((tmp_path / n / "run" / "results.json").read_text()) for n in ("full", "resumed")
    ]
    assert docs[0]["outputs"]["ema"] == docs[1]["outputs"]["ema"]


def test_manual_optimisation_averages_once_per_batch(tmp_path):
    """The toy two-network method (two optimisers: two optimiser steps per batch, a frozen
    first network): one update per batch, the frozen network's average is itself."""
    from test_method_core import toy_cfg

    out = run(toy_cfg(tmp_path, *EMA))
    assert out["trainer"].global_step == 12  # 2 epochs x 3 batches x 2 optimisers
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["callbacks"]["EMA"]["updates"] == 6
    ema, raw = ckpt["ema_state_dict"], ckpt["state_dict"]
    assert {k.split(".")[0] for k in ema} == {"f_net", "g_net", "d_net"}
    assert all(torch.equal(ema[k], raw[k]) for k in ema if k.startswith("f_net"))
    assert not any(torch.equal(ema[k], raw[k]) for k in ema if k.startswith("g_net"))
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert "ema" in results["outputs"]
