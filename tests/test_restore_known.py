"""``lightrestore.restore mask=... blur_width=...``: the known degradation of real images
reaches the method (DL-Net's likelihood loop), masks follow their tiles."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_cfg, run_cli
from PIL import Image

from lightrestore.cli.restore import run_restore
from lightrestore.cli.train import run
from lightrestore.errors import ConfigError, DataError
from lightrestore.inference.tiling import tile_grid
from lightrestore.methods.dlnet import DLNet

NO_PARAMS = "no degradation parameters for these images"


def _config(ckpt: Path) -> dict:
    """The training config stored in a checkpoint (independent of the code under test)."""
    from lightrestore.storage.checkpoints import load_checkpoint

    return load_checkpoint(ckpt)["lightrestore"]["config"]


def _task(ckpt: Path) -> dict:
    return _config(ckpt)["task"]


def _fill(ckpt: Path) -> torch.Tensor:
    """``(3, 1, 1)``: the colour the checkpoint's task fills missing pixels with."""
    return torch.tensor(_task(ckpt)["degradation"]["fill"], dtype=torch.float32).view(3, 1, 1)


def _train(tmp: Path, *overrides: str) -> Path:
    cfg = compose_cfg(tmp, "trainer.max_epochs=1", "test=false", *overrides)
    return Path(run(cfg)["trainer"].checkpoint_callback.last_model_path)


@pytest.fixture(scope="module")
def dlnet_inpaint(tmp_path_factory) -> Path:
    """DL-Net around ODL's autoencoder (fixed 32-pixel input: tiled), K = 5."""
    return _train(tmp_path_factory.mktemp("dlnet_inpaint"), "experiment=dlnet_inpaint")


@pytest.fixture(scope="module")
def identity_inpaint(tmp_path_factory) -> Path:
    """An identity "restoration" (plain method, whole images) of the inpainting task."""
    return _train(
        tmp_path_factory.mktemp("id_inpaint"), "experiment=rigid_joint_inpaint",
        "model._target_=helpers.IdentityModel", "optimizer.lr=0",
    )  # fmt: skip


@pytest.fixture(scope="module")
def dlnet_srblur(tmp_path_factory) -> Path:
    """DL-Net around a tiny VDSR (LR features), x2 super-resolution with blur."""
    return _train(
        tmp_path_factory.mktemp("dlnet_sr"), "experiment=sr_vdsr_x2", "task=srblur_x2",
        "method=dlnet", "+model.lr_features=true", "model.depth=3", "model.width=8",
    )  # fmt: skip


def _restore(tmp_path: Path, ckpt: Path, inp: Path, *overrides: str) -> list[Path]:
    cfg = compose_cfg(tmp_path, f"ckpt={ckpt}", f"input={inp}", *overrides, config_name="restore", smoke=False)  # fmt: skip
    return run_restore(cfg)


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _mask(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Bool ``(h, w)``, True = missing: a block and scattered pixels."""
    missing = np.random.default_rng(seed).random((h, w)) < 0.2
    missing[h // 4 : h // 2, w // 2 : w // 2 + 12] = True
    return missing


def _save_mask(path: Path, missing: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(missing.astype(np.uint8) * 255).save(path)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).copy()


@pytest.fixture
def spy(monkeypatch) -> dict[str, list]:
    """Records every ``DLNet.restore`` batch and its evaluations of the head ``h``
    (``heads``: one count per call; K with the inner loop, 1 without)."""
    seen: dict[str, list] = {"batches": [], "heads": []}
    restore = DLNet.restore

    def recording(self, batch):
        params = {k: v.clone() for k, v in batch.params.items()}
        seen["batches"].append((batch.degraded.clone(), params))
        head, count = self.model.head, [0]

        def counted(*a, **k):
            count[0] += 1
            return head(*a, **k)

        object.__setattr__(self.model, "head", counted)
        try:
            return restore(self, batch)
        finally:
            object.__delattr__(self.model, "head")
            seen["heads"].append(count[0])

    monkeypatch.setattr(DLNet, "restore", recording)
    return seen


# ---------------------------------------------------------------- masks: DL-Net, tiles, fill
def test_mask_runs_dlnet_on_filled_tiles_with_their_mask(tmp_path, dlnet_inpaint, spy, caplog):
    h, w, tile, stride, batch = 45, 56, 32, 8, 3  # 3 x 4 tiles (bottom edge replicated), 3 per call
    rgb, missing = _rgb(h, w), _mask(h, w)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    _save_mask(tmp_path / "masks" / "a.png", missing)
    opts = (f"tile_stride={stride}", f"batch_size={batch}")
    with caplog.at_level(logging.WARNING):
        (with_mask,) = _restore(
            tmp_path, dlnet_inpaint, tmp_path / "a.png", f"mask={tmp_path / 'masks'}",
            f"output={tmp_path / 'out'}", *opts,
        )  # fmt: skip
    assert NO_PARAMS not in caplog.text
    calls = spy["batches"]
    k = int(_config(dlnet_inpaint)["method"]["k"])  # K evaluations of h: K - 1 inner steps
    assert k > 1 and len(calls) == 4 and spy["heads"] == [k] * 4
    # every tile: the image's crop with the missing pixels filled, and the mask's crop
    hh, ww, rows, cols = tile_grid(h, w, tile, stride)
    ys, xs = torch.arange(hh).clamp(max=h - 1), torch.arange(ww).clamp(max=w - 1)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float().div(255)
    gone = torch.from_numpy(missing)[None]
    filled = torch.where(gone, _fill(dlnet_inpaint), image)[:, ys][:, :, xs]
    observed = (~gone).float()[:, ys][:, :, xs]
    degraded = torch.cat([d for d, _ in calls])
    masks = torch.cat([p["observed"] for _, p in calls])
    assert degraded.shape == (rows * cols, 3, tile, tile)
    assert masks.shape == (rows * cols, 1, tile, tile)
    for t in range(rows * cols):
        r, c = divmod(t, cols)
        y0, x0 = r * stride, c * stride
        win = (slice(None), slice(y0, y0 + tile), slice(x0, x0 + tile))
        assert torch.equal(masks[t], observed[win]), t
        assert torch.equal(degraded[t], filled[win]), t
    assert set(calls[0][1]) == {"observed"}
    # without a mask DL-Net warns and runs K = 1: another result
    spy["batches"].clear(), spy["heads"].clear()
    with caplog.at_level(logging.WARNING):
        (plain,) = _restore(tmp_path, dlnet_inpaint, tmp_path / "a.png", f"output={tmp_path / 'o2'}", *opts)  # fmt: skip
    assert NO_PARAMS in caplog.text and spy["heads"] == [1] * 4
    assert all(p == {} for _, p in spy["batches"])
    assert not np.array_equal(_pixels(with_mask), _pixels(plain))


def test_masks_of_a_folder_fill_the_missing_pixels_for_any_method(tmp_path, identity_inpaint):
    inp, out = tmp_path / "in", tmp_path / "out"
    fill = (_fill(identity_inpaint).flatten() * 255).round().byte().numpy()
    shapes = {"a.png": (20, 30), "sub/b.bmp": (17, 9)}
    masks = {"a.png": "masks/a.bmp", "sub/b.bmp": "masks/sub/b.png"}  # any extension, same stem
    for i, (name, (h, w)) in enumerate(shapes.items()):
        (inp / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_rgb(h, w, i)).save(inp / name)
        _save_mask(inp / masks[name], _mask(h, w, i))  # inside the input folder: not inputs
    written = _restore(tmp_path, identity_inpaint, inp, f"mask={inp / 'masks'}", f"output={out}")
    assert sorted(p.relative_to(out).as_posix() for p in written) == ["a.png", "sub/b.png"]
    for i, (name, (h, w)) in enumerate(shapes.items()):  # identity: the filled input
        want = _rgb(h, w, i)
        want[_mask(h, w, i)] = fill
        assert np.array_equal(_pixels(out / Path(name).with_suffix(".png")), want), name
    # one mask file serves every input
    one = _mask(20, 30, 7)
    _save_mask(tmp_path / "one.png", one)
    Image.fromarray(_rgb(20, 30, 3)).save(inp / "sub" / "c.png")
    (dst,) = _restore(tmp_path, identity_inpaint, inp / "sub" / "c.png", f"mask={tmp_path / 'one.png'}",
                      f"output={tmp_path / 'o2'}")  # fmt: skip
    want = _rgb(20, 30, 3)
    want[one] = fill
    assert np.array_equal(_pixels(dst), want)


# ---------------------------------------------------------------- blur width: DL-Net SR
def test_blur_width_runs_dlnet_for_super_resolution(tmp_path, dlnet_srblur, spy, caplog):
    Image.fromarray(_rgb(12, 14)).save(tmp_path / "lr.png")
    (dst,) = _restore(tmp_path, dlnet_srblur, tmp_path / "lr.png", "blur_width=1.3", f"output={tmp_path / 'out'}")  # fmt: skip
    assert Image.open(dst).size == (28, 24)
    ((degraded, params),) = spy["batches"]
    assert degraded.shape == (1, 1, 12, 14) and set(params) == {"severity", "sigma"}
    assert torch.equal(params["sigma"], torch.tensor([1.3])) and torch.equal(params["severity"], torch.tensor([1.3]))  # fmt: skip
    assert spy["heads"] == [int(_config(dlnet_srblur)["method"]["k"])] and spy["heads"][0] > 1
    spy["heads"].clear()
    with caplog.at_level(logging.WARNING):
        _restore(tmp_path, dlnet_srblur, tmp_path / "lr.png", f"output={tmp_path / 'o2'}")
    assert NO_PARAMS in caplog.text and spy["heads"] == [1]


# ---------------------------------------------------------------- errors name the fix
def test_wrong_masks_and_blur_widths_are_user_errors(tmp_path, dlnet_inpaint, dlnet_srblur):
    inp = tmp_path / "in"
    inp.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(_rgb(40, 45)).save(inp / name)
    _save_mask(tmp_path / "masks" / "a.png", _mask(40, 45))
    _save_mask(tmp_path / "small.png", _mask(20, 30))
    out = f"output={tmp_path / 'out'}"
    inpaint = _task(dlnet_inpaint)["name"]  # e.g. dlnet_inpaint
    cases = [
        (dlnet_inpaint, inp, f"mask={tmp_path / 'masks'}", DataError,
         r"no mask for 1 input\(s\) in .*masks': b.png\. Give each input a mask named like it"),
        (dlnet_inpaint, inp / "a.png", f"mask={tmp_path / 'small.png'}", DataError,
         r"small.png' is 30x20 pixels but its image 'a.png' is 45x40: give a mask of the image's size"),  # noqa: E501
        (dlnet_inpaint, inp, f"mask={tmp_path / 'nothing'}", DataError,
         r"mask '.*nothing' does not exist: give mask=<a mask image"),
        (dlnet_srblur, inp / "a.png", f"mask={tmp_path / 'small.png'}", ConfigError,
         r"this checkpoint's task is 'srblur_x2': remove mask="),
        (dlnet_inpaint, inp / "a.png", "blur_width=1", ConfigError,
         rf"super-resolution with blur .* this checkpoint's task is '{inpaint}': remove blur_width="),
        (dlnet_srblur, inp / "a.png", "blur_width=9", ConfigError,
         r"blur_width=9 lies outside .* \(0\.\.3\.6 px, task 'srblur_x2'\): give blur_width=<a width in 0\.\.3\.6>"),  # noqa: E501
        (dlnet_srblur, inp / "a.png", "blur_width=-0.5", ConfigError, r"give blur_width=<a width in 0\.\.3\.6>"),  # noqa: E501
    ]  # fmt: skip
    for ckpt, src, option, kind, message in cases:
        with pytest.raises(kind, match=message) as err:
            _restore(tmp_path, ckpt, src, option, out)
        assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()
    # the CLI reports it in one line, exit status 2
    res = run_cli(
        f"ckpt={dlnet_inpaint}", f"input={inp / 'a.png'}", f"mask={tmp_path / 'small.png'}", out,
        cwd=tmp_path, module="lightrestore.restore",
    )  # fmt: skip
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lightrestore.restore: error: mask '")
