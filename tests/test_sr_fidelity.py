"""Fidelity of the SR protocol to the papers' code: 8-bit rounding before measuring."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio

from lightrestore.build import metric_settings
from lightrestore.methods.restoration import RestorationModule
from lightrestore.metrics.image_quality import measure_all, quantize_8bit
from lightrestore.metrics.sr import Y_COEFFS, measure_y

# ---------------------------------------------------------------------------- helpers


def sr_pair(b: int = 3, c: int = 3, h: int = 40, w: int = 36, noise: float = 2.0, seed: int = 0):
    """An 8-bit target and a float prediction ``noise`` grey levels (std) away from it."""
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 256, (b, c, h, w), generator=g).double() / 255
    pred = target + noise / 255 * torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    return pred.clamp(0, 1), target


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(H, W, C)`` uint8, rounded (an 8-bit output image)."""
    return np.clip(np.rint(x.permute(1, 2, 0).numpy() * 255), 0, 255).astype(np.uint8)


def sk_psnr_rounded_rgb(pred, target, border):
    """Reference: round the RGB output to uint8, then scikit-image's studio-range Y of the
    uint8 images (float, not rounded again: EDSR/BasicSR), PSNR on the cropped Y."""
    out = []
    for p, t in zip(pred, target):
        yp = rgb2ycbcr(to_uint8_hwc(p))[..., 0]  # uint8 input -> Y on 0..255 (float)
        yt = rgb2ycbcr(to_uint8_hwc(t))[..., 0]
        sl = (slice(border, -border), slice(border, -border)) if border else (slice(None),) * 2
        out.append(peak_signal_noise_ratio(yt[sl], yp[sl], data_range=255))
    return np.array(out)


# ---------------------------------------------------------------------------- 8-bit rounding


def test_quantize_8bit_is_round_to_255_levels():
    x = torch.tensor([-0.2, 0.0, 0.3 / 255, 0.6 / 255, 0.5, 254.4 / 255, 1.0, 1.7])
    expected = torch.tensor([0, 0, 0, 1, 128, 254, 255, 255]) / 255  # 127.5: half to even
    torch.testing.assert_close(quantize_8bit(x), expected)


@pytest.mark.parametrize("border", [0, 3])
def test_rounded_psnr_matches_skimage_on_rounded_uint8_images(border):
    pred, target = sr_pair(seed=border)
    got = measure_y(pred, target, border=border, quantize=True)["psnr"].numpy()
    np.testing.assert_allclose(got, sk_psnr_rounded_rgb(pred, target, border), atol=1e-4)


def test_rounding_changes_psnr_by_the_expected_small_amount():
    """Rounding adds uniform noise of variance 1/12 grey level² per RGB channel,
    independent of the error: on Y the MSE grows by sum(c_i²)/12 (c_i the rgb2ycbcr row
    in grey levels per unit), so PSNR drops by 10·log10(1 + that / MSE)."""
    pred, target = sr_pair(b=4, h=96, w=96, noise=2.0, seed=1)
    plain = measure_y(pred, target, border=2)
    rounded = measure_y(pred, target, border=2, quantize=True)
    mse_255 = plain["l2"].double() * 255**2  # Y MSE in grey levels²
    added = sum((c / 255) ** 2 for c in Y_COEFFS) / 12  # ≈ 0.0275 grey levels²
    expected_drop = 10 * torch.log10(1 + added / mse_255)
    drop = plain["psnr"].double() - rounded["psnr"].double()
    assert bool((drop > 0).all()) and bool((drop < 0.2).all())  # small, and a loss
    torch.testing.assert_close(drop, expected_drop, atol=0.02, rtol=0.15)


def test_rounding_off_leaves_psnr_unchanged():
    pred, target = sr_pair(seed=2)
    off = measure_y(pred, target, border=2, quantize=False)
    default = measure_y(pred, target, border=2)
    for name in ("psnr", "ssim", "l1", "l2"):
        torch.testing.assert_close(off[name], default[name], atol=0, rtol=0)
    # and it is the unrounded value, against scikit-image on the float Y
    yp = np.stack([rgb2ycbcr(p.permute(1, 2, 0).numpy())[..., 0] for p in pred])[:, 2:-2, 2:-2]
    yt = np.stack([rgb2ycbcr(t.permute(1, 2, 0).numpy())[..., 0] for t in target])[:, 2:-2, 2:-2]
    ref = [peak_signal_noise_ratio(t, p, data_range=255) for p, t in zip(yp, yt)]
    np.testing.assert_allclose(off["psnr"].numpy(), ref, atol=1e-4)
    # an output that is already 8-bit is not changed by the rounding
    exact = measure_y(quantize_8bit(pred), target, border=2, quantize=True)
    torch.testing.assert_close(exact["psnr"], measure_y(quantize_8bit(pred), target, border=2)["psnr"])


def test_one_channel_output_is_y_and_is_rounded_as_y():
    """A Y-channel model's output is rounded as Y (MATLAB: uint8(im_h * 255)); against
    scikit-image's PSNR on the uint8 Y images."""
    pred, target = sr_pair(c=1, seed=3)
    got = measure_y(pred, target, border=2, quantize=True)["psnr"].numpy()
    ref = [
        peak_signal_noise_ratio(to_uint8_hwc(t)[2:-2, 2:-2], to_uint8_hwc(p)[2:-2, 2:-2])
        for p, t in zip(pred, target)
    ]
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_measure_all_rounds_only_when_asked():
    pred, target = sr_pair(seed=4)
    plain, rounded = measure_all(pred, target), measure_all(pred, target, quantize=True)
    torch.testing.assert_close(rounded["l2"], measure_all(quantize_8bit(pred), target)["l2"])
    assert not torch.equal(plain["psnr"], rounded["psnr"])


# ---------------------------------------------------------------------------- plumbing


@pytest.mark.parametrize("task", ["sr_x2", "sr_x3", "sr_x4", "srblur_x2", "srblur_x3", "srblur_x4"])
def test_sr_tasks_round_to_8_bits(tmp_path, task):
    cfg = compose_cfg(tmp_path, f"task={task}")
    scale = int(task[-1])
    assert metric_settings(cfg.task) == {
        "metric_space": "y", "metric_border": scale, "metric_quantize": True
    }


@pytest.mark.parametrize("task", ["deblur", "denoise", "inpaint", "interp"])
def test_other_tasks_do_not_round(tmp_path, task):
    cfg = compose_cfg(tmp_path, f"task={task}")
    assert metric_settings(cfg.task)["metric_quantize"] is False


def _method(**kw):
    return RestorationModule(model=torch.nn.Identity(), loss=torch.nn.MSELoss(), optimizer=None, **kw)


def test_method_measures_with_the_option_and_says_so():
    pred, target = sr_pair(b=2, seed=5)
    level = torch.ones(2, dtype=torch.long)
    on = _method(metric_space="y", metric_border=2, metric_quantize=True)
    off = _method(metric_space="y", metric_border=2)
    assert on.metric_quantize and not off.metric_quantize
    results = {}
    for name, m in (("on", on), ("off", off)):
        m.val_metrics.update(pred.float(), target.float(), level)
        results[name] = m.val_metrics.compute()[1]["psnr"]
    ref = measure_y(pred.float(), target.float(), border=2, quantize=True)["psnr"].mean()
    assert math.isclose(results["on"], float(ref), abs_tol=1e-4)
    assert results["on"] != results["off"]
    assert "rounded to 8 bits" in on.protocol and "border of 2 px" in on.protocol
    assert "rounded" not in off.protocol
    rgb = _method(metric_quantize=True)
    assert rgb.protocol.startswith("PSNR/SSIM/L1/L2 on all channels") and "8 bits" in rgb.protocol
    assert _method().protocol == "PSNR/SSIM/L1/L2 on all channels"


# ---------------------------------------------------------------------------- Y-channel models

Y_MODELS = ("srcnn", "vdsr", "drrn", "lapsrn")
Y_EXPERIMENTS = [f"sr_{m}_x{s}{p}" for m in Y_MODELS for s in (2, 3, 4) for p in ("", "_pspl")]
RGB_EXPERIMENTS = [f"sr_edsr_x{s}{p}" for s in (2, 3, 4) for p in ("", "_pspl")]


def first_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))


def sk_y8(chw_u8: torch.Tensor) -> np.ndarray:
    """Independent Y: scikit-image's MATLAB-compatible rgb2ycbcr of the uint8 RGB image."""
    return rgb2ycbcr(chw_u8.permute(1, 2, 0).numpy())[..., 0]


@pytest.fixture(scope="module")
def composed(tmp_path_factory):
    from lightrestore.cli.train import build

    cache: dict = {}

    def get(*overrides: str):
        if overrides not in cache:
            cfg = compose_cfg(tmp_path_factory.mktemp("cfg"), *overrides)
            cache[overrides] = (cfg, build(cfg))
        return cache[overrides]

    return get


@pytest.mark.parametrize("experiment", Y_EXPERIMENTS)
def test_y_channel_experiments_build_1_channel_models_on_y_data(composed, experiment):
    from lightrestore.data.colour import ColourDataModule, ColourSource

    cfg, objs = composed(f"experiment={experiment}")
    method, dm = objs["method"], objs["datamodule"]
    assert cfg.task.channels == 1 and method.model.channels == 1
    assert first_conv(method.model).in_channels == 1
    assert isinstance(dm, ColourDataModule) and dm.colour == "ycbcr_y"
    assert isinstance(dm.source, ColourSource) and dm.source.channels == 1
    assert dm.source.source.channels == 3  # read as RGB, then converted
    assert dm.describe()["source"]["colour"] == "ycbcr_y"
    assert method.metric_space == "y" and method.metric_quantize


@pytest.mark.parametrize("experiment", RGB_EXPERIMENTS)
def test_edsr_experiments_stay_rgb(composed, experiment):
    from lightrestore.data.colour import ColourDataModule

    cfg, objs = composed(f"experiment={experiment}")
    method, dm = objs["method"], objs["datamodule"]
    assert cfg.task.channels == 3 and method.model.channels == 3
    assert first_conv(method.model).in_channels == 3
    assert not isinstance(dm, ColourDataModule) and dm.source.channels == 3


@pytest.mark.parametrize("experiment", ["sr_vdsr_x2", "sr_lapsrn_x4"])
def test_y_data_is_bt601_studio_y_of_the_rgb_crops(composed, experiment):
    """The Y experiment's training crops and evaluation pairs are MATLAB's rgb2ycbcr Y of
    the RGB experiment's (same seed, same photos, same crops), within 1/255 (the uint8
    rounding), and never Pillow's full-range grey."""
    _, y_objs = composed(f"experiment={experiment}")
    _, rgb_objs = composed(f"experiment={experiment}", "task.channels=3", "data.colour=rgb")
    dy, drgb = y_objs["datamodule"], rgb_objs["datamodule"]
    for dm in (dy, drgb):
        dm.setup("fit")
    for k in ((0, 0), (1, 5)):  # (epoch, position): a seeded crop and flip
        y, rgb = dy.train_set[k], drgb.train_set[k]
        assert y.dtype == torch.uint8 and y.shape == (1, *rgb.shape[1:]) and rgb.shape[0] == 3
        ref = sk_y8(rgb)
        assert np.abs(y[0].numpy().astype(np.float64) - ref).max() <= 0.5 + 1e-9  # rounding
        assert 16 <= int(y.min()) and int(y.max()) <= 235  # studio range
    cy, crgb = dy.val_set.clean, drgb.val_set.clean
    assert cy.shape[1] == 1 and crgb.shape[1] == 3
    for a, b in zip(cy[:3], crgb[:3]):
        assert np.abs(a[0].numpy().astype(np.float64) - sk_y8(b)).max() <= 1.0
    # Pillow's grey (a channels=1 source) is another conversion: it would not match
    from lightrestore.data.images import rgb_to_luma

    rgb = drgb.train_set[(0, 0)]
    grey = rgb_to_luma(rgb.permute(1, 2, 0).numpy())
    assert np.abs(grey.astype(np.float64) - sk_y8(rgb)).max() > 1.0


def test_ycbcr_y_conversion():
    from lightrestore.data.colour import Y_COEFFS as DATA_COEFFS
    from lightrestore.data.colour import ColourSource, convert, ycbcr_y
    from lightrestore.data.sources import EmbeddedSource
    from lightrestore.errors import ConfigError

    assert DATA_COEFFS == Y_COEFFS  # one convention for data and metric
    g = torch.Generator().manual_seed(0)
    rgb = torch.randint(0, 256, (3, 17, 19), generator=g, dtype=torch.uint8)
    y = ycbcr_y(rgb)
    assert y.shape == (1, 17, 19) and y.dtype == torch.uint8
    np.testing.assert_array_equal(y[0].numpy(), np.round(sk_y8(rgb)))
    ends = ycbcr_y(torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 1, 1))
    assert ends.flatten().tolist() == [16, 235]
    grey = torch.full((1, 2, 2), 255, dtype=torch.uint8)
    assert ycbcr_y(grey).flatten().tolist() == [235] * 4  # grey is R = G = B
    assert convert(rgb, "rgb") is rgb
    with pytest.raises(ConfigError):
        convert(rgb, "lab")
    with pytest.raises(ConfigError, match="data.source.channels=3"):
        ColourSource(EmbeddedSource(channels=1, load_size=64))


def test_measure_y_takes_1_channel_images_as_y():
    from lightrestore.metrics.image_quality import psnr, ssim

    pred, target = sr_pair(c=1, seed=6)
    got = measure_y(pred, target, border=2)
    crop = (Ellipsis, slice(2, -2), slice(2, -2))
    torch.testing.assert_close(got["psnr"], psnr(pred[crop], target[crop]))
    torch.testing.assert_close(got["ssim"], ssim(pred[crop], target[crop]))
    # the Y of an RGB pair measures as that Y given directly
    rgb_p, rgb_t = sr_pair(c=3, seed=7)
    from lightrestore.metrics.sr import rgb_to_y

    torch.testing.assert_close(
        measure_y(rgb_p, rgb_t, border=2)["psnr"],
        measure_y(rgb_to_y(rgb_p), rgb_to_y(rgb_t), border=2)["psnr"],
    )


def test_y_experiment_follows_the_data_group(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=sr_vdsr_x3", "data=sr_folder", "data.source.root=/x")
    assert cfg.data._target_ == "lightrestore.data.colour.ColourDataModule"
    assert cfg.data.colour == "ycbcr_y" and cfg.data.source.channels == 3
    assert cfg.data.source._target_.endswith("FolderSource")


# ---------------------------------------------------------------------------- LapSRN


def lapsrn_module(scale: int, loss: torch.nn.Module | None = None):
    from lightrestore.losses.pixel import PixelLoss
    from lightrestore.methods.lapsrn import LapSRNModule
    from lightrestore.models.sr import LapSRN

    torch.manual_seed(scale)
    model = LapSRN(scale, 1, depth=1, width=4)
    return LapSRNModule(model=model, loss=loss or PixelLoss("charbonnier"), optimizer=None)


def sr_batch(scale: int, b: int = 2, size: int = 24):
    from lightrestore.data.batch import RestorationBatch
    from lightrestore.degradations.resize import imresize

    g = torch.Generator().manual_seed(scale)
    clean = torch.rand(b, 1, size, size, generator=g)
    degraded = imresize(clean, scale=1 / scale).clamp(0, 1)
    return RestorationBatch(
        clean=clean, degraded=degraded, level=torch.ones(b, dtype=torch.long), params={}
    )


def charbonnier_np(a: np.ndarray, b: np.ndarray, eps: float = 1e-3) -> float:
    return float(np.mean(np.sqrt((a.astype(np.float64) - b) ** 2 + eps**2)))


def test_charbonnier_against_a_hand_computation():
    from lightrestore.losses.pixel import PixelLoss

    g = torch.Generator().manual_seed(0)
    pred, target = torch.rand(3, 2, 5, 4, generator=g), torch.rand(3, 2, 5, 4, generator=g)
    loss = PixelLoss("charbonnier")
    assert loss.eps == 1e-3
    per = loss.per_sample(pred, target)
    ref = [charbonnier_np(p.numpy(), t.numpy()) for p, t in zip(pred, target)]
    np.testing.assert_allclose(per.numpy(), ref, rtol=1e-6)
    assert math.isclose(float(loss(pred, target)), float(np.mean(ref)), rel_tol=1e-6)
    # equal images: eps, not 0 (robust L1, differentiable at 0)
    assert math.isclose(float(loss(pred, pred)), 1e-3, rel_tol=1e-6)
    assert math.isclose(float(PixelLoss("charbonnier", eps=0.5)(pred, pred)), 0.5, rel_tol=1e-6)


@pytest.mark.parametrize(("scale", "sizes"), [(2, [24]), (3, [24]), (4, [12, 24])])
def test_lapsrn_loss_has_one_term_per_pyramid_level(scale, sizes):
    """The loss is called once per level (x4: 2, x2 and x3: 1), against the HR image
    MATLAB-bicubic downscaled to the level; the training loss is their sum (by hand)."""
    from lightrestore.degradations.resize import imresize
    from lightrestore.losses.pixel import PixelLoss

    calls: list[tuple[torch.Tensor, torch.Tensor]] = []

    class Recording(PixelLoss):
        def forward(self, pred, target):
            calls.append((pred.detach().clone(), target.clone()))
            return super().forward(pred, target)

    method = lapsrn_module(scale, Recording("charbonnier"))
    batch = sr_batch(scale)
    losses = method.level_losses(batch)  # what training_step sums (and logs)
    loss = torch.stack(losses).sum().detach()
    assert len(losses) == len(sizes)
    assert [c[0].shape[-1] for c in calls] == sizes == [c[1].shape[-1] for c in calls]
    with torch.no_grad():
        outputs = method.model.forward_pyramid(batch.degraded)
    expected = 0.0
    for out, (pred, target), size in zip(outputs, calls, sizes):
        ref_t = batch.clean if size == 24 else imresize(batch.clean, scale=size / 24).clamp(0, 1)
        torch.testing.assert_close(target, ref_t)
        torch.testing.assert_close(pred, out)
        expected += charbonnier_np(out.numpy(), ref_t.numpy())
    assert math.isclose(float(loss), expected, rel_tol=1e-5)
    # the finest level is the model's output
    torch.testing.assert_close(outputs[-1], method(batch.degraded).detach())


def test_lapsrn_loss_per_level_under_hard_mining_and_pspl():
    from lightrestore.losses.hard_mining import set_hard_mining, topk_mean
    from lightrestore.losses.pixel import PixelLoss
    from lightrestore.losses.pspl import PSPLoss
    from lightrestore.methods.lapsrn import level_targets

    batch = sr_batch(4, b=4)
    method = lapsrn_module(4)
    set_hard_mining(method, 0.5)
    with torch.no_grad():
        loss = torch.stack(method.level_losses(batch)).sum()
        outputs = method.model.forward_pyramid(batch.degraded)
    base = PixelLoss("charbonnier")
    per_level = [
        topk_mean(base.per_sample(o, t), 0.5) for o, t in zip(outputs, level_targets(batch.clean, outputs))
    ]
    assert math.isclose(float(loss), float(sum(per_level)), rel_tol=1e-5)
    # PSPL wraps the configured loss: its weighted Charbonnier runs once per level
    pspl = PSPLoss(base="charbonnier", batches_per_epoch=10)
    pspl.set_optimizer_step(20)
    seen = []
    original = pspl.base.per_sample
    pspl.base.per_sample = lambda p, t: seen.append(p.shape[-1]) or original(p, t)
    method = lapsrn_module(4, pspl)
    method.level_losses(batch)
    assert seen == [12, 24]


def test_lapsrn_experiments_use_the_pyramid_loss(composed):
    from lightrestore.losses.pixel import PixelLoss
    from lightrestore.losses.pspl import PSPLoss
    from lightrestore.methods.lapsrn import LapSRNModule

    for scale in (2, 3, 4):
        _, objs = composed(f"experiment=sr_lapsrn_x{scale}")
        method = objs["method"]
        assert type(method) is LapSRNModule and method.method_name == "lapsrn"
        assert type(method.loss) is PixelLoss and method.loss.kind == "charbonnier"
        assert method.loss.eps == 1e-3
        _, objs = composed(f"experiment=sr_lapsrn_x{scale}_pspl")
        loss = objs["method"].loss
        assert type(objs["method"]) is LapSRNModule
        assert type(loss) is PSPLoss and loss.base.kind == "charbonnier"
    with pytest.raises(Exception, match="forward_pyramid"):
        from lightrestore.methods.lapsrn import LapSRNModule as M

        M(model=torch.nn.Identity(), loss=PixelLoss("l1"), optimizer=None)


# ---------------------------------------------------------------------------- PSPL settings


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_pspl_experiments_use_the_pspl_authors_models(tmp_path, scale):
    """PSPL's code: DRRN B1U25 without BatchNorm (ReLU, on the bicubic image, no concat),
    on Y; Table 1's EDSR is the full model. DL-Net's DRRN (B1U9 + concat, BN) stays the
    plain DRRN experiments' model."""
    from hydra.utils import instantiate

    from lightrestore.models.sr import DRRN

    cfg = compose_cfg(tmp_path, f"experiment=sr_drrn_x{scale}_pspl", smoke=False)
    m = cfg.model
    assert m._target_ == "lightrestore.models.sr.DRRN"
    assert (m.num_units, m.width, m.batch_norm, m.negative_slope) == (25, 128, False, 0.0)
    assert (m.concat_every, m.lr_features) == (0, False)
    assert cfg.task.channels == 1 and cfg.loss._target_.endswith("PSPLoss")
    net = instantiate(m)
    assert isinstance(net, DRRN) and net.num_units == 25 and net.channels == 1
    assert not any(isinstance(x, torch.nn.BatchNorm2d) for x in net.modules())

    plain = instantiate(compose_cfg(tmp_path, f"experiment=sr_drrn_x{scale}", smoke=False).model)
    assert (plain.num_units, plain.batch_norm, plain.concat_every) == (9, True, 3)  # DL-Net's
    assert plain.negative_slope == 0.05 and plain.lr_features

    edsr = compose_cfg(tmp_path, f"experiment=sr_edsr_x{scale}_pspl", smoke=False)
    assert edsr.model._target_ == "lightrestore.models.sr.EDSR"
    assert (edsr.model.num_blocks, edsr.model.width, edsr.model.res_scale) == (32, 256, 0.1)
    assert edsr.task.channels == 3 and edsr.loss.base == "l1"
