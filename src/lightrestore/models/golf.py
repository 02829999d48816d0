"""The Golf Optimizer's networks F and G (golf-optimizer.txt §5.1, Table 1), derived from
the paper's per-layer parameter counts.

The text of §5.1 survives only in part: both networks are "ResNet-like", stride 1
everywhere, a first conv, four *Layers* of two Basic Blocks (BB) each, whose residual
branch "is stacked by six basic layers", and a last conv; 50 layers in all; the widths
(the number of filters of F and of G) are lost. Table 1 keeps the per-row parameter
counts (G | F): first 2,352 | 4,704; Layers 1-3 38,016 | 151,808 each; Layer 4
3,347 | 5,779; last 441 | 441; totals 120,188 | 466,348. One architecture
:class:`GolfNet` reproduces every row exactly for both networks, with width ``w = 16``
(G) and ``w = 32`` (F). The derivation (``w`` the width, ``k`` a kernel's area):

* **First row** ``= 49·3·w``: 2,352 = 49·3·16, 4,704 = 49·3·32. A 7×7 conv ``3 -> w``
  without bias, nothing else (no BatchNorm after it). This also fixes the widths:
  **G: w = 16, F: w = 32**.
* **Last row** ``= 441 = 49·3·3``: a 7×7 conv ``3 -> 3`` without bias (so the channels
  are already 3 when the last conv starts: Layer 4 goes from ``w`` to 3).
* **Layers 1-3** (rows 2-4), two identical blocks each. A block whose layers all keep
  ``w`` channels costs ``a·w² + b·w`` (convs ``w -> w``; BatchNorms or biases over
  ``w``), so ``256a + 16b = 38,016 / 2`` and ``1024a + 32b = 151,808 / 2`` ⇒
  ``a = 74, b = 4``.
  ``a`` is the sum of the kernel areas of the block's ``w -> w`` convs. Odd square
  kernels have areas ≡ 1 (mod 8), so ``n`` of them sum to ≡ ``n`` (mod 8); 74 ≡ 2 ⇒
  2 (or 10) convs, and six basic layers leave room for two: ``74 = 49 + 25``, the
  only split into two odd squares: **one 7×7 and one 5×5 conv** (no 1×1, no 3×3).
  ``b = 4``: two BatchNorms over ``w`` channels (``2w`` each: scale and shift), the
  convs without bias. The six basic layers are then BN, ReLU, conv, BN, ReLU, conv;
  the shortcut is the identity (no parameters).
* **Layer 4** ``= A·w² + B·w + C``: ``256A + 16B + C = 3,347`` and
  ``1024A + 32B + C = 5,779`` ⇒ ``48A + B = 152``, so ``A ≤ 3``: no 3×3 or larger
  ``w -> w`` conv in Layer 4 (``A ≥ 9``); ``A = 1`` would be a lone 1×1 ``w -> w``
  conv that no other block has. ``A = 0``, hence ``B = 152, C = 915``: block 4.1 takes
  ``w`` channels and gives 3, block 4.2 keeps 3.

  - ``B = 152``. The ``w``-linear terms are convs ``w -> 3`` (``3k·w``) and norms or
    biases over ``w`` channels (``w`` or ``2w``). 152 is not a multiple of 3, so with
    conv-BN-ReLU ordering (ResNet v1, all norms after a conv ``w -> 3``) nothing fits;
    the natural reading is ``152 = 2 + 3·50``: a BatchNorm over the block's ``w``
    *input* channels (2w) and convs ``w -> 3`` of total area 50 = 49 + 1: the 7×7 conv
    (147w) and a 1×1 projection shortcut (3w). (25 + 25 would put the 5×5 first and make ``C`` far
    larger than 915.) So the blocks are **pre-activation** blocks (He et al. 2016,
    "Identity mappings"): BN, ReLU, conv 7×7, BN, ReLU, conv 5×5, plus the shortcut.
  - ``C = 915``: block 4.1's BN(3) (6) + 5×5 conv ``3 -> 3`` (225); block 4.2 (identity
    shortcut): BN(3) 6 + 7×7 conv 441 + BN(3) 6 + 5×5 conv 225 = 678; together 909.
    The remaining 6 is a BN(3) on the projection (a bias, 3, leaves 3 unexplained).
    ✓

  Check: G = 2,352 + 3·38,016 + 3,347 + 441 = 120,188; F = 4,704 + 3·151,808 + 5,779
  + 441 = 466,348; together 586,536 float32 = 2.24 MiB (the paper's "2.24 MB"; F 1.78,
  G 0.46, its Table 3). Layers: first + 4·2·6 + last = 50 (the shortcut's 1×1 conv
  and BN are not counted, as in ResNet).

Choices the counts leave open (ours):

* The paper says every conv except the first and last keeps ``w`` channels; the
  counts contradict it for Layer 4, whose first conv and shortcut map ``w -> 3``. We
  follow the counts.
* In every block, the second BatchNorm (over the first conv's output) could instead be
  biases on both convs: ``2w`` either way in Layers 1-3 and 6 either way in Layer 4.
  We use bias-free convs with BatchNorm, as the bias-free first and last convs suggest.
* The 7×7 conv comes first in Layers 1-3 as in Layer 4, where the counts fix it.
* The projection shortcut of block 4.1 (1×1 conv + BN(3), torchvision's
  ``downsample``) takes the block's input ``x``. A BN(3) after Layer 4 instead of the
  projection's would count the same.
* No activation between Layer 4 and the last conv (none is counted among the 50
  layers), no ReLU after the residual additions (pre-activation), no clamp and no
  global skip: ``forward(x) = last(layer4(...(first(x))))``. The Golf method adds
  G's output to its input itself (``x_{k+1} = x_k + G(x_k)``); ``global_skip=True``
  makes the network return ``x + net(x)`` (for an F used as a residual step; off by
  default, and never for G).
* PyTorch's default initialisation (the paper does not give one).

Split contract (:mod:`lightrestore.models.split`): ``features(x)`` is Layer 4's output
(3 channels, no activation follows it), ``head(z, x)`` the last conv (its activation is
the identity), plus ``x`` with ``global_skip``.

``python -m lightrestore.models.golf`` prints the per-row counts beside the paper's.
"""

from __future__ import annotations

from torch import Tensor, nn

#: Table 1 of the paper: (row, G's count, F's count)
PAPER_TABLE = (
    ("first", 2352, 4704),
    ("layer1", 38016, 151808),
    ("layer2", 38016, 151808),
    ("layer3", 38016, 151808),
    ("layer4", 3347, 5779),
    ("last", 441, 441),
    ("total", 120188, 466348),
)
G_WIDTH, F_WIDTH = 16, 32


class PreActBlock(nn.Module):
    """A pre-activation basic block: ``x + conv5(relu(bn(conv7(relu(bn(x))))))``.

    ``(B, c_in, H, W) -> (B, c_out, H, W)``, stride 1, ``same`` padding. With
    ``c_in != c_out`` the shortcut is a 1×1 conv + BatchNorm (``c_out`` channels) of ``x``;
    otherwise the identity. The convs have no bias. Six basic layers: BN, ReLU, conv 7×7,
    BN, ReLU, conv 5×5.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 7, padding=3, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 5, padding=2, bias=False)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return self.shortcut(x) + out


class GolfNet(nn.Module):
    """F and G of the Golf Optimizer: a stride-1 pre-activation ResNet (see the module
    docstring for the derivation from the paper's Table 1).

    ``first`` (7×7 conv ``C -> w``), ``layer1..layer3`` (two ``w -> w`` blocks each),
    ``layer4`` (a ``w -> C`` block with a projection shortcut, then a ``C -> C`` block),
    ``last`` (7×7 conv ``C -> C``); no bias in any conv.

    Args:
        channels: image channels ``C`` (3 in the paper).
        width: the number of filters ``w``: 16 for G, 32 for F (:func:`golf_g`,
            :func:`golf_f`).
        global_skip: return ``x + net(x)`` (off: the paper's networks; the method adds
            G's residual itself).

    Input ``(B, C, H, W)`` in [0, 1], any ``H, W``; output the same shape, roughly in
    [0, 1] (unclamped: G's output is a correction, F's an image).
    """

    def __init__(self, channels: int = 3, width: int = 16, global_skip: bool = False) -> None:
        super().__init__()
        self.channels, self.width, self.global_skip = int(channels), int(width), bool(global_skip)
        c, w = self.channels, self.width
        self.first = nn.Conv2d(c, w, 7, padding=3, bias=False)
        self.layer1 = nn.Sequential(PreActBlock(w, w), PreActBlock(w, w))
        self.layer2 = nn.Sequential(PreActBlock(w, w), PreActBlock(w, w))
        self.layer3 = nn.Sequential(PreActBlock(w, w), PreActBlock(w, w))
        self.layer4 = nn.Sequential(PreActBlock(w, c), PreActBlock(c, c))
        self.last = nn.Conv2d(c, c, 7, padding=3, bias=False)

    def features(self, x: Tensor) -> Tensor:
        """``(B, C, H, W) -> (B, C, H, W)``: Layer 4's output (real-valued, no activation)."""
        x = self.first(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def head(self, z: Tensor, x: Tensor) -> Tensor:
        """The last conv (identity activation); ``+ x`` with ``global_skip``."""
        out = self.last(z)
        return x + out if self.global_skip else out

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x), x)

    def row_counts(self) -> dict[str, int]:
        """Parameters per row of the paper's Table 1 (``first``, ``layer1``..``layer4``,
        ``last``, ``total``)."""
        rows = {name: sum(p.numel() for p in getattr(self, name).parameters())
                for name in ("first", "layer1", "layer2", "layer3", "layer4", "last")}  # fmt: skip
        rows["total"] = sum(p.numel() for p in self.parameters())
        return rows

    def n_layers(self) -> int:
        """The paper's layer count: first + six basic layers per block + last (50)."""
        blocks = [m for m in self.modules() if isinstance(m, PreActBlock)]
        return 2 + 6 * len(blocks)


def golf_f(channels: int = 3) -> GolfNet:
    """F, the aggressive first step: width 32, 466,348 parameters (RGB)."""
    return GolfNet(channels, F_WIDTH)


def golf_g(channels: int = 3) -> GolfNet:
    """G, the recurrent residual unit: width 16, 120,188 parameters (RGB)."""
    return GolfNet(channels, G_WIDTH)


def parameter_table() -> str:
    """Our per-row counts for G and F beside the paper's Table 1, and the model size."""
    g, f = golf_g().row_counts(), golf_f().row_counts()
    lines = [
        "| row | G (w=16) | paper G | F (w=32) | paper F |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for row, pg, pf in PAPER_TABLE:
        lines.append(f"| {row} | {g[row]:,} | {pg:,} | {f[row]:,} | {pf:,} |")
    mib = 4 / 2**20  # float32 bytes per parameter, in MiB (the paper's "MB")
    lines.append(
        f"model size (float32): F {f['total'] * mib:.2f} MB, G {g['total'] * mib:.2f} MB, "
        f"total {(f['total'] + g['total']) * mib:.2f} MB (paper: 1.78, 0.46, 2.24; MB = 2^20 bytes)"
    )
    lines.append(f"layers: G {golf_g().n_layers()}, F {golf_f().n_layers()} (paper: 50)")
    match = all(g[r] == pg and f[r] == pf for r, pg, pf in PAPER_TABLE)
    lines.append("every row matches the paper" if match else "MISMATCH with the paper")
    return "\n".join(lines)


if __name__ == "__main__":
    print(parameter_table())
