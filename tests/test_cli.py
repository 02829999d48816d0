"""The command line: a smoke run end to end, resume, and one clear error per bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_cfg, run_cli
from PIL import Image

from lightrestore.cli.train import build, run
from lightrestore.errors import DataError, LevelError


def _run_dir(log_dir: Path, task_name: str) -> Path:
    runs = sorted((log_dir / task_name / "runs").iterdir())
    assert len(runs) == 1, runs
    return runs[0]


@pytest.mark.slow
def test_smoke_run_leaves_results_for_every_level(tmp_path):
    out = run_cli(
        "experiment=ondemand_inpaint", "debug=smoke", f"paths.log_dir={tmp_path}", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-3000:]
    run_dir = _run_dir(tmp_path, "ondemand_inpaint")
    doc = json.loads((run_dir / "results.json").read_text())
    assert sorted(doc["levels"], key=int) == ["1", "2", "3", "4", "5", "6"]
    for lv, row in doc["levels"].items():
        assert row["count"] == 4 and np.isfinite(row["psnr"]) and 0 < row["psnr"] < 100
        assert row["extra"] == (lv == "6")
    # inpainting also scores the missing region only
    assert set(doc["mean_train_levels"]) == {"psnr", "ssim", "l1", "l2", "missing_psnr", "missing_l1", "missing_l2"}
    assert len(doc["test_set"]["checksum"]) == 64 and doc["curriculum"] == "ondemand"
    # the table is printed and written
    assert "| 6 (extra) | 31-36px |" in out.stdout
    assert (run_dir / "results.md").read_text().count("\n|") >= 8
    alloc = (run_dir / "allocation.csv").read_text().splitlines()
    assert alloc[0].startswith("epoch,weight_1") and len(alloc) == 3  # header + 2 epochs
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert list((run_dir / "images").glob("val_epoch_*.png"))
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["lightrestore"]["method"] == "restoration"
    assert "RestorationDataModule" in ckpt and "sampler" in ckpt["RestorationDataModule"]


@pytest.mark.slow
def test_two_runs_never_share_a_folder(tmp_path):
    for _ in range(2):
        cfg_args = (
            "experiment=rigid_joint_denoise",
            "debug=smoke",
            "trainer.max_epochs=1",
            f"paths.log_dir={tmp_path}",
        )
        assert run_cli(*cfg_args, cwd=tmp_path).returncode == 0
    runs = list((tmp_path / "rigid_joint_denoise" / "runs").iterdir())
    assert len(runs) == 2 and all((r / "results.json").is_file() for r in runs)


def test_help_lists_the_config_groups(tmp_path):
    out = run_cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    for group in ("curriculum:", "data:", "task:", "experiment:", "ondemand_inpaint", "debug:"):
        assert group in out.stdout


def _error_of(out) -> str:
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    return "\n".join(lines)


def test_unknown_experiment(tmp_path):
    err = _error_of(run_cli("experiment=ondemand_nope", cwd=tmp_path))
    assert "Could not find 'experiment/ondemand_nope'" in err and "ondemand_inpaint" in err


def test_missing_data_folder(tmp_path):
    out = run_cli(
        "data=folder",
        f"data.source.root={tmp_path / 'nowhere'}",
        "debug=smoke",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert out.returncode == 2
    err = _error_of(out)
    assert (
        err.startswith("lightrestore: error:")
        and "does not exist" in err
        and "data.source.root" in err
    )
    assert "Traceback" not in err


def test_folder_without_a_decodable_image(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    for i in range(3):
        (root / f"broken{i}.png").write_bytes(b"not an image")
    out = run_cli(
        "data=folder",
        f"data.source.root={root}",
        "debug=smoke",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "no decodable image" in _error_of(out)


def _folder(root: Path, n: int, size: tuple[int, int]) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(
            root / f"img{i:02d}.png"
        )
    return root


def test_image_smaller_than_the_crop(tmp_path):
    root = _folder(tmp_path / "imgs", 10, (20, 24))
    out = run_cli(
        "data=folder",
        f"data.source.root={root}",
        "data.source.load_size=null",
        "debug=smoke",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    err = _error_of(out)
    assert out.returncode == 2 and "smaller than the 32x32 crop" in err and "load_size" in err


def test_level_outside_the_ladder(tmp_path):
    out = run_cli(
        "experiment=ondemand_deblur",
        "debug=smoke",
        "data.test_levels=[1,9]",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    err = _error_of(out)
    assert (
        out.returncode == 2 and "level 9 is outside the blur sigma ladder" in err and "1..5" in err
    )


def test_errors_in_process_are_user_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        run(compose_cfg(tmp_path, "data=folder", f"data.source.root={tmp_path / 'x'}"))
    with pytest.raises(LevelError):
        run(
            compose_cfg(
                tmp_path, "curriculum=fixed", "curriculum.weights=[1,1]", "data.val_levels=[0]"
            )
        )


@pytest.mark.slow
def test_folder_source_trains(tmp_path):
    root = _folder(tmp_path / "imgs", 12, (40, 48))
    cfg = compose_cfg(
        tmp_path,
        "data=folder",
        f"data.source.root={root}",
        "data.source.load_size=null",
        "experiment=fixated_hard_interp",
        "trainer.max_epochs=1",
    )
    out = run(cfg)
    assert set(out["results"]) == {1, 2, 3, 4, 5, 6}
    assert out["datamodule"].sampler.fixed == {"severity": 0.8}


@pytest.mark.slow
def test_resume_keeps_the_sampler_state(tmp_path):
    first = run(
        compose_cfg(
            tmp_path / "a", "experiment=ondemand_interp", "trainer.max_epochs=1", "test=false"
        )
    )
    ckpt_path = Path(first["trainer"].checkpoint_callback.last_model_path)
    ckpt = torch.load(ckpt_path, weights_only=True, map_location="cpu")
    sampler = ckpt["RestorationDataModule"]["sampler"]
    assert sampler["epoch"] == 0 and int(sampler["epoch_counts"].sum()) == 16  # 2 batches of 8
    # give the checkpoint a distinctive allocation (the tiny smoke model validates
    # every level alike, so its own on-demand update stays near uniform)
    distinctive = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05], dtype=torch.float64)
    sampler["weights"] = distinctive
    torch.save(ckpt, ckpt_path)
    second = run(
        compose_cfg(
            tmp_path / "b",
            "experiment=ondemand_interp",
            "trainer.max_epochs=2",
            "test=false",
            f"ckpt_path={ckpt_path}",
        )
    )
    rows = second["datamodule"].sampler.allocation()
    assert [r["epoch"] for r in rows] == [0, 1]
    assert (
        rows[0]["weights"] == [0.2] * 5 and sum(rows[0]["images"]) == 16
    )  # epoch 0, from the checkpoint
    assert rows[1]["weights"] == distinctive.tolist()  # epoch 1 trained with the restored weights
    assert second["trainer"].current_epoch == 2
    # and the allocation file of the resumed run shows both epochs
    alloc = (tmp_path / "b" / "run" / "allocation.csv").read_text().splitlines()
    assert len(alloc) == 3 and alloc[2].startswith("1,0.500000,0.200000")


@pytest.mark.slow
def test_ondemand_reallocates_by_inverse_validation_psnr(tmp_path):
    """End to end through Lightning, torchmetrics and the policy: with an identity
    "restoration" the per-level PSNR is the degraded input's, computed here with
    scikit-image, and epoch 1 must train with weights (1/P_i)/sum_j(1/P_j)."""
    from skimage.metrics import peak_signal_noise_ratio as sk_psnr

    cfg = compose_cfg(
        tmp_path,
        "experiment=ondemand_inpaint",
        "model._target_=helpers.IdentityModel",
        "optimizer.lr=0",
        "trainer.max_epochs=2",
        "test=false",
        "data.val_per_level=6",
    )
    out = run(cfg)
    vs = out["datamodule"].val_set
    psnr = []
    for lv in range(1, 6):
        rows = (vs.level == lv).nonzero().flatten()
        clean = vs.clean[vs.index[rows]].double().numpy() / 255
        deg = vs.degraded[rows].double().numpy()
        psnr.append(np.mean([sk_psnr(c, d, data_range=1.0) for c, d in zip(clean, deg)]))
    inv = 1 / np.array(psnr)
    expected = inv / inv.sum()
    rows = out["datamodule"].sampler.allocation()
    assert rows[0]["weights"] == [0.2] * 5
    assert rows[1]["weights"] == pytest.approx(expected.tolist(), rel=1e-5)
    assert expected[4] > expected[0]  # larger holes, lower PSNR, more images
    # the images each level received in epoch 1 follow the weights (B = 8, 2 batches)
    counts = out["datamodule"].sampler.counts(8).tolist()
    assert sum(rows[1]["images"]) == 16 and rows[1]["images"] == [2 * c for c in counts]


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    """Loopback DDP (gloo): one run folder, every test pair evaluated exactly once
    (9 pairs over 2 ranks: no padding duplicates), allocation counted over ranks."""
    out = run_cli(
        "experiment=ondemand_inpaint",
        "debug=smoke",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "data.test_levels=[1,2,3]",
        "data.test_per_level=3",
        f"paths.log_dir={tmp_path}",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    # the data-set lines once, from rank 0 (the other rank logs only warnings)
    console = out.stdout + out.stderr
    assert console.count("val set: ") == 1 and console.count("test set: ") == 1, console
    run_dir = _run_dir(tmp_path, "ondemand_inpaint")
    doc = json.loads((run_dir / "results.json").read_text())
    assert [row["count"] for row in doc["levels"].values()] == [3, 3, 3]
    rows = (run_dir / "allocation.csv").read_text().splitlines()[1:]
    # 16 training patches per epoch in total, 8 per rank
    assert [sum(int(v) for v in r.split(",")[6:]) for r in rows] == [16, 16]
    # only rank 0 wrote files: one log file, one CSV log, no per-rank artefacts
    assert sorted(p.name for p in run_dir.glob("*.log")) == ["train.log"]
    assert [p.name for p in (run_dir / "csv").iterdir()] == ["metrics.csv"] or sorted(
        p.name for p in (run_dir / "csv").iterdir()
    ) == ["hparams.yaml", "metrics.csv"]


@pytest.mark.slow
def test_ddp_ranks_hold_the_same_allocation_and_exact_metrics(tmp_path):
    """2 CPU processes, an identity "restoration" and an odd validation set (15 pairs):
    after every validation both ranks hold identical weights, the synced PSNR is the mean
    over the whole set (no padding duplicates), computed here with scikit-image."""
    from skimage.metrics import peak_signal_noise_ratio as sk_psnr

    dump = tmp_path / "dump"
    out = run_cli("experiment=ondemand_deblur", "debug=smoke", "trainer=ddp", "trainer.accelerator=cpu",
                  "trainer.devices=2", "trainer.max_epochs=2", "test=false", "data.val_per_level=3",
                  "model._target_=helpers.IdentityModel", "optimizer.lr=0",
                  "+callbacks.rank_dump._target_=helpers.RankDump", f"+callbacks.rank_dump.out={dump}",
                  f"paths.log_dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    cfg = compose_cfg(tmp_path / "ref", "experiment=ondemand_deblur", "data.val_per_level=3")
    dm = build(cfg)["datamodule"]
    dm.setup("fit")
    vs = dm.val_set
    ref = {}
    for lv in range(1, 6):
        rows = (vs.level == lv).nonzero().flatten()
        clean = vs.clean[vs.index[rows]].double().numpy() / 255
        ref[str(lv)] = np.mean(
            [
                sk_psnr(c, d, data_range=1.0)
                for c, d in zip(clean, vs.degraded[rows].double().numpy())
            ]
        )
    for epoch in (0, 1):
        docs = [json.loads((dump / f"rank{r}_epoch{epoch}.json").read_text()) for r in (0, 1)]
        assert docs[0] == docs[1]  # identical allocation and metrics on every rank
        assert docs[0]["count"] == {str(lv): 3 for lv in range(1, 6)}
        for lv, p in docs[0]["psnr"].items():
            assert p == pytest.approx(ref[lv], abs=1e-4)
        inv = np.array([1 / ref[str(lv)] for lv in range(1, 6)])
        assert docs[0]["weights"] == pytest.approx((inv / inv.sum()).tolist(), rel=1e-5)


def test_a_run_never_writes_into_a_folder_that_holds_one(tmp_path):
    first = tmp_path / "taken"
    assert run_cli("experiment=rigid_joint_interp", "debug=smoke", "trainer.max_epochs=1",
                   f"hydra.run.dir={first}", cwd=tmp_path).returncode == 0  # fmt: skip
    before = (first / "results.json").read_text()
    recorded = (first / ".hydra" / "config.yaml").read_text()
    out = run_cli(
        "experiment=rigid_joint_interp", "debug=smoke", "seed=3", f"hydra.run.dir={first}",
        cwd=tmp_path,
    )
    assert out.returncode == 2 and "already holds a run" in out.stderr
    assert (first / "results.json").read_text() == before
    # refused before Hydra wrote anything: the run's recorded config is intact
    assert (first / ".hydra" / "config.yaml").read_text() == recorded
