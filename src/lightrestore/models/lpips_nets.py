"""The networks of LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep
Features as a Perceptual Metric", v0.1): an ImageNet backbone whose five ReLU outputs are
compared, and one non-negative 1×1 "lin" convolution per tap that weighs the channels.

Written here (torchvision is not used) but laid out exactly like torchvision's ``alexnet``
and ``vgg16`` ``features``, so that their ImageNet state dicts (``alexnet-owt-7be5be79.pth``,
``vgg16-397923af.pth``) load unchanged, and like the ``lpips`` package's linear layers
(``weights/v0.1/alex.pth``, ``vgg.pth``: keys ``lin0.model.1.weight`` … ``lin4.model.1.weight``,
each ``(1, C_k, 1, 1)``).

Taps (the index in ``features`` of the ReLU whose output is taken):

* AlexNet: relu1..relu5 at 1, 4, 7, 9, 11 — channels 64, 192, 384, 256, 256 (strides
  4, 8, 16, 16, 16, floored);
* VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 at 3, 8, 15, 22, 29 — channels 64, 128,
  256, 512, 512 (strides 1, 2, 4, 8, 16).

The networks take ImageNet-scaled input (LPIPS's scaling layer is applied by
:class:`lightrestore.metrics.lpips.LPIPS`) and are plain modules: no loading, no training.
"""

from __future__ import annotations

from torch import Tensor, nn

#: the two backbones: ReLU indices of the taps, the taps' channels
TAPS = {"alex": (1, 4, 7, 9, 11), "vgg": (3, 8, 15, 22, 29)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
#: the torchvision files whose ``features.*`` the backbones take
TORCHVISION_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
#: the ``lpips`` package's linear-layer files
LINEAR_FILES = {"alex": "alex.pth", "vgg": "vgg.pth"}
#: VGG16 (configuration "D"): 3×3 conv output channels, "M" a 2×2 max-pool
VGG16_CFG: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)  # fmt: skip


class TapNet(nn.Module):
    """A ``features`` ``nn.Sequential`` (torchvision's indices) run up to its last tap.

    ``forward(x)``: ``x`` ``(B, 3, H, W)`` (ImageNet-scaled) -> the list of the five tap
    outputs, ``(B, C_k, H_k, W_k)``, non-negative (ReLU outputs).
    """

    net = ""

    def __init__(self, features: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.taps = TAPS[self.net]
        self.channels = CHANNELS[self.net]

    def forward(self, x: Tensor) -> list[Tensor]:
        out: list[Tensor] = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
                if len(out) == len(self.taps):
                    break
        return out


class AlexNetFeatures(TapNet):
    """AlexNet's ``features`` (torchvision's one-weird-trick layout) up to relu5:
    conv 0 (3→64, 11×11 stride 4 pad 2), ReLU 1, max-pool 2 (3, stride 2), conv 3 (→192, 5×5
    pad 2), ReLU 4, max-pool 5, conv 6 (→384, 3×3 pad 1), ReLU 7, conv 8 (→256), ReLU 9,
    conv 10 (→256), ReLU 11. Needs images of at least :attr:`min_size` pixels a side."""

    net = "alex"
    min_size = 31  # relu1 of 7 px, relu2 of 3 px: the second 3×3 stride-2 pool leaves 1 px

    def __init__(self) -> None:
        super().__init__(
            nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(64, 192, kernel_size=5, padding=2),
                nn.ReLU(),
                nn.MaxPool2d(kernel_size=3, stride=2),
                nn.Conv2d(192, 384, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(384, 256, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(256, 256, kernel_size=3, padding=1),
                nn.ReLU(),
            )
        )


class VGG16Features(TapNet):
    """VGG16's ``features`` (configuration "D", no batch normalisation) up to relu5_3:
    (conv 3×3 pad 1, ReLU) per conv, a 2×2 max-pool per "M", torchvision's indices (the
    final max-pool, index 30, is not needed). Needs images of at least :attr:`min_size`
    pixels a side."""

    net = "vgg"
    min_size = 16  # four 2×2 pools before relu5_3

    def __init__(self) -> None:
        layers: list[nn.Module] = []
        channels = 3
        for v in VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers += [nn.Conv2d(channels, int(v), kernel_size=3, padding=1), nn.ReLU()]
                channels = int(v)
        super().__init__(nn.Sequential(*layers))


class LinearLayer(nn.Module):
    """One tap's channel weights, the ``lpips`` package's layout (``model.1.weight``,
    ``(1, C, 1, 1)``, no bias; its dropout, index 0, is inactive in evaluation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LinearLayers(nn.Module):
    """The five linear layers ``lin0`` … ``lin4`` of a backbone (``net``: alex | vgg)."""

    def __init__(self, net: str) -> None:
        super().__init__()
        for k, c in enumerate(CHANNELS[net]):
            self.add_module(f"lin{k}", LinearLayer(c))

    def __getitem__(self, k: int) -> LinearLayer:
        return getattr(self, f"lin{k}")

    def __len__(self) -> int:
        return len(self._modules)


def backbone(net: str) -> TapNet:
    """A randomly initialised backbone: ``alex`` or ``vgg``."""
    return {"alex": AlexNetFeatures, "vgg": VGG16Features}[net]()


__all__ = [
    "CHANNELS",
    "LINEAR_FILES",
    "TAPS",
    "TORCHVISION_FILES",
    "AlexNetFeatures",
    "LinearLayer",
    "LinearLayers",
    "TapNet",
    "VGG16Features",
    "backbone",
]
