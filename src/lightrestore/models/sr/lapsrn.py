"""LapSRN, the Laplacian Pyramid Super-Resolution Network (Lai et al., CVPR 2017).

Layer facts from the authors' MatConvNet ``init_LapSRN.m``; leaky ReLU slope 0.2:

* an input conv 3 × 3 ``C -> 64`` + leaky ReLU on the LR image;
* per pyramid level (``log2(scale)`` levels, each ×2), a *feature-extraction branch*:
  ``depth = 10`` convs 3 × 3 ``64 -> 64`` + leaky ReLU, a 3 × 3 transposed conv
  ``64 -> 64`` with stride 2 (MatConvNet ``crop = [0 1 0 1]``: the first ``2h`` rows
  and columns of the ``2h + 1`` output) + leaky ReLU, and a residual conv 3 × 3
  ``64 -> C``; an *image-reconstruction branch*: a 4 × 4 transposed conv, stride 2,
  crop 1, no bias, initialised to bilinear upsampling, applied to the previous
  level's image; the level's output is that upsampled image + the residual.

812,768 weights for ×4 on Y (the paper's 812k), 814,242 with biases. The
reconstruction transposed conv is ``C -> C`` here (bilinear on the diagonal at init);
for ``C = 1`` it is the authors' layer.

Scales: a power of two ``2^L`` gives ``L`` levels. ``scale = 3`` (ours, documented):
one level whose feature upsampler is a 3 × 3 transposed conv with stride 3 and whose
image upsampler is a 5 × 5 transposed conv with stride 3, padding 1, initialised to
bilinear ×3 (kernel ``2·3 - 1``). Other scales are rejected.

The paper trains every level against the correspondingly downscaled HR image
(Charbonnier loss summed over levels); :meth:`LapSRN.forward_pyramid` returns every
level's output for that.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightrestore.models.sr.common import SRNet, conv3x3, msra_init_


def bilinear_kernel(size: int) -> Tensor:
    """The ``size × size`` bilinear upsampling kernel (FCN's ``upsample_filt``)."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    k1 = 1.0 - (og - center).abs() / factor
    return torch.outer(k1, k1).float()


class _Level(nn.Module):
    """One pyramid level (factor ``f``): feature embedding, upsamplers, residual conv."""

    def __init__(
        self, channels: int, width: int, depth: int, factor: int, negative_slope: float
    ) -> None:
        super().__init__()
        self.factor, self.negative_slope = factor, negative_slope
        self.embed = nn.ModuleList(conv3x3(width, width) for _ in range(depth))
        self.feature_up = nn.ConvTranspose2d(width, width, 3, stride=factor)
        self.residual = conv3x3(width, channels)
        k = 2 * factor - factor % 2
        pad = math.ceil((k - factor) / 2)
        self.image_up = nn.ConvTranspose2d(
            channels,
            channels,
            k,
            stride=factor,
            padding=pad,
            output_padding=2 * pad - (k - factor),
            bias=False,
        )

    def init_image_up(self) -> None:
        w = self.image_up.weight
        with torch.no_grad():
            w.zero_()
            kernel = bilinear_kernel(w.shape[-1]).to(w.device, w.dtype)
            for c in range(w.shape[0]):
                w[c, c] = kernel

    def embed_and_upsample(self, f: Tensor) -> Tensor:
        """Level features (activated, ``(B, W, h, w)``) -> upsampled, pre-activation."""
        for conv in self.embed:
            f = F.leaky_relu(conv(f), self.negative_slope)
        h, w = f.shape[-2:]
        return self.feature_up(f)[..., : h * self.factor, : w * self.factor]


class LapSRN(SRNet):
    """LapSRN: progressive residual prediction over a Laplacian pyramid.

    Args:
        scale: 2, 4, 8, ... (one ×2 level each), or 3 (a single ×3 level).
        channels: image channels (1 for the paper's Y-only model).
        depth: conv layers per level in the feature-embedding branch (10).
        width: feature channels (64).
        negative_slope: leaky-ReLU slope (0.2).

    Shapes: ``forward(x)``: ``(B, C, h, w)`` in [0, 1] -> ``(B, C, h·s, w·s)``, roughly
    in [0, 1], unclamped.

    DL-Net split (:class:`lightrestore.models.split.SplitModel`): ``features(x)`` is the
    last level's upsampled features before their leaky ReLU, ``(B, width, h·s, w·s)``;
    ``head(z, x)`` is the leaky ReLU + the last level's residual conv
    (``levels[-1].residual``, the one conv acting on ``z``) + the last level's upsampled
    image, LapSRN's input-dependent output mapping (its form of the global skip).

    Exception to "``h`` = one conv": that upsampled image is *learned*, so ``head`` has
    more parameters than the residual conv, all of them on the ``x`` path (none acts
    on ``z``): ``levels[-1].image_up`` (the transposed conv upsampling the previous
    level's image: ``x`` itself for ×2 and ×3), and for ×4 and above also
    ``input_conv`` and every coarser level's parameters, because the previous level's
    image is that level's full output. ``head`` recomputes this path from ``x`` on
    each call (cheap for ×2/×3: one transposed conv; for ×4 the first level runs
    again); ``forward`` runs the pyramid once. Splitting before the last level instead
    would make ``h`` a whole feature branch (``depth`` convs), far from DL-Net's light
    ``h``.
    """

    def __init__(
        self,
        scale: int = 2,
        channels: int = 3,
        depth: int = 10,
        width: int = 64,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__(scale, channels)
        s = self.scale
        if s == 3:
            factors = [3]
        elif s >= 2 and s & (s - 1) == 0:
            factors = [2] * (s.bit_length() - 1)
        else:
            raise ValueError(f"LapSRN supports scale 3 or a power of two >= 2, got {scale}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth, self.width, self.negative_slope = depth, width, negative_slope
        self.input_conv = conv3x3(channels, width)
        self.levels = nn.ModuleList(
            _Level(channels, width, depth, f, negative_slope) for f in factors
        )
        msra_init_(self)  # the authors' sigma = sqrt(2 / (3·3·64)): He normal, fan-in
        for level in self.levels:
            level.init_image_up()

    def _act(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, self.negative_slope)

    def _run(self, x: Tensor, last_features: bool) -> tuple[Tensor | None, Tensor, list[Tensor]]:
        """Run the pyramid up to the last level's residual.

        Returns ``(z, upsampled image of the last level, outputs of the coarser
        levels)``; ``z`` is ``None`` when ``last_features`` is false (the last level's
        feature branch, the expensive part, is then skipped).
        """
        f: Tensor | None = None  # computed only when a feature branch runs
        img, outputs = x, []
        last = len(self.levels) - 1
        for i, level in enumerate(self.levels):
            img_up = level.image_up(img)
            if i == last and not last_features:
                return None, img_up, outputs
            if f is None:
                f = self._act(self.input_conv(x))
            z = level.embed_and_upsample(f)
            if i == last:
                return z, img_up, outputs
            f = self._act(z)
            img = img_up + level.residual(f)
            outputs.append(img)
        raise AssertionError("unreachable")  # pragma: no cover

    def _finish(self, z: Tensor, img_up: Tensor) -> Tensor:
        return img_up + self.levels[-1].residual(self._act(z))

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, h, w)`` -> last level's pre-activation features ``(B, W, h·s, w·s)``."""
        z, _, _ = self._run(x, last_features=True)
        return z

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """Leaky ReLU + last residual conv + last upsampled image (recomputed from ``x``)."""
        _, img_up, _ = self._run(x, last_features=False)
        return self._finish(z, img_up)

    def forward(self, x: Tensor) -> Tensor:
        z, img_up, _ = self._run(x, last_features=True)
        return self._finish(z, img_up)

    def forward_pyramid(self, x: Tensor) -> list[Tensor]:
        """Every level's output, coarse to fine: ``(B, C, h·2^l, w·2^l)``, the last = ``forward``."""
        z, img_up, outputs = self._run(x, last_features=True)
        return [*outputs, self._finish(z, img_up)]
