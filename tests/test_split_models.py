"""Every model config follows the DL-Net split contract (lightrestore.models.split).

``forward(x) == head(features(x), x)``; ``z = features(x)`` is differentiable and
``head`` depends on it; ``head``'s own parameters are one conv module (LapSRN: its
residual conv plus the image-reconstruction path, as its docstring states); and
:func:`check_split` rejects models that break the contract.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import Tensor, nn

from lightrestore.config import config_dir
from lightrestore.models import SplitModel, check_split
from lightrestore.models.lira import LiraBaseNet
from lightrestore.models.odl_autoencoder import ODLAutoencoder
from lightrestore.models.sr import (
    DRRN,
    EDSR,
    IDN,
    SRCNN,
    VDSR,
    LapSRN,
    bicubic_upsample,
    drrn_original,
    vdsr_dlnet,
)

MODEL_CONFIGS = sorted((config_dir() / "model").glob("*.yaml"))

# tiny sizes per config: the architecture (every layer type, the split point) stays
TINY: dict[str, dict] = {
    "odl_autoencoder": {"width": 4},
    "sr_drrn": {"width": 8, "num_units": 3, "fuse_channels": 4},
    "sr_drrn_b1u25": {"width": 8, "num_units": 3},
    "sr_edsr": {"num_blocks": 2, "width": 8},
    "sr_edsr_baseline": {"num_blocks": 2, "width": 8},
    "sr_idn": {"width": 16, "delta": 4, "num_blocks": 2},
    "sr_lapsrn": {"width": 8, "depth": 2},
    "sr_srcnn": {"width": 8},
    "sr_vdsr": {"width": 8, "depth": 3},
    "lira_base": {"width": 8, "blocks": 2},
}

# variants the configs do not select but the factories / arguments offer
VARIANTS: dict[str, Callable[[int, int], nn.Module]] = {
    "vdsr_dlnet_lr_grid": lambda s, c: vdsr_dlnet(s, c),
    "drrn_original": lambda s, c: drrn_original(s, c),
    "drrn_no_batchnorm": lambda s, c: DRRN(s, c, width=8, num_units=3, batch_norm=False),
}
VARIANT_TINY = {
    "vdsr_dlnet_lr_grid": {"depth": 3, "width": 8},
    "drrn_original": {"width": 8, "num_units": 2},
}

# the one conv that is h's learned part, by class
HEAD_CONV = {
    ODLAutoencoder: "head_conv",
    SRCNN: "conv3",
    VDSR: "last",
    DRRN: "last",
    IDN: "rblock",
    EDSR: "conv_out",
    LiraBaseNet: "decoder.body.6",
}

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


# tiny tensors: intra-op threading only adds overhead (10-50x on a busy 2-core box)
pytestmark = pytest.mark.usefixtures("one_thread")


def build_from_config(path: Path, scale: int, channels: int, size: int) -> nn.Module:
    """Instantiate ``conf/model/<path>`` with ``task``/``data`` values and tiny sizes."""
    node = OmegaConf.load(path)
    cfg = OmegaConf.create(
        {
            "task": {"scale": scale, "channels": channels},
            "data": {"crop_size": size},
            "model": node,
        }
    )
    for key, value in TINY.get(path.stem, {}).items():  # a new config runs at its own size
        cfg.model[key] = value
    return instantiate(cfg.model)


def cases() -> list[tuple[str, int, int]]:
    out = []
    for path in MODEL_CONFIGS:
        target = OmegaConf.load(path)["_target_"]
        if target.endswith("LiraForkNet"):  # a stage's network, routed by the distortion
            continue
        if target.endswith(("ODLAutoencoder", "LiraBaseNet")):
            out += [(path.stem, 1, c) for c in (1, 3)]
        else:
            out += [(path.stem, s, c) for s in (2, 3, 4) for c in (1, 3)]
    out += [(name, s, 1) for name in VARIANTS for s in (2, 4)]
    return out


def make(name: str, scale: int, channels: int) -> tuple[nn.Module, Tensor]:
    torch.manual_seed(0)
    if name in VARIANTS:
        model = VARIANTS[name](scale, channels)
        if name in VARIANT_TINY:  # rebuild the factory's model at a tiny size
            model = type(model)(scale, channels, **{**_factory_kwargs(model), **VARIANT_TINY[name]})
        x = torch.rand(2, channels, 8, 6)
        return model, x
    path = config_dir() / "model" / f"{name}.yaml"
    size = 16
    model = build_from_config(path, scale, channels, size)
    if isinstance(model, ODLAutoencoder):
        x = torch.rand(2, channels, size, size)
    else:
        x = torch.rand(2, channels, 8, 6)
    return model, x


def _factory_kwargs(model: nn.Module) -> dict:
    """The architecture switches a factory set, to rebuild the model smaller."""
    if isinstance(model, VDSR):
        return {"lr_features": model.lr_features}
    if isinstance(model, DRRN):
        return {
            "negative_slope": model.negative_slope,
            "concat_every": model.concat_every,
            "lr_features": model.lr_features,
            "batch_norm": model.batch_norm,
        }
    raise AssertionError(type(model))


def expected_head_parameters(model: nn.Module, x: Tensor) -> set[str]:
    """Names of ``head``'s parameters as each model's docstring states them."""
    if isinstance(model, LapSRN):
        n = len(model.levels)
        last = f"levels.{n - 1}"
        names = {f"{last}.residual.{p}" for p, _ in model.levels[-1].residual.named_parameters()}
        names |= {f"{last}.image_up.{p}" for p, _ in model.levels[-1].image_up.named_parameters()}
        if n > 1:  # the previous level's image is that level's full output
            names |= {
                name
                for name, _ in model.named_parameters()
                if name.startswith("input_conv.")
                or any(name.startswith(f"levels.{i}.") for i in range(n - 1))
            }
        return names
    attr = next((a for cls, a in HEAD_CONV.items() if isinstance(model, cls)), None)
    if attr is None:  # a model this file does not know: its head's conv, whichever it is
        return head_parameters(model, model.features(x).detach().requires_grad_(True), x)
    conv = model.get_submodule(attr)  # a dotted path for nested heads (LIRA)
    assert isinstance(conv, CONVS), f"{type(model).__name__}.{attr} is not a conv"
    return {f"{attr}.{p}" for p, _ in conv.named_parameters()}


def head_parameters(model: nn.Module, z: Tensor, x: Tensor) -> set[str]:
    """Names of the parameters that ``head(z, x)``'s output depends on (autograd)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    out = model.head(z, x)
    grads = torch.autograd.grad(out.sum(), [p for _, p in named], allow_unused=True)
    return {n for (n, _), g in zip(named, grads, strict=True) if g is not None}


def conv_modules_of(model: nn.Module, names: set[str]) -> list[str]:
    """The conv modules whose parameters ``names`` cover exactly, one by one."""
    owners = []
    for mname, module in model.named_modules():
        if isinstance(module, CONVS):
            own = {f"{mname}.{p}" for p, _ in module.named_parameters(recurse=False)}
            if own and own <= names:
                owners.append(mname)
    covered = {f"{m}.{p}" for m in owners for p, _ in model.get_submodule(m).named_parameters()}
    assert covered == names, f"head parameters outside conv modules: {sorted(names - covered)}"
    return owners


def assert_split_contract(model: nn.Module, x: Tensor) -> None:
    """Every assertion this file makes about one model (used on broken models too)."""
    assert isinstance(model, SplitModel), f"{type(model).__name__} is not a SplitModel"
    for train in (False, True):  # BatchNorm: batch statistics and running statistics
        model.train(train)
        with torch.no_grad():
            y = model(x)
            y_split = model.head(model.features(x), x)
        torch.testing.assert_close(y_split, y)
    model.eval()
    z = model.features(x)
    assert z.requires_grad and z.shape[0] == x.shape[0]
    # before its activation: a ReLU'd z would have no negative values
    assert float(z.min()) < 0, "z looks activated already (no negative values)"
    out = model.head(z, x)
    assert out.requires_grad, "head's output does not depend on z"
    (grad,) = torch.autograd.grad(out.square().sum(), z, allow_unused=True)
    assert grad is not None and grad.abs().sum() > 0, "the output does not depend on z"
    used = head_parameters(model, z.detach().requires_grad_(True), x)
    assert used == expected_head_parameters(model, x)
    owners = conv_modules_of(model, used)
    if not isinstance(model, LapSRN):
        assert len(owners) == 1, f"head uses {len(owners)} conv modules: {owners}"


@pytest.mark.parametrize(("name", "scale", "channels"), cases())
def test_model_follows_split_contract(name, scale, channels):
    model, x = make(name, scale, channels)
    assert_split_contract(model, x)
    check_split(model.train(), x)
    check_split(model.eval(), x)
    if hasattr(model, "scale"):
        assert model.scale == scale
    with torch.no_grad():
        out = model(x)
    assert out.shape == (x.shape[0], channels, x.shape[2] * scale, x.shape[3] * scale)


def test_configs_are_found_and_shrunk():
    # the parametrisation above is not empty, and the tiny sizes name real configs
    stems = {p.stem for p in MODEL_CONFIGS}
    assert {"odl_autoencoder", "sr_srcnn", "sr_vdsr", "sr_edsr"} <= stems
    assert set(TINY) <= stems


def test_lapsrn_head_reads_the_image_path_from_x():
    # LapSRN's documented exception: head's x path is learned, its z path is one conv
    torch.manual_seed(0)
    model = LapSRN(2, 1, depth=2, width=8).eval()
    x = torch.rand(1, 1, 8, 6)
    z = model.features(x).detach()
    with torch.no_grad():
        a = model.head(z, x)
        model.levels[-1].image_up.weight.mul_(2.0)
        b = model.head(z, x)
    assert not torch.equal(a, b)


# ------------------------------------------------------------------ negative tests


class _Good(nn.Module):
    """A minimal split model: conv -> BN -> (ReLU, conv) + x."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.last = nn.Conv2d(4, 1, 3, padding=1)

    def features(self, x: Tensor) -> Tensor:
        return self.bn(self.body(x))

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        return self.last(torch.relu(z)) + x

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x), x)


class _NoHead(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def features(self, x: Tensor) -> Tensor:
        return self.conv(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class _OldHead(_Good):
    def head(self, z: Tensor) -> Tensor:  # type: ignore[override]
        return self.last(torch.relu(z))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class _ForwardDiffers(_Good):
    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x), x) + 1e-3


class _HeadIgnoresZ(_Good):
    def head(self, z: Tensor, x: Tensor) -> Tensor:
        return bicubic_upsample(x, 1) + 0.0 * self.last(torch.relu(z)).detach()


class _HeadDetachesZ(_Good):
    def head(self, z: Tensor, x: Tensor) -> Tensor:
        return self.last(torch.relu(z.detach())) + x


class _HeadInPlace(_Good):
    def head(self, z: Tensor, x: Tensor) -> Tensor:
        return self.last(torch.relu_(z)) + x


class _TwoConvHead(_Good):
    def __init__(self) -> None:
        super().__init__()
        self.extra = nn.Conv2d(1, 1, 1)

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        return self.extra(self.last(torch.relu(z))) + x


def _x() -> Tensor:
    torch.manual_seed(0)
    return torch.rand(2, 1, 6, 5)


def test_check_split_accepts_a_conforming_model_and_restores_buffers():
    m = _Good().train()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    check_split(m, _x())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


@pytest.mark.parametrize(
    ("cls", "error", "match"),
    [
        (_NoHead, TypeError, "missing `head`"),
        (_OldHead, TypeError, r"head\(z, x\)"),
        (_ForwardDiffers, ValueError, "differs"),
        (_HeadIgnoresZ, ValueError, "does not depend|ignores z"),
        (_HeadDetachesZ, ValueError, "does not depend|ignores z"),
        (_HeadInPlace, ValueError, "in place"),
    ],
)
def test_check_split_rejects(cls, error, match):
    with pytest.raises(error, match=match):
        check_split(cls().eval(), _x())


def test_missing_head_is_not_a_split_model():
    assert isinstance(_Good(), SplitModel)
    assert not isinstance(_NoHead(), SplitModel)


def test_check_split_tolerance():
    # a difference below atol passes, above fails
    class Tiny(_Good):
        def forward(self, x: Tensor) -> Tensor:
            return self.head(self.features(x), x) + 1e-7

    check_split(Tiny().eval(), _x(), atol=1e-6, rtol=0.0)
    with pytest.raises(ValueError, match="differs"):
        check_split(Tiny().eval(), _x(), atol=1e-8, rtol=0.0)


@pytest.mark.parametrize("cls", [_ForwardDiffers, _HeadIgnoresZ, _HeadDetachesZ, _TwoConvHead])
def test_contract_assertions_can_fail(cls, monkeypatch):
    # the assertions the config tests rely on catch each kind of broken model
    monkeypatch.setitem(HEAD_CONV, _Good, "last")
    assert_split_contract(_Good(), _x())  # the conforming model passes
    with pytest.raises(AssertionError):
        assert_split_contract(cls(), _x())
