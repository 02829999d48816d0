"""LIRA's networks (lira.txt §3.1-3.2): the amalgamator ("old expert"), the base network,
the fork-stage network and the expanded network of the incremental stage.

* :class:`LiraForkNet` (fork stage): ``N`` experts sharing an extractor and a decoder;
  each training sample goes through the expert of its single distortion.
* :class:`LiraBaseNet` (join stage, Eq. 8): the experts' selected features, gated and
  mixed by attention (the :class:`Amalgamator`), two Bi-SGUs, a fusing conv and the
  decoder, plus the input. ``base.amalgamator.experts`` takes the fork's
  ``fork.experts.state_dict()`` as it is.
* :class:`LiraExpandedNet` (incremental stage, Eqs. 9-14): a new extractor ``E2``, a new
  expert, gates and attention over two sources (the old amalgamator's aggregated
  features and the new expert's), Bi-SGUs and a new decoder ``D2``. The old amalgamator
  is passed to ``forward``: it belongs to the base network and is shared.

All take images ``(B, C, H, W)`` in [0, 1] (any ``H, W``: padded to multiples of 4 inside,
as the extractor down-samples by 4) and return the
same shape, unclamped (roughly [0, 1]: ``x`` plus a decoded residual). Paper defaults:
``N = 3`` experts, ``M = 6`` SK-DuRBs each (§4.2); the width is not given (ours: 64).
No normalisation layers. Decisions of ours are listed in each class and in
:mod:`lightrestore.models.lira.parts`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lightrestore.models.lira.parts import (
    FACTOR,
    BiSGU,
    Decoder,
    Expert,
    ExpertAttention,
    FeatureExtractor,
    GateLayer,
)


def pad_to_multiple(x: Tensor, multiple: int = FACTOR) -> tuple[Tensor, tuple[int, int]]:
    """Replicate-pad ``x`` ``(B, C, H, W)`` at the bottom and right to multiples of
    ``multiple`` (the networks down-sample by 4); returns it and the original ``(H, W)``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


def crop_to(y: Tensor, size: tuple[int, int]) -> Tensor:
    """``y`` cropped back to ``size`` (undoes :func:`pad_to_multiple`)."""
    h, w = size
    return y if tuple(y.shape[-2:]) == (h, w) else y[..., :h, :w]


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements of ``module`` (shared tensors counted once)."""
    return sum(p.numel() for p in module.parameters())


def _mix(weights: Tensor, features: list[Tensor]) -> Tensor:
    """``Σ_i weights[:, i] · features[i]``: ``weights`` ``(B, n)``, features ``(B, w, h, w')``."""
    return sum(weights[:, i, None, None, None] * f for i, f in enumerate(features))


def _gates(sources: int, depths: int, width: int, channels: int) -> nn.ModuleList:
    return nn.ModuleList(
        nn.ModuleList(GateLayer(width, channels) for _ in range(depths)) for _ in range(sources)
    )


class Amalgamator(nn.Module):
    """The paper's "old expert": ``N`` experts, their gate layers and the two attention
    layers (everything of the feature amalgamator except the Bi-SGUs, §3.2).

    ``forward(h, g, x) -> (V, F)``, two lists of ``M/2`` aggregated features
    ``(B, w, H/4, W/4)`` (Eqs. 1-5)::

        s_i, q_i = expert_i(h, g)                     # u_i^{2j}, p_i^{2j}
        v_j = Σ_i a_ij · G(h, x, s_i^j) ⊙ s_i^j       # gates_s[i][j]
        f_j = Σ_i b_ij · G(g, x, q_i^j) ⊙ q_i^j       # gates_q[i][j]

    with ``a = attention_v(g)``, ``b = attention_f(g)`` (softmax over experts). ``h, g``
    come from a :class:`FeatureExtractor`, ``x`` is the input image ``(B, C, H, W)``.

    (ours) One gate layer per expert, depth and stream (the paper's Fig. 1 is not in the
    text; Eqs. 2-3 index the gated features by ``i`` and ``j`` but write one ``G``).
    """

    def __init__(
        self, width: int = 64, channels: int = 3, experts: int = 3, blocks: int = 6
    ) -> None:
        super().__init__()
        self.width, self.channels = int(width), int(channels)
        self.n_experts, self.n_blocks = int(experts), int(blocks)
        self.experts = nn.ModuleList(Expert(width, blocks) for _ in range(experts))
        depths = self.experts[0].depths
        self.depths = depths
        self.gates_s = _gates(experts, depths, width, channels)
        self.gates_q = _gates(experts, depths, width, channels)
        self.attention_v = ExpertAttention(width, experts, depths)
        self.attention_f = ExpertAttention(width, experts, depths)

    def mixture_weights(self, g: Tensor) -> tuple[Tensor, Tensor]:
        """``(a, b)``, each ``(B, N, M/2)``: positive, summing to 1 over the experts."""
        return self.attention_v(g), self.attention_f(g)

    def forward(self, h: Tensor, g: Tensor, x: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        a, b = self.mixture_weights(g)
        gated_s: list[list[Tensor]] = [[] for _ in range(self.depths)]
        gated_q: list[list[Tensor]] = [[] for _ in range(self.depths)]
        for i, expert in enumerate(self.experts):
            s, q = expert(h, g)
            for j in range(self.depths):
                gated_s[j].append(self.gates_s[i][j](s[j], h, x))
                gated_q[j].append(self.gates_q[i][j](q[j], g, x))
        v = [_mix(a[:, :, j], gated_s[j]) for j in range(self.depths)]
        f = [_mix(b[:, :, j], gated_q[j]) for j in range(self.depths)]
        return v, f


class LiraBaseNet(nn.Module):
    """LIRA's base network (§3.1, Eq. 8)::

        h, g = extractor(x)
        V, F = amalgamator(h, g, x)
        y = x + decoder(fuse(cat[bisgu_v(V), bisgu_f(F)]))

    ``fuse`` is a 3×3 conv ``2w -> w`` (Eq. 8's ``conv``; ours: 3×3, no activation
    before the decoder).

    Args:
        channels: image channels ``C``.
        width: feature width ``w`` (ours: 64; the paper does not give it).
        experts: ``N`` (paper: 3).
        blocks: SK-DuRBs per expert ``M``, even (paper: 6).

    ``(B, C, H, W)`` in [0, 1] -> same shape, unclamped (any ``H, W``: padded to
    multiples of 4 inside and cropped back).
    """

    scale = 1

    def __init__(
        self, channels: int = 3, width: int = 64, experts: int = 3, blocks: int = 6
    ) -> None:
        super().__init__()
        self.channels, self.width = int(channels), int(width)
        self.extractor = FeatureExtractor(channels, width)
        self.amalgamator = Amalgamator(width, channels, experts, blocks)
        depths = self.amalgamator.depths
        self.bisgu_v = BiSGU(width, depths)
        self.bisgu_f = BiSGU(width, depths)
        self.fuse = nn.Conv2d(2 * width, width, 3, padding=1)
        self.decoder = Decoder(width, channels)

    def features(self, x: Tensor) -> Tensor:
        """DL-Net's ``g`` (:mod:`lightrestore.models.split`): everything up to the decoder's
        last up-sampled map, before its ReLU: ``(B, w, H', W')`` with ``H', W'`` the input
        size padded to multiples of 4."""
        x, _ = pad_to_multiple(x)
        h, g = self.extractor(x)
        v, f = self.amalgamator(h, g, x)
        z = self.fuse(torch.cat([self.bisgu_v(v), self.bisgu_f(f)], dim=1))
        return self.decoder.body[:-2](z)

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """DL-Net's ``h``: the ReLU, the decoder's last conv and the global residual,
        cropped back to ``x``'s size: ``(B, C, H, W)``."""
        xp, size = pad_to_multiple(x)
        return crop_to(xp + self.decoder.body[-1](torch.relu(z)), size)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, H, W)`` -> same shape; any size (padded to a multiple of 4 inside)."""
        return self.head(self.features(x), x)

    def part_counts(self) -> dict[str, int]:
        """Parameters per part: extractor, experts, gates, attention, Bi-SGUs, fuse,
        decoder, total."""
        am = self.amalgamator
        return {
            "extractor": count_parameters(self.extractor),
            "experts": count_parameters(am.experts),
            "gates": count_parameters(am.gates_s) + count_parameters(am.gates_q),
            "attention": count_parameters(am.attention_v) + count_parameters(am.attention_f),
            "bisgus": count_parameters(self.bisgu_v) + count_parameters(self.bisgu_f),
            "fuse": count_parameters(self.fuse),
            "decoder": count_parameters(self.decoder),
            "total": count_parameters(self),
        }


class LiraForkNet(nn.Module):
    """The fork stage (§3.1): ``N`` experts trained on single distortions, sharing the
    extractor, the fusing conv and the decoder::

        h, g = extractor(x)
        u, p = last outputs of experts[e](h, g)     # e: the sample's distortion index
        y = x + decoder(fuse(cat[u, p]))

    ``experts`` is a ``ModuleList`` of the same :class:`~.parts.Expert` as
    :attr:`Amalgamator.experts` (same keys), so
    ``base.amalgamator.experts.load_state_dict(fork.experts.state_dict())`` joins them.

    (ours) The paper does not say how a lone expert is decoded; we fuse its last block's
    two outputs ``u^M, p^M`` with a 3×3 conv ``2w -> w`` (shared by the experts).

    ``forward(x, expert)``: ``x`` ``(B, C, H, W)``; ``expert`` a ``(B,)`` integer tensor
    with values in ``0..N-1`` (or an ``int`` for the whole batch). The batch is grouped
    by expert (one pass per expert present, not per sample). An expert that gets no
    sample in a batch gets no gradient (DDP needs ``find_unused_parameters``).
    """

    scale = 1

    def __init__(
        self, channels: int = 3, width: int = 64, experts: int = 3, blocks: int = 6
    ) -> None:
        super().__init__()
        self.channels, self.width = int(channels), int(width)
        self.n_experts, self.n_blocks = int(experts), int(blocks)
        self.extractor = FeatureExtractor(channels, width)
        self.experts = nn.ModuleList(Expert(width, blocks) for _ in range(experts))
        self.fuse = nn.Conv2d(2 * width, width, 3, padding=1)
        self.decoder = Decoder(width, channels)

    def forward(self, x: Tensor, expert: Tensor | int | None = None) -> Tensor:
        if expert is None:
            raise ValueError(
                "LiraForkNet needs the distortion's index: call it as net(x, expert) with "
                f"expert a (B,) integer tensor in 0..{self.n_experts - 1}"
            )
        batch = x.shape[0]
        if isinstance(expert, int):
            expert = torch.full((batch,), expert, dtype=torch.long, device=x.device)
        if expert.shape != (batch,) or expert.is_floating_point():
            raise ValueError(
                f"expert must be a ({batch},) integer tensor, got {tuple(expert.shape)} "
                f"{expert.dtype}"
            )
        x, size = pad_to_multiple(x)
        h, g = self.extractor(x)
        expert = expert.to(h.device)
        z = h.new_zeros(h.shape)
        routed = 0
        for i, net in enumerate(self.experts):
            idx = (expert == i).nonzero().squeeze(1)
            if idx.numel() == 0:
                continue
            routed += idx.numel()
            s, q = net(h.index_select(0, idx), g.index_select(0, idx))
            z = z.index_copy(0, idx, self.fuse(torch.cat([s[-1], q[-1]], dim=1)))
        if routed != batch:
            raise ValueError(
                f"expert indices must lie in 0..{self.n_experts - 1}, got {expert.tolist()}"
            )
        return crop_to(x + self.decoder(z), size)


class LiraExpandedNet(nn.Module):
    """The expanded network of the incremental stage (§3.2, Eqs. 9-14)::

        h2, g2 = extractor(x)                        # E2
        V̂, F̂ = old(h2, g2, x)                        # the shared old expert (Amalgamator)
        s2, q2 = expert(h2, g2)                      # the new expert N+1
        ξ_i^j = G(h2, x, ŝ_i^j) ⊙ ŝ_i^j,  ŝ_1 = V̂, ŝ_2 = s2     # gates_s[i][j]
        ψ_i^j = G(g2, x, q̂_i^j) ⊙ q̂_i^j,  q̂_1 = F̂, q̂_2 = q2     # gates_q[i][j]
        θ_j = Σ_i c_ij ξ_i^j,  φ_j = Σ_i d_ij ψ_i^j  # c, d = attention_v(g2), attention_f(g2)
        y = x + decoder(fuse(cat[bisgu_v(Θ), bisgu_f(Φ)]))          # D2

    ``old`` is passed to :meth:`forward`, not stored: it is owned by the base network and
    its parameters are shared (frozen during the warm-up, trained at ``ρ·μ`` after).
    Its width and number of blocks must match.

    ``(B, C, H, W)`` in [0, 1] -> same shape, unclamped (any ``H, W``: padded to
    multiples of 4 inside and cropped back).
    """

    scale = 1

    def __init__(self, channels: int = 3, width: int = 64, blocks: int = 6) -> None:
        super().__init__()
        self.channels, self.width, self.n_blocks = int(channels), int(width), int(blocks)
        self.extractor = FeatureExtractor(channels, width)
        self.expert = Expert(width, blocks)
        depths = self.expert.depths
        self.depths = depths
        self.gates_s = _gates(2, depths, width, channels)
        self.gates_q = _gates(2, depths, width, channels)
        self.attention_v = ExpertAttention(width, 2, depths)
        self.attention_f = ExpertAttention(width, 2, depths)
        self.bisgu_v = BiSGU(width, depths)
        self.bisgu_f = BiSGU(width, depths)
        self.fuse = nn.Conv2d(2 * width, width, 3, padding=1)
        self.decoder = Decoder(width, channels)

    def mixture_weights(self, g2: Tensor) -> tuple[Tensor, Tensor]:
        """``(c, d)``, each ``(B, 2, M/2)``: index 0 the old expert, 1 the new one."""
        return self.attention_v(g2), self.attention_f(g2)

    def forward(self, x: Tensor, old: Amalgamator) -> Tensor:
        if old.width != self.width or old.depths != self.depths or old.channels != self.channels:
            raise ValueError(
                f"the old amalgamator (width {old.width}, {old.n_blocks} blocks, "
                f"{old.channels} channels) does not match the expanded network (width "
                f"{self.width}, {self.n_blocks} blocks, {self.channels} channels): build "
                "both with the same width, blocks and channels"
            )
        x, size = pad_to_multiple(x)
        h2, g2 = self.extractor(x)
        v_old, f_old = old(h2, g2, x)
        s2, q2 = self.expert(h2, g2)
        c, d = self.mixture_weights(g2)
        theta, phi = [], []
        for j in range(self.depths):
            xi = [self.gates_s[i][j](s, h2, x) for i, s in enumerate((v_old[j], s2[j]))]
            psi = [self.gates_q[i][j](q, g2, x) for i, q in enumerate((f_old[j], q2[j]))]
            theta.append(_mix(c[:, :, j], xi))
            phi.append(_mix(d[:, :, j], psi))
        z = self.fuse(torch.cat([self.bisgu_v(theta), self.bisgu_f(phi)], dim=1))
        return crop_to(x + self.decoder(z), size)
