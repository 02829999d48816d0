"""The parts of LIRA's networks (lira.txt §3.1, Fig. 1): feature extractor, expert, gate
layer, expert attention, Bi-SGU and decoder.

Shapes: images ``(B, C, H, W)`` in [0, 1] with ``H`` and ``W`` multiples of 4; features
``(B, w, H/4, W/4)``. The paper's Fig. 1 (which carries the layer details) is not in the
text we have; every size the text leaves open is marked "(ours)". No normalisation layers
(per-sample gradients with :mod:`torch.func` come later).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightrestore.errors import ConfigError
from lightrestore.models.lira.blocks import SKDuRB

#: the extractor's total down-sampling factor (two stride-2 convs), undone by the decoder
FACTOR = 4


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)


class FeatureExtractor(nn.Module):
    """Two-scale feature extractor: ``x -> (h, g)``, the local stream ``u^0 = h`` and the
    global-feature stream ``p^0 = g`` of every expert (paper: "two strided convolutional
    layers" give the global features ``h1, g1``).

    (ours) A 3×3 stem conv + ReLU at full resolution, a 3×3 stride-2 conv + ReLU to
    ``H/2``, then two 3×3 stride-2 convs + ReLU *in parallel* from that map, one giving
    ``h`` and one ``g``, both at ``H/4``: the DuRB pair ``(u, p)`` needs equal shapes, so
    the two strided outputs cannot be at two scales in a chain.

    ``(B, C, H, W) -> ((B, w, H/4, W/4), (B, w, H/4, W/4))``, values ``>= 0``; ``H`` and
    ``W`` must be multiples of 4 (:class:`~lightrestore.errors.ConfigError`, a
    ``ValueError``, otherwise).
    """

    def __init__(self, channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.channels, self.width = int(channels), int(width)
        self.stem = nn.Sequential(_conv3x3(channels, width), nn.ReLU())
        self.down = nn.Sequential(_conv3x3(width, width, stride=2), nn.ReLU())
        self.to_h = nn.Sequential(_conv3x3(width, width, stride=2), nn.ReLU())
        self.to_g = nn.Sequential(_conv3x3(width, width, stride=2), nn.ReLU())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_image_size(x)
        z = self.down(self.stem(x))
        return self.to_h(z), self.to_g(z)


def check_image_size(x: Tensor) -> None:
    """Raise :class:`~lightrestore.errors.ConfigError` unless ``x`` is ``(B, C, H, W)``
    with ``H`` and ``W`` multiples of 4 (LIRA down-samples by 4 and up-samples back)."""
    if x.dim() != 4:
        raise ConfigError(f"LIRA networks take images (B, C, H, W), got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h % FACTOR or w % FACTOR:
        raise ConfigError(
            f"LIRA networks need image sizes that are multiples of {FACTOR}, got {h}x{w}: "
            f"crop or pad the images (e.g. set data.crop_size to a multiple of {FACTOR})"
        )


class Expert(nn.Module):
    """One expert: ``M`` SK-DuRBs in a chain (Eq. 1), ``u^j, p^j = B^j(u^{j-1}, p^{j-1})``.

    ``forward(u, p) -> (s, q)``: the lists ``s = [u^2, u^4, ..., u^M]`` and
    ``q = [p^2, p^4, ..., p^M]`` (``M/2`` tensors each, ``(B, w, h, w')``), the features
    the gate layers take. ``s[-1], q[-1]`` are the last block's outputs (the fork stage
    decodes them).
    """

    def __init__(self, width: int = 64, blocks: int = 6) -> None:
        super().__init__()
        if blocks < 2 or blocks % 2:
            raise ConfigError(
                f"an expert needs an even number of SK-DuRBs (>= 2): every second block's "
                f"outputs are selected; got blocks={blocks} (the paper uses 6)"
            )
        self.width, self.n_blocks = int(width), int(blocks)
        self.blocks = nn.ModuleList(SKDuRB(width) for _ in range(blocks))

    @property
    def depths(self) -> int:
        """``M/2``, the number of selected depths."""
        return self.n_blocks // 2

    def forward(self, u: Tensor, p: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        s, q = [], []
        for j, block in enumerate(self.blocks, start=1):
            u, p = block(u, p)
            if j % 2 == 0:
                s.append(u)
                q.append(p)
        return s, q


class GateLayer(nn.Module):
    """Pixel-level gate ``G(f, g, x)`` (Eqs. 2-3, 12-13) for a feature ``f``, from ``f``,
    the global feature ``g`` (``h`` or ``g`` of the extractor) and the input image ``x``.

    ``gate = sigmoid(conv3x3(relu(conv3x3(cat[f, g, x↓]))))`` where ``x↓`` is ``x``
    average-pooled to the feature grid (area interpolation; by 4 here).

    (ours) Two 3×3 convs, ``2w + C -> w -> w``: the gate has one value per channel and
    pixel.

    ``forward(f, g, x)`` returns the gated feature ``gate ⊙ f``; ``gate(f, g, x)`` the
    gate, values in (0, 1). ``f, g``: ``(B, w, h, w')``; ``x``: ``(B, C, H, W)``.
    """

    def __init__(self, width: int = 64, channels: int = 3) -> None:
        super().__init__()
        self.width, self.channels = int(width), int(channels)
        self.body = nn.Sequential(
            _conv3x3(2 * width + channels, width), nn.ReLU(), _conv3x3(width, width)
        )

    def gate(self, f: Tensor, g: Tensor, x: Tensor) -> Tensor:
        x_small = F.adaptive_avg_pool2d(x, f.shape[-2:])
        return torch.sigmoid(self.body(torch.cat([f, g, x_small], dim=1)))

    def forward(self, f: Tensor, g: Tensor, x: Tensor) -> Tensor:
        return self.gate(f, g, x) * f


class ExpertAttention(nn.Module):
    """Mixture weights over experts, per selected depth, from the global feature ``g``
    (Eqs. 4-5: ``a`` and ``b``; Eqs. 10-11: ``c`` and ``d``).

    ``g -> global average pool -> FC (w -> w) -> ReLU -> FC (w -> N·M/2)`` -> logits
    ``(B, N, M/2)`` -> softmax over the experts (dim 1).

    (ours) The hidden FC width ``w``.

    ``(B, w, h, w') -> (B, N, M/2)``, positive, summing to 1 over dim 1.
    """

    def __init__(self, width: int = 64, experts: int = 3, depths: int = 3) -> None:
        super().__init__()
        self.width, self.experts, self.depths = int(width), int(experts), int(depths)
        self.body = nn.Sequential(
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, experts * depths)
        )

    def forward(self, g: Tensor) -> Tensor:
        logits = self.body(g.mean(dim=(2, 3))).view(-1, self.experts, self.depths)
        return torch.softmax(logits, dim=1)


class SGU(nn.Module):
    """Sequential Gating Unit (Eq. 6): ``σ(conv_a(fa)) * fa + σ(conv_b(fa)) * fb``, ``fa``
    the active input, ``fb`` the passive one.

    (ours) Eq. 6 prints the same ``σ(conv(fa))`` twice; we read it as two gates computed
    from the active input with two separate 3×3 convs (``w -> w``).

    ``(B, w, h, w')`` twice -> ``(B, w, h, w')``.
    """

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.conv_a = _conv3x3(width, width)
        self.conv_b = _conv3x3(width, width)

    def forward(self, fa: Tensor, fb: Tensor) -> Tensor:
        return torch.sigmoid(self.conv_a(fa)) * fa + torch.sigmoid(self.conv_b(fa)) * fb


class BiSGU(nn.Module):
    """Bidirectional Sequential Gating Unit (Eq. 7) over the ``M/2`` aggregated features.

    Forward chain ``r_1 = v_1, r_j = SGU(v_j, r_{j-1})`` up to ``j = M/2`` (the outermost
    SGU's active input is ``v_{M/2}``); backward chain ``r'_{M/2} = v_{M/2},
    r'_j = SGU(v_j, r'_{j+1})`` down to ``j = 1``; output ``conv1x1(cat[r_{M/2}, r'_1])``.

    (ours) One SGU per step and direction (``depths - 1`` per chain, weights not shared
    across steps: the features of different depths differ); the fusing conv is 1×1
    (``2w -> w``). With ``depths = 1`` both chains are ``v_1``.

    Input: a list of ``M/2`` tensors ``(B, w, h, w')``; output ``(B, w, h, w')``.
    """

    def __init__(self, width: int = 64, depths: int = 3) -> None:
        super().__init__()
        self.width, self.depths = int(width), int(depths)
        self.forward_sgus = nn.ModuleList(SGU(width) for _ in range(depths - 1))
        self.backward_sgus = nn.ModuleList(SGU(width) for _ in range(depths - 1))
        self.out = nn.Conv2d(2 * width, width, 1)

    def forward(self, v: list[Tensor]) -> Tensor:
        if len(v) != self.depths:
            raise ValueError(f"BiSGU expects {self.depths} features, got {len(v)}")
        fwd = v[0]
        for j in range(1, self.depths):
            fwd = self.forward_sgus[j - 1](v[j], fwd)
        bwd = v[-1]
        for j in range(self.depths - 2, -1, -1):
            bwd = self.backward_sgus[j](v[j], bwd)
        return self.out(torch.cat([fwd, bwd], dim=1))


class Decoder(nn.Module):
    """Decoder: two up-samplers (conv3x3 ``w -> 4w``, PixelShuffle(2), ReLU), then a 3×3
    conv ``w -> C``.

    ``(B, w, H/4, W/4) -> (B, C, H, W)``, real-valued (a residual: the networks add the
    input image).
    """

    def __init__(self, width: int = 64, channels: int = 3) -> None:
        super().__init__()
        self.width, self.channels = int(width), int(channels)
        self.body = nn.Sequential(
            _conv3x3(width, 4 * width),
            nn.PixelShuffle(2),
            nn.ReLU(),
            _conv3x3(width, 4 * width),
            nn.PixelShuffle(2),
            nn.ReLU(),
            _conv3x3(width, channels),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.body(z)
