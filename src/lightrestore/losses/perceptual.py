"""The Golf Optimizer's training loss (§5.2): content MSE + λ · perceptual loss.

The perceptual term is Johnson et al.'s feature reconstruction loss
``‖φ(pred) − φ(target)‖² / (C·H·W)``, ``φ`` the 5th max-pooled feature map of an ImageNet
VGG-11 with batch normalisation (:mod:`lightrestore.models.vgg`).

The VGG is a fixed measuring instrument, not part of the trained method: it is kept out
of the module tree (no parameters, no state-dict keys, untouched by ``method.to()`` /
``train()`` / ``eval()``), loaded lazily at the first call onto the input's device and
dtype, and never needed to rebuild a method from its checkpoint (``evaluate``,
``restore``), which do not call the training loss.

Its weights are torchvision's ``vgg11_bn`` ImageNet state dict (``vgg11_bn-8dd8db1b.pth``
from PyTorch's model zoo), which the user downloads beforehand (nothing downloads at run
time) and names with ``loss.perceptual.weights=<path>``; ``random_weights=true`` uses a
seeded random VGG instead (tests, smoke runs: not a perceptual loss).
"""

from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from lightrestore.errors import ConfigError
from lightrestore.models.vgg import VGGFeatures, check_upto_pool, load_vgg_file, vgg11_bn_features

log = logging.getLogger("lightrestore")

#: torchvision's ImageNet normalisation (the VGG was trained on images normalised so)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: the file name of torchvision's vgg11_bn ImageNet weights
VGG11_BN_FILE = "vgg11_bn-8dd8db1b.pth"
#: the config key naming the weights (conf/loss/perceptual.yaml)
WEIGHTS_KEY = "loss.perceptual.weights"


def weights_help(path: str | None) -> str:
    """What is wrong with ``path`` and how to give the weights."""
    what = (
        f"VGG-11-BN weights file '{path}' does not exist" if path else "no VGG-11-BN weights given"
    )
    return (
        f"perceptual loss: {what}. It needs VGG-11 with batch normalisation ImageNet weights in "
        f"PyTorch's state-dict layout: torchvision's vgg11_bn file ({VGG11_BN_FILE}), downloaded "
        "beforehand from PyTorch's model zoo (https://download.pytorch.org/models/"
        f"{VGG11_BN_FILE}; nothing downloads at run time). Give it with "
        f"{WEIGHTS_KEY}=<path>, or {WEIGHTS_KEY.rsplit('.', 1)[0]}.random_weights=true for a "
        "smoke run with a random VGG (not a perceptual loss)"
    )


class _Normalised(nn.Module):
    """ImageNet normalisation, then the VGG features (moved together)."""

    def __init__(self, vgg: VGGFeatures) -> None:
        super().__init__()
        self.vgg = vgg
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return self.vgg((x - self.mean) / self.std)


class PerceptualLoss(nn.Module):
    """Mean squared difference of VGG-11-BN features after max-pool ``upto_pool``.

    Inputs are ``(B, 3, H, W)`` (or ``(B, 1, H, W)``, repeated to RGB) in [0, 1];
    ImageNet mean/std normalisation is applied inside. ``per_sample(pred, target)`` is
    ``‖φ(pred) − φ(target)‖² / (C·H·W)`` per image, ``(B,)``; ``forward`` is its mean.
    Images need at least ``2**upto_pool`` pixels a side (32 for pool 5).

    Args:
        weights: torchvision's ``vgg11_bn`` ImageNet state dict (``vgg11_bn-8dd8db1b.pth``),
            read at the first call; ``None`` is an error then unless ``random_weights``.
        upto_pool: the max-pool whose output is compared, 1..5 (the paper: 5).
        random_weights: a seeded random VGG instead of ``weights`` (tests, smoke runs).
        seed: the seed of ``random_weights``.

    The VGG is frozen (no gradients to it, eval mode: BatchNorm uses its statistics) and
    lives outside the module tree: ``state_dict()`` is empty and ``.to()`` leaves it; it
    follows the input's device and dtype at each call instead.
    """

    def __init__(
        self,
        weights: str | None = None,
        upto_pool: int = 5,
        random_weights: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.upto_pool = check_upto_pool(upto_pool)
        self.weights = str(Path(weights).expanduser()) if weights else None
        self.random_weights = bool(random_weights)
        self.seed = int(seed)
        # a plain attribute: not a sub-module, so not in state dicts, checkpoints, .to(),
        # train()/eval(), parameter counts or optimisers
        object.__setattr__(self, "_net", None)
        if self.weights and not self.random_weights and not Path(self.weights).is_file():
            # not an error here: evaluate / restore rebuild the method (and this loss) from
            # a checkpoint's config and never call the loss, so they must not need the file
            message = weights_help(self.weights) + (
                ". Training with this loss fails at its first step; evaluating or restoring "
                "with a trained checkpoint does not need the file"
            )
            log.warning(message)
            warnings.warn(message, UserWarning, stacklevel=2)

    # ------------------------------------------------------------------ the VGG
    def _build(self) -> _Normalised:
        if self.random_weights:
            with torch.random.fork_rng(devices=[]):  # seeded, the global RNG untouched
                torch.manual_seed(self.seed)
                vgg = vgg11_bn_features(self.upto_pool)
        else:
            if not self.weights or not Path(self.weights).is_file():
                raise ConfigError(weights_help(self.weights))
            vgg = vgg11_bn_features(self.upto_pool)
            load_vgg_file(vgg, self.weights)
            log.info("perceptual loss: VGG-11-BN weights from %s", self.weights)
        net = _Normalised(vgg).eval()
        net.requires_grad_(False)
        return net

    def network(self, like: Tensor | None = None) -> nn.Module:
        """The frozen, normalising VGG (built at the first call), on ``like``'s device and
        floating dtype."""
        net = self._net
        if net is None:
            net = self._build()
        if like is not None:
            ref = net.mean
            dtype = like.dtype if like.is_floating_point() else ref.dtype
            if ref.device != like.device or ref.dtype != dtype:
                net = net.to(device=like.device, dtype=dtype)
        object.__setattr__(self, "_net", net)
        return net

    def features(self, x: Tensor) -> Tensor:
        """``φ(x)``: the feature map after max-pool ``upto_pool``, ``(B, C, h, w)``."""
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ConfigError(
                f"the perceptual loss needs (B, 3, H, W) RGB or (B, 1, H, W) grey images, "
                f"got shape {tuple(x.shape)}"
            )
        side = 2**self.upto_pool
        if min(x.shape[-2:]) < side:
            raise ConfigError(
                f"the perceptual loss (VGG features after max-pool {self.upto_pool}) needs "
                f"images of at least {side}x{side} px, got {tuple(x.shape[-2:])}: raise "
                "data.crop_size or lower loss.perceptual.upto_pool"
            )
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.network(x)(x)

    # ------------------------------------------------------------------ the loss
    def per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(f"pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
        fp = self.features(pred)
        with torch.set_grad_enabled(torch.is_grad_enabled() and target.requires_grad):
            ft = self.features(target)
        return (fp - ft).square().flatten(1).mean(dim=1)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.per_sample(pred, target).mean()

    def train(self, mode: bool = True) -> PerceptualLoss:
        super().train(mode)
        if self._net is not None:  # the VGG stays in eval mode whatever the method's
            self._net.eval()
        return self

    def extra_repr(self) -> str:
        src = f"random (seed {self.seed})" if self.random_weights else repr(self.weights)
        return f"vgg11_bn upto_pool={self.upto_pool}, weights={src}"


class ContentPerceptualLoss(nn.Module):
    """``content(pred, target) + lam · perceptual(pred, target)`` (Golf Optimizer §5.2:
    MSE content loss plus λ times the VGG-11-BN perceptual loss).

    ``per_sample`` gives the same per image, ``(B,)`` (``content`` needs a per-sample
    form). ``log_values()`` returns the last call's two terms (batch means, no gradient):
    ``content``, ``perceptual`` and ``weighted_perceptual`` (``lam · perceptual``),
    logged as ``train/ContentPerceptualLoss/<term>``, so λ can be set to give the two
    terms similar magnitudes, as the paper does.
    """

    def __init__(self, content: nn.Module, perceptual: PerceptualLoss, lam: float = 1e-2) -> None:
        super().__init__()
        if not callable(getattr(content, "per_sample", None)):
            raise ConfigError(
                f"the content loss of ContentPerceptualLoss needs a per-sample form "
                f"(`per_sample`), and {type(content).__name__} has none: use PixelLoss"
            )
        lam = float(lam)
        if not (math.isfinite(lam) and lam >= 0):
            raise ConfigError(f"loss.lam (the perceptual loss's weight) must be >= 0, got {lam!r}")
        self.content = content
        self.perceptual = perceptual
        self.lam = lam
        self._terms: dict[str, Tensor] = {}

    def _record(self, content: Tensor, perceptual: Tensor) -> None:
        c, p = content.detach().mean(), perceptual.detach().mean()
        self._terms = {"content": c, "perceptual": p, "weighted_perceptual": self.lam * p}

    def per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        c = self.content.per_sample(pred, target)
        p = self.perceptual.per_sample(pred, target)
        self._record(c, p)
        return c + self.lam * p

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        c = self.content(pred, target)
        p = self.perceptual(pred, target)
        self._record(c, p)
        return c + self.lam * p

    def log_values(self) -> dict[str, Tensor]:
        return dict(self._terms)

    def extra_repr(self) -> str:
        return f"lam={self.lam}"


__all__ = ["ContentPerceptualLoss", "PerceptualLoss", "weights_help"]
