"""CycleGAN's generator and discriminator (Zhu et al. 2017, *Unpaired Image-to-Image
Translation using Cycle-Consistent Adversarial Networks*), used by LIRA (lira.txt §3.3,
§4.2) to replay the old task: a generator "with 9 residual blocks" mapping clean images
to old-blended ones, judged by a PatchGAN.

Facts from CycleGAN's paper and its public code (architecture only; no code copied):

* :class:`ResnetGenerator` (``resnet_9blocks``): ReflectionPad 3, 7×7 conv ``C -> w``,
  InstanceNorm, ReLU; two 3×3 stride-2 convs (``w -> 2w -> 4w``) each with InstanceNorm
  and ReLU; ``blocks`` residual blocks at ``4w`` (reflect pad 1, 3×3 conv, IN, ReLU,
  reflect pad 1, 3×3 conv, IN; plus the identity); two 3×3 stride-2 transposed convs
  (padding 1, output_padding 1; ``4w -> 2w -> w``) with IN and ReLU; ReflectionPad 3,
  7×7 conv ``w -> C``, tanh. No dropout (CycleGAN's default).
* :class:`PatchDiscriminator` (the 70×70 PatchGAN, ``n_layers = 3``): 4×4 stride-2 conv
  ``C -> w`` + LeakyReLU(0.2); ``layers - 1`` blocks of 4×4 stride-2 conv + IN +
  LeakyReLU with widths doubling (capped at ``8w``); a 4×4 stride-1 conv + IN + LeakyReLU;
  a last 4×4 stride-1 conv to one channel of logits. Padding 1 everywhere.
* InstanceNorm2d without affine parameters and without running statistics; every conv
  has a bias (CycleGAN turns the bias on when the norm is InstanceNorm).
* Weights initialised from ``N(0, 0.02)``, biases 0 (CycleGAN's ``init_type='normal'``):
  :func:`init_weights_normal`, applied in the constructors.

Value ranges (ours, the convention of this project): both networks take images in
[0, 1] and map them to [-1, 1] inside (CycleGAN normalises its inputs to [-1, 1]); the
generator's tanh output is mapped back to [0, 1].

``python -m lightrestore.models.lira`` prints their parameter counts (width 64: the
generator 11,378,179, the discriminator 2,764,737 for RGB; CycleGAN's code prints
11.378 M and 2.765 M).
"""

from __future__ import annotations

from torch import Tensor, nn


def init_weights_normal(module: nn.Module, std: float = 0.02) -> nn.Module:
    """CycleGAN's ``normal`` initialisation, in place: conv, transposed-conv and linear
    weights from ``N(0, std)``, their biases 0; affine norm layers' scales from
    ``N(1, std)``, shifts 0. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._NormBase) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def _norm(width: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(width, affine=False, track_running_stats=False)


class ResnetBlock(nn.Module):
    """CycleGAN's residual block: ``x + IN(conv(pad(relu(IN(conv(pad(x)))))))`` with
    reflection padding 1 and 3×3 convs ``w -> w``. ``(B, w, H, W) -> (B, w, H, W)``."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            _norm(width),
            nn.ReLU(),
            nn.ReflectionPad2d(1),
            nn.Conv2d(width, width, 3),
            _norm(width),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator (``resnet_9blocks`` with ``blocks = 9``).

    Args:
        channels: image channels in and out.
        width: ``ngf``, the first conv's width (64 in CycleGAN).
        blocks: residual blocks at ``4w`` (9 in CycleGAN and LIRA).

    ``(B, C, H, W)`` in [0, 1] -> the same shape in [0, 1] (tanh, mapped back). ``H, W``
    multiples of 4 keep the shape (two stride-2 down-samplings, undone exactly).
    """

    def __init__(self, channels: int = 3, width: int = 64, blocks: int = 9) -> None:
        super().__init__()
        self.channels, self.width, self.n_blocks = int(channels), int(width), int(blocks)
        w = self.width
        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(channels, w, 7),
            _norm(w),
            nn.ReLU(),
        ]
        for mult in (1, 2):
            layers += [
                nn.Conv2d(w * mult, w * mult * 2, 3, stride=2, padding=1),
                _norm(w * mult * 2),
                nn.ReLU(),
            ]
        layers += [ResnetBlock(4 * w) for _ in range(blocks)]
        for mult in (4, 2):
            layers += [
                nn.ConvTranspose2d(
                    w * mult, w * mult // 2, 3, stride=2, padding=1, output_padding=1
                ),
                _norm(w * mult // 2),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, channels, 7), nn.Tanh()]
        self.body = nn.Sequential(*layers)
        init_weights_normal(self)

    def forward(self, x: Tensor) -> Tensor:
        return (self.body(2 * x - 1) + 1) / 2


class PatchDiscriminator(nn.Module):
    """CycleGAN's PatchGAN discriminator (70×70 receptive field with ``layers = 3``).

    Args:
        channels: image channels.
        width: ``ndf``, the first conv's width (64 in CycleGAN).
        layers: stride-2 convs (3 in CycleGAN).

    ``(B, C, H, W)`` in [0, 1] -> logits ``(B, 1, H', W')`` (real-valued; sigmoid /
    BCE-with-logits or least squares outside). With ``layers = 3``: ``H' = H/8 - 2``
    (64 -> 6, 256 -> 30).
    """

    def __init__(self, channels: int = 3, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        self.channels, self.width, self.n_layers = int(channels), int(width), int(layers)
        w = self.width
        seq: list[nn.Module] = [
            nn.Conv2d(channels, w, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
        ]
        mult = 1
        for n in range(1, layers):
            prev, mult = mult, min(2**n, 8)
            seq += [
                nn.Conv2d(w * prev, w * mult, 4, stride=2, padding=1),
                _norm(w * mult),
                nn.LeakyReLU(0.2),
            ]
        prev, mult = mult, min(2**layers, 8)
        seq += [
            nn.Conv2d(w * prev, w * mult, 4, stride=1, padding=1),
            _norm(w * mult),
            nn.LeakyReLU(0.2),
            nn.Conv2d(w * mult, 1, 4, stride=1, padding=1),
        ]
        self.body = nn.Sequential(*seq)
        init_weights_normal(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.body(2 * x - 1)
