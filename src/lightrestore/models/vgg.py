"""VGG-11 with batch normalisation (Simonyan & Zisserman 2015, configuration "A"), the
feature extractor of perceptual losses (the Golf Optimizer's, §5.2).

Written here (torchvision is not used) but laid out exactly like torchvision's
``vgg11_bn``, so that its ImageNet state dict (``vgg11_bn-8dd8db1b.pth``) loads unchanged.
``features`` is an ``nn.Sequential`` of (conv 3×3 pad 1 with bias, BatchNorm2d, ReLU) per
conv of the configuration and a 2×2 max-pool per ``"M"``, so its indices are:

* pool 1: conv 0 (3→64), BatchNorm 1, ReLU 2, max-pool 3;
* pool 2: conv 4 (→128), BatchNorm 5, ReLU 6, max-pool 7;
* pool 3: convs 8, 11 (→256), BatchNorms 9, 12, ReLUs 10, 13, max-pool 14;
* pool 4: convs 15, 18 (→512), BatchNorms 16, 19, ReLUs 17, 20, max-pool 21;
* pool 5: convs 22, 25 (→512), BatchNorms 23, 26, ReLUs 24, 27, max-pool 28.

The file's ``classifier.*`` (Linear at 0, 3, 6) is not
needed by a feature extractor and is ignored, as are the ``features.*`` keys past the last
pool kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightrestore.errors import ConfigError
from lightrestore.models.weights_file import few, read_state_file

#: VGG configuration "A" (VGG-11): output channels of each 3×3 conv, "M" a 2×2 max-pool
CFG_A: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")
N_POOLS = sum(1 for v in CFG_A if v == "M")
#: layers of the whole ``features`` (conv, BatchNorm, ReLU per conv; one per pool): 29
N_LAYERS = sum(3 if v != "M" else 1 for v in CFG_A)


def make_features(cfg: tuple[int | str, ...] = CFG_A, upto_pool: int = N_POOLS) -> nn.Sequential:
    """torchvision's ``make_layers(cfg, batch_norm=True)`` layout, cut after the
    ``upto_pool``-th max-pool (its index is the last of the ``Sequential``)."""
    layers: list[nn.Module] = []
    channels, pools = 3, 0
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            pools += 1
            if pools == upto_pool:
                break
        else:
            out = int(v)
            layers += [
                nn.Conv2d(channels, out, kernel_size=3, padding=1),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=False),
            ]
            channels = out
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """VGG-11-BN's ``features`` up to and including its ``upto_pool``-th max-pool
    (1..5): ``forward(x)`` is that pool's feature map, ``(B, C, H / 2^k, W / 2^k)``
    (floored at every pool). Its state dict keys are torchvision's (``features.0.weight``,
    ``features.1.running_mean``, ...)."""

    def __init__(self, upto_pool: int = N_POOLS) -> None:
        super().__init__()
        self.upto_pool = check_upto_pool(upto_pool)
        self.features = make_features(CFG_A, self.upto_pool)
        self.out_channels = [m for m in self.features if isinstance(m, nn.Conv2d)][-1].out_channels
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The random initialisation torchvision gives VGG: convs He-normal (fan-out, ReLU),
        zero biases; BatchNorm scale 1, shift 0 (a random VGG whose features keep their
        scale through the layers; seed the global RNG for a fixed one)."""
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)

    def extra_repr(self) -> str:
        return f"upto_pool={self.upto_pool}"


def check_upto_pool(upto_pool: Any) -> int:
    if (
        isinstance(upto_pool, bool)
        or not isinstance(upto_pool, int)
        or not 1 <= upto_pool <= N_POOLS
    ):
        raise ConfigError(
            f"upto_pool must be an integer from 1 to {N_POOLS} (VGG-11 has {N_POOLS} max-pools; "
            f"the Golf Optimizer's perceptual loss uses 5), got {upto_pool!r}"
        )
    return upto_pool


def vgg11_bn_features(upto_pool: int = N_POOLS) -> VGGFeatures:
    """A (randomly initialised) VGG-11-BN feature extractor up to and including max-pool
    ``upto_pool``; load ImageNet weights with :func:`load_vgg_state` / :func:`load_vgg_file`."""
    return VGGFeatures(upto_pool)


def load_vgg_state(
    model: VGGFeatures, state: Mapping[str, Any], source: str = "the state dict"
) -> None:
    """Load a torchvision-layout VGG-11-BN state dict into ``model``: the ``features.*``
    keys ``model`` has must all be there with the same shapes; ``classifier.*`` and the
    features past ``model``'s last pool are ignored. Anything else raises
    :class:`~lightrestore.errors.ConfigError` naming ``source`` and the keys."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ConfigError(
            f"{source} is not a state dict (a mapping of parameter names to tensors), but a "
            f"{type(state).__name__}: give torchvision's vgg11_bn file (e.g. vgg11_bn-8dd8db1b.pth)"
        )
    mine = model.state_dict()
    n_layers = len(model.features)

    def used(key: str) -> bool:  # a features.* key of a layer this model keeps
        parts = key.split(".")
        return (
            len(parts) >= 3
            and parts[0] == "features"
            and parts[1].isdigit()
            and int(parts[1]) < n_layers
        )

    def ignored(key: str) -> bool:
        parts = key.split(".")
        if parts[0] == "classifier":
            return True
        return (
            parts[0] == "features"
            and len(parts) >= 3
            and parts[1].isdigit()
            and n_layers <= int(parts[1]) < N_LAYERS
        )

    theirs = {k: v for k, v in state.items() if used(k)}
    missing = [k for k in mine if k not in theirs]
    unexpected = [k for k in state if not used(k) and not ignored(k)]
    unexpected += [k for k in theirs if k not in mine]
    wrong = [
        f"{k} {tuple(getattr(theirs[k], 'shape', ()))} (VGG-11-BN: {tuple(v.shape)})"
        for k, v in mine.items()
        if k in theirs and (not isinstance(theirs[k], Tensor) or theirs[k].shape != v.shape)
    ]
    if missing or unexpected or wrong:
        problems = []
        if missing:
            problems.append(f"missing {few(missing)}")
        if unexpected:
            problems.append(f"unexpected {few(unexpected)}")
        if wrong:
            problems.append(f"wrong shapes {few(wrong)}")
        hint = ""
        if state and not any(k.endswith("running_mean") for k in state):
            hint = (
                " (it has no BatchNorm statistics: is it VGG without batch normalisation, vgg11?)"
            )
        elif state and not any(k.startswith("features.") for k in state):
            hint = f" (no 'features.*' keys; its keys begin {few(list(state), 3)})"
        raise ConfigError(
            f"{source} does not fit VGG-11 with batch normalisation in torchvision's layout"
            f"{hint}: {'; '.join(problems)}. Use torchvision's vgg11_bn ImageNet weights "
            "(vgg11_bn-8dd8db1b.pth), a plain state dict"
        )
    with torch.no_grad():
        model.load_state_dict(theirs, strict=True)


def load_vgg_file(model: VGGFeatures, path: str | Path) -> None:
    """:func:`load_vgg_state` from a file saved with ``torch.save`` (read with
    ``weights_only=True``, onto the CPU)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"VGG-11-BN weights file '{path}' does not exist")
    state = read_state_file(
        path, "VGG-11-BN weights", "torchvision's vgg11_bn state dict (vgg11_bn-8dd8db1b.pth)"
    )
    load_vgg_state(model, state, source=f"VGG-11-BN weights '{path}'")


__all__ = [
    "CFG_A",
    "N_LAYERS",
    "N_POOLS",
    "VGGFeatures",
    "check_upto_pool",
    "load_vgg_file",
    "load_vgg_state",
    "make_features",
    "vgg11_bn_features",
]
