"""LPIPS, the learned perceptual image distance (Zhang et al. 2018, v0.1), lower is better.

For images ``x``, ``y`` in [0, 1]: both are mapped to [-1, 1], shifted and scaled by
LPIPS's scaling layer (shift ``[-.030, -.088, -.188]``, scale ``[.458, .448, .450]`` per RGB
channel), and passed through an ImageNet backbone (AlexNet or VGG16,
:mod:`lightrestore.models.lpips_nets`). At each of its five taps the features are unit-
normalised along the channels (``f / (||f||_2 + 1e-10)``), their squared difference is
weighted per channel by the tap's non-negative 1×1 "lin" convolution and averaged over
the positions; the distance is the sum over the five taps. Grey images are repeated to
three channels.

Nothing is downloaded: the weights are read from files the user names
(:func:`load_lpips`): torchvision's backbone state dict and the ``lpips`` package's linear
layers.

    lpips = load_lpips("alex", backbone_weights="alexnet-owt-7be5be79.pth",
                       linear_weights="alex.pth")
    d = lpips(pred, target)          # (B,)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lightrestore.errors import ConfigError
from lightrestore.models.lpips_nets import (
    CHANNELS,
    LINEAR_FILES,
    TORCHVISION_FILES,
    LinearLayers,
    backbone,
)
from lightrestore.models.weights_file import few, read_state_file

NETS = ("alex", "vgg")
#: LPIPS's scaling layer, applied to images in [-1, 1]
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
EPS = 1e-10
#: the config node of the settings, named in error messages
CONFIG_KEY = "metrics.lpips"


def _check_net(net: Any, key: str = CONFIG_KEY) -> str:
    if net not in NETS:
        raise ConfigError(f"{key}.net must be 'alex' or 'vgg' (the LPIPS backbone), got {net!r}")
    return str(net)


def unit_normalise(f: Tensor, eps: float = EPS) -> Tensor:
    """``f / (||f||_2 + eps)`` along the channels (dim 1) of ``(B, C, H, W)``."""
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """The LPIPS distance (randomly initialised; :func:`load_lpips` reads the weights).

    Always in evaluation mode, frozen (no parameter needs gradients) and computed without
    gradients or autocast (float32). It follows its input to the input's device on the
    first call there, so it can be held outside a LightningModule (out of its
    ``state_dict`` and checkpoints) and still run on the GPU.

    ``forward(pred, target)``: ``(B, C, H, W)`` in [0, 1], ``C`` 1 or 3, both the same
    shape, ``H, W`` at least :attr:`min_size` -> ``(B,)`` float32, >= 0 (0 when equal).
    """

    def __init__(self, net: str = "alex") -> None:
        super().__init__()
        self.net = _check_net(net, "net")
        self.backbone = backbone(self.net)
        self.lins = LinearLayers(self.net)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.min_size = int(self.backbone.min_size)
        self.freeze()

    def freeze(self) -> LPIPS:
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> LPIPS:  # a metric: never in training mode
        return super().train(False)

    def _device(self) -> torch.device:
        return self.shift.device

    def _prepare(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"LPIPS takes (B, 1 or 3, H, W) images, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_size:
            raise ConfigError(
                f"LPIPS-{self.net} needs images of at least {self.min_size}x{self.min_size} "
                f"pixels, got {tuple(x.shape[-2:])}: measure larger images (data.crop_size) or "
                "use metrics=lpips_vgg (16 px)"
            )
        x = x.to(self._device(), torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (2.0 * x - 1.0 - self.shift) / self.scale

    def features(self, x: Tensor) -> list[Tensor]:
        """The five tap outputs of the backbone for images ``x`` in [0, 1]."""
        return self.backbone(self._prepare(x))

    @torch.no_grad()
    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"LPIPS compares images of one shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
            )
        if self._device() != pred.device:  # lazily follow the data (held outside any module)
            with torch.inference_mode(False):  # normal tensors, even when called in a test loop
                self.to(pred.device)
        with torch.autocast(pred.device.type, enabled=False):
            feats = self.backbone(torch.cat([self._prepare(pred), self._prepare(target)]))
            n = pred.shape[0]
            total = torch.zeros(n, device=pred.device, dtype=torch.float32)
            for k, f in enumerate(feats):
                f = unit_normalise(f)
                diff = (f[:n] - f[n:]).pow(2)
                total = total + self.lins[k](diff).mean(dim=(1, 2, 3))
        return total

    def extra_repr(self) -> str:
        return f"net={self.net}"


# --------------------------------------------------------------------------- loading
def _read(path: Any, key: str, expected: str) -> Mapping[str, Any]:
    """The state dict in file ``path`` (a plain one, or a checkpoint's ``state_dict``)."""
    if path is None or str(path) in ("", "???"):
        raise ConfigError(
            f"{key} is not set: download {expected} once and name it here ({key}=<path>)"
        )
    file = Path(str(path)).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"{key}: file not found: {file}; download {expected} once and name it here"
        )
    state = read_state_file(file, key, expected)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ConfigError(
            f"{key}: {file} holds a {type(state).__name__}, not a state dict (parameter names "
            f"to tensors); expected {expected}"
        )
    return state


def _fit(
    module: nn.Module, state: Mapping[str, Any], key: str, file: Any, expected: str,
    ignore: Callable[[str], bool],
) -> dict[str, Tensor]:  # fmt: skip
    """The entries of ``state`` ``module`` needs, or a ConfigError naming what does not fit."""
    mine = module.state_dict()
    theirs = {k: v for k, v in state.items() if k in mine}
    missing = [k for k in mine if k not in theirs]
    unexpected = [k for k in state if k not in mine and not ignore(k)]
    wrong = [
        f"{k} {tuple(getattr(theirs[k], 'shape', ()))} (expected {tuple(v.shape)})"
        for k, v in mine.items()
        if k in theirs and (not isinstance(theirs[k], Tensor) or theirs[k].shape != v.shape)
    ]
    problems = [f"{what} {few(keys, 4)}" for what, keys in
                (("missing", missing), ("unexpected", unexpected), ("wrong shapes", wrong)) if keys]  # fmt: skip
    if problems:
        raise ConfigError(f"{key}: {file} does not fit: {'; '.join(problems)}. Expected {expected}")
    return {k: v for k, v in theirs.items()}


def load_lpips(
    net: str = "alex",
    backbone_weights: str | Path | None = None,
    linear_weights: str | Path | None = None,
    key: str = CONFIG_KEY,
) -> LPIPS:
    """An :class:`LPIPS` with its weights read from local files (never downloaded).

    Args:
        net: ``alex`` (AlexNet, the paper's default) or ``vgg`` (VGG16).
        backbone_weights: torchvision's ImageNet state dict of that network
            (``alexnet-owt-7be5be79.pth``, ``vgg16-397923af.pth``); its ``classifier.*`` keys
            are ignored; a checkpoint dict with a ``state_dict`` entry is accepted too.
        linear_weights: the ``lpips`` package's ``weights/v0.1/alex.pth`` or ``vgg.pth``:
            ``lin0.model.1.weight`` … ``lin4.model.1.weight``, ``(1, C_k, 1, 1)``, >= 0.
        key: the config node named in error messages (``metrics.lpips``).

    Raises :class:`~lightrestore.errors.ConfigError` naming ``<key>.backbone_weights`` /
    ``<key>.linear_weights`` and the file expected, for a missing or unreadable file and
    for keys or shapes that do not fit.
    """
    net = _check_net(net, key)
    model = LPIPS(net)
    bkey, lkey = f"{key}.backbone_weights", f"{key}.linear_weights"
    name = "AlexNet" if net == "alex" else "VGG16"
    expected = f"torchvision's {name} ImageNet weights ({TORCHVISION_FILES[net]})"
    state = _read(backbone_weights, bkey, expected)
    fit = _fit(model.backbone, state, bkey, backbone_weights, expected + " with keys features.*",
               ignore=lambda k: k.startswith("classifier."))  # fmt: skip
    model.backbone.load_state_dict(fit)
    expected = f"the lpips package's LPIPS v0.1 linear weights for {net} (weights/v0.1/{LINEAR_FILES[net]})"
    state = _read(linear_weights, lkey, expected)
    shapes = ", ".join(f"lin{k}.model.1.weight (1, {c}, 1, 1)" for k, c in enumerate(CHANNELS[net]))
    fit = _fit(
        model.lins, state, lkey, linear_weights, f"{expected}: {shapes}", ignore=lambda k: False
    )
    negative = [k for k, v in fit.items() if bool((v < 0).any())]
    if negative:
        raise ConfigError(
            f"{lkey}: {linear_weights} has negative weights in {few(negative, 4)}: LPIPS's linear "
            f"layers are non-negative; expected {expected}"
        )
    model.lins.load_state_dict(fit)
    return model.freeze()


def extra_measures(
    settings: Mapping[str, Any] | None,
) -> dict[str, Callable[[Tensor, Tensor], Tensor]]:
    """The optional per-level measures of the ``metrics`` config node, built once:
    ``{"lpips": LPIPS}`` when ``metrics.lpips`` is set (``net``, ``backbone_weights``,
    ``linear_weights``), else ``{}``."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(settings):  # as Hydra passes it; '???' stays a string
        settings = OmegaConf.to_container(settings, resolve=True)
    out: dict[str, Callable[[Tensor, Tensor], Tensor]] = {}
    for name, node in (settings or {}).items():
        if node is None:
            continue
        if name != "lpips":
            raise ConfigError(
                f"metrics.{name} is not a known measure: the optional measure is metrics.lpips"
            )
        if not isinstance(node, Mapping):
            raise ConfigError(
                f"metrics.lpips must hold net, backbone_weights and linear_weights (e.g. "
                f"metrics=lpips_alex), got {node!r}"
            )
        unknown = sorted(set(node) - {"net", "backbone_weights", "linear_weights"})
        if unknown:
            raise ConfigError(
                f"metrics.lpips has unknown keys {unknown}: use net, backbone_weights, linear_weights"
            )
        out["lpips"] = load_lpips(
            node.get("net", "alex"), node.get("backbone_weights"), node.get("linear_weights")
        )
    return out


__all__ = [
    "EPS",
    "LPIPS",
    "NETS",
    "SCALE",
    "SHIFT",
    "extra_measures",
    "load_lpips",
    "unit_normalise",
]
