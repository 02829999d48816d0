"""The Golf Optimizer's content + perceptual loss (§5.2): VGG-11-BN in torchvision's layout,
its weights loaded lazily from a torchvision state dict, frozen and kept out of the
method's checkpoints (restore does not need the weights file)."""

from __future__ import annotations

import warnings

import pytest
import torch
from helpers import compose_cfg

from lightrestore.build import build, build_from_checkpoint
from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.losses.perceptual import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ContentPerceptualLoss,
    PerceptualLoss,
)
from lightrestore.losses.pixel import PixelLoss
from lightrestore.models.vgg import N_LAYERS, load_vgg_file, vgg11_bn_features
from lightrestore.storage.checkpoints import load_checkpoint

# torchvision's vgg11_bn: features = (conv, BatchNorm2d, ReLU) per conv, MaxPool2d per "M"
CONVS = {0: (3, 64), 4: (64, 128), 8: (128, 256), 11: (256, 256),
         15: (256, 512), 18: (512, 512), 22: (512, 512), 25: (512, 512)}  # fmt: skip
POOLS = (3, 7, 14, 21, 28)

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: threads only add overhead


def _images(seed: int = 0, size: int = 32, channels: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(2, channels, size, size, generator=g), torch.rand(
        2, channels, size, size, generator=g
    )


def _random_vgg(seed: int = 1):
    """A VGG-11-BN with random weights and random BatchNorm statistics, in eval mode."""
    torch.manual_seed(seed)
    vgg = vgg11_bn_features(5)
    with torch.no_grad():
        for m in vgg.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
                m.num_batches_tracked.fill_(1000)
    return vgg.eval()


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A torchvision-layout vgg11_bn file (features of a random VGG + classifier keys,
    shrunk: they are ignored) and the model it came from."""
    vgg = _random_vgg()
    state = dict(vgg.state_dict())
    state.update(
        {f"classifier.{i}.{p}": torch.randn(4, 3) for i in (0, 3, 6) for p in ("weight", "bias")}
    )
    path = tmp_path_factory.mktemp("vgg") / "vgg11_bn-8dd8db1b.pth"
    torch.save(state, path)
    return path, vgg, state


# ---------------------------------------------------------------------- VGG-11-BN
def test_the_layout_is_torchvisions_vgg11_bn_and_pool_5_is_512_by_h_over_32():
    vgg = vgg11_bn_features(5)
    keys = set(vgg.state_dict())
    want = set()
    for i, (cin, cout) in CONVS.items():
        want |= {f"features.{i}.weight", f"features.{i}.bias"}
        assert tuple(vgg.features[i].weight.shape) == (cout, cin, 3, 3)
        assert vgg.features[i].padding == (1, 1)
        bn = vgg.features[i + 1]
        assert isinstance(bn, torch.nn.BatchNorm2d) and bn.num_features == cout
        assert isinstance(vgg.features[i + 2], torch.nn.ReLU)
        want |= {
            f"features.{i + 1}.{k}"
            for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
        }
    assert keys == want and len(vgg.features) == N_LAYERS == 29
    assert all(isinstance(vgg.features[i], torch.nn.MaxPool2d) for i in POOLS)
    assert [len(vgg11_bn_features(k).features) for k in range(1, 6)] == [p + 1 for p in POOLS]
    with torch.no_grad():
        assert vgg.eval()(torch.rand(2, 3, 64, 64)).shape == (2, 512, 2, 2)
        assert vgg11_bn_features(3).eval()(torch.rand(2, 3, 64, 64)).shape == (2, 256, 8, 8)
    with pytest.raises(ConfigError, match="upto_pool"):
        vgg11_bn_features(6)
    x = torch.rand(2, 3, 64, 64)
    assert PerceptualLoss(random_weights=True).features(x).shape == (2, 512, 2, 2)


def test_a_torchvision_layout_file_loads_classifier_ignored_same_features(vgg_file):
    path, vgg, _ = vgg_file
    fresh = vgg11_bn_features(5)
    load_vgg_file(fresh, path)  # classifier.* in the file: ignored
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), vgg(x))
        # the loss normalises with ImageNet's mean / std, then the same features
        loss = PerceptualLoss(weights=str(path))
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        assert torch.allclose(loss.features(x), vgg((x - mean) / std), atol=1e-6)
        # a shorter extractor takes the first keys only
        short = vgg11_bn_features(2)
        load_vgg_file(short, path)
        assert torch.equal(short.eval()(x), vgg.features[:8](x))


def test_a_file_that_does_not_fit_fails_clearly(vgg_file, tmp_path):
    _, _, state = vgg_file
    broken = {k: v for k, v in state.items() if k != "features.23.running_var"}
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(ConfigError, match=r"missing features\.23\.running_var") as err:
        load_vgg_file(vgg11_bn_features(5), tmp_path / "missing.pth")
    assert "missing.pth" in str(err.value) and "vgg11_bn" in str(err.value)
    loss = PerceptualLoss(weights=str(tmp_path / "missing.pth"))
    with pytest.raises(ConfigError, match=r"features\.23\.running_var"):
        loss(*_images())
    # a VGG without batch normalisation (vgg11): wrong shapes / missing statistics
    plain = {"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64),
             "features.3.weight": torch.zeros(128, 64, 3, 3)}  # fmt: skip
    torch.save(plain, tmp_path / "vgg11.pth")
    with pytest.raises(ConfigError, match="without batch normalisation"):
        load_vgg_file(vgg11_bn_features(5), tmp_path / "vgg11.pth")
    # a deeper VGG's layers past VGG-11-BN's 29 are not ignored
    torch.save(dict(state, **{"features.29.weight": torch.zeros(1)}), tmp_path / "deep.pth")
    with pytest.raises(ConfigError, match=r"unexpected features\.29\.weight"):
        load_vgg_file(vgg11_bn_features(5), tmp_path / "deep.pth")
    shape = dict(state, **{"features.4.weight": torch.zeros(128, 32, 3, 3)})
    torch.save(shape, tmp_path / "shape.pth")
    with pytest.raises(ConfigError, match=r"wrong shapes features\.4\.weight"):
        load_vgg_file(vgg11_bn_features(5), tmp_path / "shape.pth")


def test_no_weights_is_a_config_error_naming_the_path_and_the_key(tmp_path):
    gone = tmp_path / "nowhere" / "vgg11_bn-8dd8db1b.pth"
    with pytest.warns(UserWarning, match="does not exist"):  # cheap check at construction
        loss = PerceptualLoss(weights=str(gone))
    with pytest.raises(ConfigError) as err:
        loss(*_images())
    text = str(err.value)
    assert str(gone) in text and "loss.perceptual.weights=<path>" in text
    assert "VGG-11" in text and "vgg11_bn-8dd8db1b.pth" in text and "state-dict" in text
    with pytest.raises(
        ConfigError, match=r"no VGG-11-BN weights given.*loss\.perceptual\.weights="
    ):
        PerceptualLoss(weights=None)(*_images())


# ---------------------------------------------------------------------- the loss
def test_zero_for_identical_images_positive_otherwise_and_grey_is_repeated():
    loss = PerceptualLoss(random_weights=True)
    a, b = _images()
    assert loss(a, a).item() == 0.0 and torch.equal(loss.per_sample(a, a), torch.zeros(2))
    per = loss.per_sample(a, b)
    assert per.shape == (2,) and (per > 0).all() and torch.allclose(loss(a, b), per.mean())
    # the Johnson et al. distance by hand: ||phi(a) - phi(b)||^2 / (C H W) per sample
    fa, fb = loss.features(a), loss.features(b)
    c, h, w = fa.shape[1:]
    assert torch.allclose(per, ((fa - fb) ** 2).sum(dim=(1, 2, 3)) / (c * h * w))
    ga, gb = _images(channels=1)
    assert torch.allclose(
        loss.per_sample(ga, gb), loss.per_sample(ga.repeat(1, 3, 1, 1), gb.repeat(1, 3, 1, 1))
    )
    with pytest.raises(ConfigError, match="at least 32x32"):
        loss(*_images(size=16))
    # seeded: the same random VGG every time, the global RNG untouched
    state = torch.get_rng_state()
    assert torch.equal(PerceptualLoss(random_weights=True).per_sample(a, b), per)
    assert torch.equal(torch.get_rng_state(), state)


def test_gradients_reach_the_prediction_not_the_vgg_and_nothing_is_in_state_dict():
    loss = PerceptualLoss(random_weights=True)
    a, b = _images()
    pred = a.clone().requires_grad_(True)
    loss(pred, b).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0
    net = loss.network()
    assert all(p.grad is None and not p.requires_grad for p in net.parameters())
    assert not net.training
    # the VGG is outside the module tree: no parameters, buffers, state-dict keys
    assert loss.state_dict() == {} and not list(loss.parameters()) and not list(loss.buffers())
    loss.train()
    assert not loss.network().training  # BatchNorm stays in eval mode
    # .to() moves are harmless: the VGG follows the input at each call
    loss.to(torch.float64)
    assert loss(a.double(), b.double()).dtype == torch.float64
    assert loss(a, b).dtype == torch.float32


def test_content_plus_lambda_perceptual_by_hand():
    content, perceptual = PixelLoss("l2"), PerceptualLoss(random_weights=True)
    total = ContentPerceptualLoss(content, perceptual, lam=0.3)
    a, b = _images()
    want = ((a - b) ** 2).mean() + 0.3 * perceptual(a, b)
    assert torch.allclose(total(a, b), want)
    terms = total.log_values()
    assert set(terms) == {"content", "perceptual", "weighted_perceptual"}
    assert torch.allclose(terms["content"], ((a - b) ** 2).mean())
    assert torch.allclose(terms["weighted_perceptual"], 0.3 * terms["perceptual"])
    per = total.per_sample(a, b)
    assert per.shape == (2,)
    hand = ((a - b) ** 2).flatten(1).mean(1) + 0.3 * perceptual.per_sample(a, b)
    assert torch.allclose(per, hand) and torch.allclose(per.mean(), total(a, b))
    with pytest.raises(ConfigError, match="lam"):
        ContentPerceptualLoss(content, perceptual, lam=-1.0)


# ---------------------------------------------------------------------- in a method
def _quiet():
    warnings.filterwarnings(
        "ignore", message=".*(does not have many workers|LitLogger|eval mode).*"
    )


def test_a_method_trains_with_it_and_restores_without_the_weights_file(vgg_file, tmp_path):
    _quiet()
    cfg = compose_cfg(tmp_path / "a", "loss=perceptual", "loss.perceptual.random_weights=true")
    method = build(cfg)["method"]
    assert isinstance(method.loss, ContentPerceptualLoss) and method.loss.lam == 1.0e-2
    assert not any("vgg" in k or k.startswith("loss.") for k in method.state_dict())

    # train one step with a weights file, save, remove the file, rebuild and restore
    _, _, state = vgg_file
    weights = tmp_path / "vgg11_bn-8dd8db1b.pth"
    torch.save(state, weights)
    fast = ("trainer.max_epochs=1", "data.val_per_level=1",
            "data.batch_size=2", "data.train_samples_per_epoch=2")  # fmt: skip
    cfg = compose_cfg(
        tmp_path / "b", "loss=perceptual", f"loss.perceptual.weights={weights}", *fast
    )
    objs = build(cfg)
    method, trainer = objs["method"], objs["trainer"]
    before = {k: v.clone() for k, v in method.state_dict().items()}
    trainer.fit(method, datamodule=objs["datamodule"])
    assert trainer.global_step == 1
    assert any(not torch.equal(before[k], v) for k, v in method.state_dict().items() if k in before)
    assert set(method.loss.log_values()) == {"content", "perceptual", "weighted_perceptual"}
    assert "train/ContentPerceptualLoss/perceptual" in trainer.logged_metrics
    ckpt_path = tmp_path / "one.ckpt"
    trainer.save_checkpoint(ckpt_path)
    ckpt = load_checkpoint(ckpt_path)  # as evaluate / restore read it
    assert set(ckpt["state_dict"]) == set(method.state_dict())
    assert not any("vgg" in k or k.startswith("loss.") for k in ckpt["state_dict"])

    weights.unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "weights file does not exist"
        restored = build_from_checkpoint(ckpt, ckpt_path)  # what evaluate / restore do
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = restored.restore(RestorationBatch.of_degraded(x))
    assert out.shape == x.shape and torch.isfinite(out).all()
