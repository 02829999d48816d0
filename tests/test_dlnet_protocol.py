"""DL-Net's paper protocol on the shared core: test settings as their own test sets (one
level each, the paper's hole sides / deletion rates / blur widths), a fixed number of
degradations per test image, test pairs shared across training seeds, images resized (not
cropped), weight decay on weights only, the SR forward model, and DL-Net composing with
on-demand learning and PSPL through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import compose_cfg, run_cli
from PIL import Image

from lightrestore.build import build
from lightrestore.data.datamodule import RestorationDataModule
from lightrestore.data.sources import EmbeddedSource
from lightrestore.degradations import Inpaint, Interpolate, Resize
from lightrestore.errors import ConfigError
from lightrestore.methods.dlnet import DLNet


def _dm(degradation, **kw) -> RestorationDataModule:
    args = dict(crop_size=32, batch_size=4, train_samples_per_epoch=8, val_per_level=2,
                test_per_level=3, seed=0)  # fmt: skip
    args.update(kw)
    return RestorationDataModule(EmbeddedSource(channels=3, load_size=64), degradation, **args)


def test_inpainting_settings_are_test_sets_at_one_level():
    settings = {
        "s10": {"severity": 10, "max_shift": 10},
        "s30": {"severity": 30, "max_shift": 10},
        "s20_centred": {"severity": 20, "centered": True},
        "at_3": {"levels": [3], "centered": True},
    }
    dm = _dm(Inpaint(max_shift=10), test_variants=settings, test_per_image=10)
    dm.setup("test")
    n_images = len(dm.images("test"))
    s10, s30, centred = dm.test_sets["s10"], dm.test_sets["s30"], dm.test_sets["s20_centred"]
    # the level whose bin (1-6, 7-12, ..., 25-30 px) holds the side; 10 pairs per test image
    assert s10.levels == [2] and s30.levels == [5] and centred.levels == [4]
    assert dm.test_sets["at_3"].levels == [3]
    assert len(s10) == len(dm.test_sets["default"]) // 6 == 10 * n_images
    assert set(s10.names) == set(dm.images("test").names)
    assert all(s10.names.count(n) == 10 for n in set(s10.names))
    # every hole has the setting's side, within +-10 px of the centre (32 px patches)
    for es, side in ((s10, 10), (s30, 30)):
        assert torch.all(es.params["severity"] == side)
        centre = (32 - side) // 2
        top, left = es.params["top"], es.params["left"]
        assert torch.all((top - centre).abs() <= 10) and torch.all((left - centre).abs() <= 10)
        assert len(set(top.tolist())) > 1  # shifted, not all at the centre
    assert torch.all(centred.params["top"] == 6) and torch.all(centred.params["left"] == 6)
    # the same clean patches as the default test set
    assert torch.equal(s10.clean, dm.test_sets["default"].clean)


@pytest.mark.parametrize(
    ("degradation", "severity", "level"),
    [(Interpolate(), 0.45, 3), (Interpolate(), 0.75, 5), (Resize(scale=2), 1.3, 3),
     (Resize(scale=2), 2.6, 5), (Resize(scale=2), 0.0, 1)],
)  # fmt: skip
def test_rate_and_blur_settings_pick_their_level(degradation, severity, level):
    dm = _dm(degradation, test_variants={"s": {"severity": severity}})
    dm.setup("test")
    es = dm.test_sets["s"]
    assert es.levels == [level]
    assert torch.allclose(es.params["severity"], torch.tensor(float(severity)))


def test_settings_outside_the_ladder_are_refused():
    with pytest.raises(ConfigError, match="test variant 'far'.*outside"):
        _dm(Inpaint(), test_variants={"far": {"severity": 50}})


def test_eval_seed_shares_the_test_pairs_across_training_seeds():
    a, b = _dm(Inpaint(), seed=1, eval_seed=7), _dm(Inpaint(), seed=2, eval_seed=7)
    c = _dm(Inpaint(), seed=2)
    for dm in (a, b, c):
        dm.setup("test")
    assert a.test_set.checksum == b.test_set.checksum  # the same pairs for both seeds
    assert a.test_set.checksum != c.test_set.checksum  # default: the training seed
    assert a.describe()["eval_seed"] == 7


def test_resize_to_resizes_whole_images_instead_of_cropping():
    dm = _dm(Inpaint(), crop_size=24, resize_to=24, train_samples_per_epoch=4)
    dm.setup()
    base = dm.source.split("test")
    resized = dm.images("test")
    assert resized.sizes() == [(24, 24)] * len(base)
    # an independent reference: Pillow's bicubic resize of the whole image
    img = base[0].permute(1, 2, 0).numpy()
    ref = np.asarray(Image.fromarray(img).resize((24, 24), Image.Resampling.BICUBIC))
    assert np.array_equal(resized[0].permute(1, 2, 0).numpy(), ref)
    # a 24 px crop of a 24 px image is the whole (resized) image
    es = dm.test_sets["default"]
    assert any(torch.equal(es.clean[0], resized[i]) for i in range(len(resized)))
    with pytest.raises(ConfigError, match="resize_to=16 is smaller than data.crop_size=24"):
        _dm(Inpaint(), crop_size=24, resize_to=16)


def test_weight_decay_on_weights_only(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=dlnet_inpaint")
    method = build(cfg)["method"]
    opt = method.configure_optimizers()["optimizer"]
    decay = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    named = dict(method.named_parameters())
    assert len(decay) == len(named)  # every parameter once
    for name, p in named.items():
        assert decay[id(p)] == (1e-4 if p.dim() > 1 else 0.0), name
    assert any(p.dim() == 1 for p in named.values())  # biases / BatchNorm exist
    assert opt.defaults["lr"] == 1e-3 and opt.defaults["betas"] == (0.9, 0.999)


def test_dlnet_experiments_follow_the_paper(tmp_path):
    inpaint = compose_cfg(tmp_path, "experiment=dlnet_inpaint", smoke=False)
    assert (inpaint.method.k, inpaint.method.gamma) == (5, 1e-3)
    assert inpaint.task.degradation.max_shift == 10 and inpaint.data.test_per_image == 10
    assert (inpaint.scheduler.step_size, inpaint.scheduler.gamma) == (200, 0.1)
    assert dict(inpaint.task.fixated.hard) == {"severity": 32, "centered": True}
    assert compose_cfg(tmp_path, "experiment=dlnet_inpaint_joint").method.k == 1
    interp = compose_cfg(tmp_path, "experiment=dlnet_interp")
    assert interp.method.gamma == 1e-2 and interp.task.fixated.hard.severity == 0.75
    for backbone in ("vdsr", "drrn", "idn"):
        for scale in (2, 3, 4):
            cfg = compose_cfg(tmp_path, f"experiment=dlnet_sr_{backbone}_x{scale}")
            assert cfg.task.name == f"srblur_x{scale}" and cfg.task.channels == 1
            assert cfg.method._target_.endswith("DLNet") and cfg.method.k == 5
    method = build(compose_cfg(tmp_path, "experiment=dlnet_sr_vdsr_x3"))["method"]
    assert method.model.lr_features and method.model.scale == 3


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_forward_model_is_the_noiseless_degradation(scale):
    deg = Resize(scale=scale)
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(3, 1, 24, 24, generator=g) * 0.8 + 0.1
    params = deg.sample(torch.tensor([1, 3, 5]), clean.shape[1:], g)
    assert torch.allclose(deg.operator(clean, params), deg.apply(clean, params))
    method = DLNet(_Bicubic(scale), torch.nn.MSELoss(), torch.optim.SGD, k=3, degradation=deg)
    from lightrestore.data.batch import RestorationBatch

    batch = RestorationBatch(clean, deg.apply(clean, params), torch.tensor([1, 3, 5]), params)
    assert torch.allclose(method.likelihood(clean, batch), torch.zeros(3), atol=1e-10)


class _Bicubic(torch.nn.Module):
    """A split model with one learnable conv on the HR grid (for the SR likelihood)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def features(self, x):
        return torch.nn.functional.interpolate(x, scale_factor=self.scale, mode="bicubic")

    def head(self, z, x):
        return self.conv(z)

    def forward(self, x):
        return self.head(self.features(x), x)


def _results(log_dir, task_name):
    runs = sorted((log_dir / task_name / "runs").iterdir())
    return json.loads((runs[-1] / "results.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "what"),
    [(["curriculum=ondemand"], "ondemand"), (["loss=pspl", "loss.batches_per_epoch=2"], "pspl")],
)  # fmt: skip
def test_dlnet_composes_with_ondemand_and_pspl(tmp_path, extra, what):
    out = run_cli("experiment=dlnet_inpaint", "debug=smoke", f"paths.log_dir={tmp_path}",
                  f"task_name=dlnet_{what}", "data.test_per_image=1", *extra, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    doc = _results(tmp_path, f"dlnet_{what}")
    assert set(doc["variants"]) == {"s10", "s20", "s30", "s20_centred"}
    assert doc["variants"]["s10"]["levels"].keys() == {"2"}
    cfg = (sorted((tmp_path / f"dlnet_{what}" / "runs").iterdir())[-1] / ".hydra" / "config.yaml")
    text = cfg.read_text()
    assert "OnDemandPolicy" in text if what == "ondemand" else "PSPLoss" in text
    assert "DLNet" in text
