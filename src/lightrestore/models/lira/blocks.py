"""LIRA's building blocks (lira.txt §3.1): the Selective Kernel block and the SK-DuRB.

The paper builds every expert from *SK-DuRBs*: DuRB-M (Liu et al.'s dual residual block
for multi-task restoration) "by replacing the improved SE-ResNet module with SK-Block"
(Li et al. 2019, *Selective Kernel Networks*). The paper gives no layer sizes; what it
leaves open is marked "(ours)" below. No normalisation layers anywhere: later code takes
per-sample gradients with :mod:`torch.func`, and SKNet's BatchNorms are dropped (ours).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class SKBlock(nn.Module):
    """Selective Kernel block (Li et al. 2019): *split*, *fuse*, *select*.

    * split: one branch per kernel size, each ``conv + ReLU`` (``w -> w``, same padding).
      As in SKNet, a kernel size ``k > 3`` is a 3×3 conv with dilation ``(k - 1) / 2``
      (5×5 -> dilated 3×3, dilation 2) when ``dilate`` is set; ``dilate=False`` uses a
      plain ``k×k`` conv.
    * fuse: ``U = Σ_k U_k``, global average pool ``(B, w)``, FC ``w -> d`` + ReLU with
      ``d = max(w // reduction, min_dim)`` (SKNet: ``r = 16, L = 32``).
    * select: one FC ``d -> w`` per branch, softmax across the branches (per channel),
      ``V = Σ_k a_k · U_k``.

    (ours) Plain (not grouped) convs, since our widths go down to 8; no BatchNorm
    (SKNet has one after every conv and after the squeeze FC).

    ``(B, w, H, W) -> (B, w, H, W)``, values ``>= 0`` (a convex combination of ReLU
    outputs).
    """

    def __init__(
        self,
        width: int,
        kernels: tuple[int, ...] = (3, 5),
        reduction: int = 16,
        min_dim: int = 32,
        dilate: bool = True,
    ) -> None:
        super().__init__()
        if len(kernels) < 2:
            raise ValueError(f"SKBlock needs at least two kernel sizes, got {kernels}")
        if any(k < 1 or k % 2 == 0 for k in kernels):
            raise ValueError(f"SKBlock kernel sizes must be odd and positive, got {kernels}")
        self.width, self.kernels = int(width), tuple(int(k) for k in kernels)
        branches = []
        for k in self.kernels:
            if dilate and k > 3:
                d = (k - 1) // 2
                conv = nn.Conv2d(width, width, 3, padding=d, dilation=d)
            else:
                conv = nn.Conv2d(width, width, k, padding=k // 2)
            branches.append(nn.Sequential(conv, nn.ReLU()))
        self.branches = nn.ModuleList(branches)
        dim = max(width // reduction, min_dim)
        self.squeeze = nn.Sequential(nn.Linear(width, dim), nn.ReLU())
        self.select = nn.ModuleList(nn.Linear(dim, width) for _ in self.kernels)

    def forward(self, x: Tensor) -> Tensor:
        u = torch.stack([branch(x) for branch in self.branches], dim=1)  # (B, K, w, H, W)
        z = self.squeeze(u.sum(dim=1).mean(dim=(2, 3)))  # (B, d)
        logits = torch.stack([fc(z) for fc in self.select], dim=1)  # (B, K, w)
        weights = torch.softmax(logits, dim=1)[..., None, None]
        return (weights * u).sum(dim=1)


class SKDuRB(nn.Module):
    """SK-DuRB: a dual residual block (DuRB, Liu et al. 2019) with the paired operations
    ``T1 = SK block`` and ``T2 = conv``; DuRB-M with its SE block replaced by an SK block.

    ``forward(u, p) -> (u, p)``, the DuRB pattern::

        r = u
        u = relu(conv2(relu(conv1(u))) + r)   # the block's inner residual
        u = relu(T1(u) + p)                   # T1 = SK, residual from the previous block
        p = u                                 # the second stream passed on
        u = relu(T2(u) + r)                   # T2 = conv
        return u, p

    (ours) All convs 3×3 ``w -> w`` with bias (DuRB-M's kernel sizes are not in the
    paper); T1 is the SK block alone (no conv around it); no normalisation.

    Both inputs and outputs ``(B, w, H, W)``, values ``>= 0``.
    """

    def __init__(self, width: int, kernels: tuple[int, ...] = (3, 5), reduction: int = 16) -> None:
        super().__init__()
        self.width = int(width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.t1 = SKBlock(width, kernels, reduction)
        self.t2 = nn.Conv2d(width, width, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, u: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        r = u
        u = self.relu(self.conv2(self.relu(self.conv1(u))) + r)
        u = self.relu(self.t1(u) + p)
        p = u
        u = self.relu(self.t2(u) + r)
        return u, p
