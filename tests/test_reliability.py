"""Nothing lost, nothing wrong: bad inputs, NaN losses, atomic writes, safe loading,
determinism. The bad-input cases run for every experiment config."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO, compose_cfg, run_cli
from PIL import Image
from representative import REPRESENTATIVE

from lightrestore.callbacks.reliability import NonFiniteLossError
from lightrestore.cli.restore import run_restore
from lightrestore.cli.train import run
from lightrestore.errors import DataError, LevelError, UserError
from lightrestore.storage.atomic import atomic_write_text
from lightrestore.storage.checkpoint_io import AtomicCheckpointIO
from lightrestore.storage.checkpoints import CheckpointError


# ---------------------------------------------------------------- bad input, representative set
@pytest.mark.parametrize("label", REPRESENTATIVE)
def test_bad_inputs_on_the_representative_set(tmp_path, label):
    exp = REPRESENTATIVE[label]
    with pytest.raises(DataError, match="does not exist: set data.source.root"):
        run(
            compose_cfg(tmp_path / "a", *exp, "data=folder", f"data.source.root={tmp_path / 'none'}")
        )
    with pytest.raises(
        LevelError, match=r"level 99 is outside the .* ladder: valid levels are 1\.\."
    ):
        run(compose_cfg(tmp_path / "b", *exp, "data.test_levels=[1,99]"))
    with pytest.raises(UserError, match="does not exist"):
        run(compose_cfg(tmp_path / "c", *exp, f"ckpt_path={tmp_path / 'missing.ckpt'}"))
    with pytest.raises(UserError, match="ckpt_path=last: no earlier run"):
        run(compose_cfg(tmp_path / "d", *exp, "ckpt_path=last"))


def test_unknown_config_option_lists_the_choices(tmp_path):
    out = run_cli("curriculum=nope", cwd=tmp_path)
    assert out.returncode != 0
    assert "Could not find 'curriculum/nope'" in out.stderr and "ondemand" in out.stderr


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


def test_mixed_image_modes_and_a_truncated_file_train(tmp_path):
    """Grey, RGBA, palette and 16-bit images are converted; a truncated JPEG among the
    training images is skipped, counted and logged; training completes."""
    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(0)
    rgb = lambda: rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)  # noqa: E731
    names = []
    for i in range(4):
        _save(root / f"rgb{i}.png", rgb())
        names.append(f"rgb{i}.png")
    _save(root / "grey.png", rng.integers(0, 255, (40, 48), dtype=np.uint8))
    Image.fromarray(rgb()).convert("RGBA").save(root / "rgba.png")
    Image.fromarray(rgb()).convert("P").save(root / "palette.png")
    Image.fromarray(rng.integers(0, 65535, (40, 48), dtype=np.uint16)).save(root / "deep.png")
    buf = io.BytesIO()
    Image.fromarray(rgb()).save(buf, format="JPEG")
    (root / "truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    train = ["grey.png", "rgba.png", "palette.png", "deep.png", "truncated.jpg", "rgb0.png"]
    (tmp_path / "train.txt").write_text("\n".join(train))
    (tmp_path / "val.txt").write_text("rgb1.png\nrgb2.png")
    (tmp_path / "test.txt").write_text("rgb3.png")
    out = run(compose_cfg(tmp_path, "experiment=rigid_joint_interp", "data=folder", f"data.source.root={root}",
                          "data.source.load_size=null", f"data.source.train_list={tmp_path / 'train.txt'}",
                          f"data.source.val_list={tmp_path / 'val.txt'}", f"data.source.test_list={tmp_path / 'test.txt'}",
                          "data.train_samples_per_epoch=60", "trainer.max_epochs=1"))  # fmt: skip
    skipped = out["datamodule"].train_set.skipped
    assert list(skipped) == ["truncated.jpg"] and "truncated" in skipped["truncated.jpg"]
    assert set(out["results"]) == {1, 2, 3, 4, 5, 6}


def test_truncated_test_image_is_a_clear_error(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        _save(root / f"ok{i}.png", rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(buf, format="JPEG")
    (root / "bad.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])  # header intact
    for split, names in {"train": "ok0.png", "val": "ok1.png", "test": "ok2.png\nbad.jpg"}.items():
        (tmp_path / f"{split}.txt").write_text(names)
    lists = [f"data.source.{s}_list={tmp_path / f'{s}.txt'}" for s in ("train", "val", "test")]
    with pytest.raises(DataError, match=r"cannot decode image '.*bad.jpg'.*Remove or replace"):
        run(
            compose_cfg(
                tmp_path,
                "data=folder",
                f"data.source.root={root}",
                "data.source.load_size=null",
                *lists,
            )
        )


# ---------------------------------------------------------------- NaN / Inf loss
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    # 2 steps per epoch: epoch 0 trains and validates (last.ckpt), step 4 turns NaN
    cfg = compose_cfg(tmp_path, "experiment=rigid_joint_inpaint", "model._target_=helpers.NaNAfter", "+model.after=3",
                      "trainer.max_epochs=3")  # fmt: skip
    with pytest.raises(
        NonFiniteLossError, match=r"became nan at epoch 1, step 3.*last good checkpoint is .*ckpt"
    ):
        run(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True, map_location="cpu")
    assert ckpt["global_step"] == 2
    assert all(
        torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point()
    )


def test_nan_loss_cli_message(tmp_path):
    out = run_cli("experiment=rigid_joint_inpaint", "debug=smoke", "model._target_=helpers.NaNAfter", "+model.after=1",
                  f"paths.log_dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2
    assert re.search(
        r"lightrestore: error: the training loss became nan .* Lower the learning rate", out.stderr
    )


# ---------------------------------------------------------------- checkpoints: atomic, safe, method
def test_atomic_checkpoint_write_never_leaves_a_truncated_file(tmp_path, monkeypatch):
    io_ = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io_.save_checkpoint({"state_dict": {"w": torch.ones(3)}}, target)

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        io_.save_checkpoint({"state_dict": {"w": torch.zeros(3)}}, target)
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["state_dict"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left


def test_atomic_text_write(tmp_path, monkeypatch):
    target = tmp_path / "results.json"
    atomic_write_text(target, "old")
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("crash")))
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old" and len(list(tmp_path.iterdir())) == 1


def test_every_torch_load_is_weights_only():
    calls = []
    for f in (REPO / "src").rglob("*.py"):
        for m in re.finditer(r"torch\.load\(([^)]*)\)", f.read_text()):
            calls.append((f.name, m.group(1)))
    assert calls and all("weights_only=True" in args for _, args in calls), calls


@pytest.fixture(scope="module")
def ckpt_file(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ckpt")
    out = run(
        compose_cfg(tmp, "experiment=rigid_joint_deblur", "trainer.max_epochs=1", "test=false")
    )
    return Path(out["trainer"].checkpoint_callback.last_model_path)


def _restore_cfg(tmp_path, *overrides):
    return compose_cfg(tmp_path, *overrides, config_name="restore", smoke=False)


def test_checkpoint_from_another_method_or_model(tmp_path, ckpt_file):
    ckpt = torch.load(ckpt_file, weights_only=True)
    other = dict(ckpt, lightrestore=dict(ckpt["lightrestore"], method="dlnet"))
    f = tmp_path / "dlnet.ckpt"
    torch.save(other, f)
    with pytest.raises(CheckpointError, match="comes from method 'dlnet'"):
        run_restore(
            _restore_cfg(tmp_path, f"ckpt={f}", f"input={tmp_path}", "expect_method=restoration")
        )
    cfg = ckpt["lightrestore"]["config"]
    wider = dict(
        ckpt,
        lightrestore=dict(
            ckpt["lightrestore"],
            config=dict(cfg, method=dict(cfg["method"], model=dict(cfg["method"]["model"], width=16))),
        ),
    )
    g = tmp_path / "wider.ckpt"
    torch.save(wider, g)
    with pytest.raises(CheckpointError, match="does not fit"):
        run_restore(_restore_cfg(tmp_path, f"ckpt={g}", f"input={tmp_path}"))
    with pytest.raises(CheckpointError, match="does not fit"):
        from lightrestore.cli.evaluate import run_evaluate

        run_evaluate(compose_cfg(tmp_path / "e", f"ckpt={g}", config_name="evaluate", smoke=False))


# ---------------------------------------------------------------- determinism
def test_same_seed_same_pairs_allocation_and_results(tmp_path):
    args = ("experiment=ondemand_interp", "trainer.deterministic=true")
    a = run(compose_cfg(tmp_path / "a", *args))
    b = run(compose_cfg(tmp_path / "b", *args))
    c = run(compose_cfg(tmp_path / "c", *args, "seed=7"))
    assert a["datamodule"].test_set.checksum == b["datamodule"].test_set.checksum
    assert a["datamodule"].sampler.allocation() == b["datamodule"].sampler.allocation()
    assert a["results"] == b["results"]
    assert (tmp_path / "a/run/allocation.csv").read_text() == (
        tmp_path / "b/run/allocation.csv"
    ).read_text()
    assert c["datamodule"].test_set.checksum != a["datamodule"].test_set.checksum
