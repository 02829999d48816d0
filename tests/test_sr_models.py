"""SR backbones: shapes, the g/h split, published parameter counts, and that one learns."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightrestore.degradations.resize import imresize
from lightrestore.models.sr import (
    DRRN,
    EDSR,
    IDN,
    SRCNN,
    VDSR,
    LapSRN,
    MeanShift,
    bicubic_upsample,
    count_parameters,
    drrn_dlnet,
    drrn_original,
    edsr,
    edsr_baseline,
    transposed_upsampler,
    vdsr_dlnet,
)

# tiny tensors: intra-op threading only adds overhead (10-50x on a busy 2-core box)
pytestmark = pytest.mark.usefixtures("one_thread")


# tiny configurations: every architectural path, few layers and channels
TINY = {
    "srcnn": lambda s, c: SRCNN(s, c, widths=(8, 4)),
    "vdsr": lambda s, c: VDSR(s, c, depth=3, width=8),
    "vdsr_lr": lambda s, c: VDSR(s, c, depth=3, width=8, lr_features=True),
    "drrn_dlnet": lambda s, c: DRRN(s, c, width=8, num_units=3, fuse_channels=4),
    "drrn_original": lambda s, c: DRRN(
        s, c, width=8, num_units=2, negative_slope=0.0, concat_every=0, lr_features=False
    ),
    "idn": lambda s, c: IDN(s, c, width=16, delta=4, num_blocks=2),
    "lapsrn": lambda s, c: LapSRN(s, c, depth=2, width=8),
    "edsr": lambda s, c: EDSR(s, c, num_blocks=2, width=8, res_scale=0.1),
}
# where z lives: the LR grid or the HR grid
Z_ON_LR_GRID = {"vdsr_lr", "drrn_dlnet", "idn"}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("name", sorted(TINY))
def test_shapes_and_exact_split(name, scale, channels):
    torch.manual_seed(0)
    m = TINY[name](scale, channels).eval()
    assert (m.scale, m.channels) == (scale, channels)
    x = torch.rand(2, channels, 12, 10)
    with torch.no_grad():
        y = m(x)
        z = m.features(x)
        y2 = m.head(z, x)
    assert y.shape == (2, channels, 12 * scale, 10 * scale)
    grid = (12, 10) if name in Z_ON_LR_GRID else (12 * scale, 10 * scale)
    assert z.shape[0] == 2 and z.shape[-2:] == grid
    assert torch.equal(y, y2)  # forward(x) == head(features(x), x), bit for bit
    assert torch.isfinite(y).all()


def test_head_is_differentiable_in_z_and_reusable():
    # DL-Net optimises z with x fixed: h must depend on z and be callable repeatedly
    torch.manual_seed(0)
    for name in ("vdsr_lr", "idn", "lapsrn", "drrn_dlnet"):
        m = TINY[name](4, 1).eval()
        x = torch.rand(1, 1, 8, 8)
        z = m.features(x).detach().requires_grad_(True)
        y1 = m.head(z, x)
        y1.square().sum().backward()
        assert z.grad is not None and z.grad.abs().sum() > 0, name
        with torch.no_grad():
            assert torch.equal(m.head(z, x), y1.detach()), name


# ----------------------------------------------------------- published parameter counts


def test_srcnn_parameter_count():
    # Dong et al., TPAMI 2016: the 9-1-5 network (n1=64, n2=32) has 8,032 parameters on
    # Y; that number counts weights only (9·9·64 + 64·32 + 5·5·32); biases add 97.
    m = SRCNN(2, 1)
    weights = sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight"))
    assert weights == 8032
    assert count_parameters(m) == 8129


def test_vdsr_parameter_count():
    # VDSR, 20 layers × 64 ch on Y: 665k as listed by DRRN (Tai et al. 2017, Table) and
    # LapSRN. Ours: 664,704 weights + 1,217 biases.
    n = count_parameters(VDSR(2, 1))
    assert n == 665_921
    assert abs(n - 665_000) / 665_000 < 0.01
    # DL-Net's LR-grid variant: the 20th layer is IDN's 17x17 upscaler (64·289 + 1)
    assert count_parameters(vdsr_dlnet(2, 1)) == 665_921 - (64 * 9 + 1) + (64 * 289 + 1)


def test_drrn_parameter_counts():
    # Tai et al. 2017: DRRN B1U9 has 297k parameters on Y. Its convs (weights only):
    # 3·3·128 + 2·3·3·128·128 + 3·3·128 = 297,216; our total adds the conv biases (385)
    # and the pre-activation BatchNorm affine parameters of the authors' code
    # (2·(1 + 18·128 + 128) = 4,866) -> 302,467 (1.8 % over the paper's count).
    m = drrn_original(2, 1)
    convs = sum(c.weight.numel() for c in m.modules() if isinstance(c, torch.nn.Conv2d))
    assert convs == 297_216
    assert count_parameters(m) == 302_467
    assert abs(count_parameters(m) - 297_000) / 297_000 < 0.02
    # DL-Net (Guo et al., Sec. 4.2): "our DRRN: ~0.36M". Ours is 345,091 (4 % under):
    # the paper does not specify its upscaling layer; we use IDN's 17x17 transposed conv.
    # Breakdown from the original's 302,467: - 3x3 end conv (1,153) - final BN on 128 ch
    # (256) + BN on the 384 concat maps (768) + conv4 1x1 384->64 (24,640) + BN on 64 ch
    # (128) + IDN upscaler 64->1 (18,497).
    n = count_parameters(drrn_dlnet(2, 1))
    assert n == 345_091
    assert abs(n - 360_000) / 360_000 < 0.05


def test_drrn_shares_its_recursive_weights():
    kw = dict(width=8, concat_every=0, batch_norm=False, lr_features=False)
    a, b = DRRN(2, 1, num_units=3, **kw), DRRN(2, 1, num_units=9, **kw)
    assert count_parameters(a) == count_parameters(b)
    with pytest.raises(ValueError):
        DRRN(2, 1, num_units=8, concat_every=3)


def test_lapsrn_parameter_count():
    # Lai et al. 2017: LapSRN ×4 (d=10) has 812k parameters on Y. Weights only:
    # 3·3·64 + 2·(10·3·3·64·64 + 3·3·64·64 + 3·3·64 + 4·4) = 812,768 (the feature
    # upsampler is a 3x3 transposed conv in the authors' init_LapSRN.m); biases add 1,474.
    m = LapSRN(4, 1)
    weights = sum(p.numel() for n, p in m.named_parameters() if n.endswith("weight"))
    assert weights == 812_768
    assert count_parameters(m) == 814_242
    assert len(m.levels) == 2 and len(LapSRN(8, 1).levels) == 3 and len(LapSRN(3, 1).levels) == 1
    with pytest.raises(ValueError):
        LapSRN(6, 1)


def test_idn_parameter_count():
    # Hui et al. 2018: IDN has 553k parameters (Y); ours 552,769 at every scale (the
    # RBlock's 17x17 kernel does not depend on the stride).
    assert {count_parameters(IDN(s, 1)) for s in (2, 3, 4)} == {552_769}


def test_edsr_parameter_counts():
    # EDSR-PyTorch, RGB: baseline ×2 1,369,859 (1.37M); paper Table 1 (×4): baseline
    # 1.5M, EDSR 43M; full ×2 40,729,603 (40.7M). The mean shift is a buffer.
    assert count_parameters(edsr_baseline(2, 3)) == 1_369_859
    assert count_parameters(edsr_baseline(4, 3)) == 1_517_571
    with torch.device("meta"):  # 40M parameters: count without allocating
        full2, full4 = edsr(2, 3), edsr(4, 3)
    assert count_parameters(full2) == 40_729_603
    assert count_parameters(full4) == 43_089_923
    assert full2.res_scale == 0.1 and full2.body[0].res_scale == 0.1
    with pytest.raises(ValueError):
        EDSR(5, 3)


# ---------------------------------------------------------------------------- helpers


def test_bicubic_upsample_and_mean_shift():
    x = torch.full((1, 2, 5, 7), 0.3)
    y = bicubic_upsample(x, 3)
    assert y.shape == (1, 2, 15, 21) and torch.allclose(y, torch.full_like(y, 0.3))
    noisy = torch.rand(1, 2, 5, 7)
    # the same MATLAB bicubic that makes the LR images (not torch's a = -0.75 kernel)
    assert torch.allclose(bicubic_upsample(noisy, 2), imresize(noisy, 2.0), atol=1e-6)
    torch_bicubic = F.interpolate(noisy, scale_factor=2, mode="bicubic", align_corners=False)
    assert not torch.allclose(bicubic_upsample(noisy, 2), torch_bicubic, atol=1e-3)
    assert bicubic_upsample(noisy, 1) is noisy
    img = torch.rand(2, 3, 4, 4)
    sub, add = MeanShift((0.4488, 0.4371, 0.4040), -1), MeanShift((0.4488, 0.4371, 0.4040), 1)
    assert torch.allclose(add(sub(img)), img)
    assert torch.allclose(sub(img)[:, 2], img[:, 2] - 0.4040)
    assert count_parameters(sub) == 0


def test_transposed_upsampler_exact_grid():
    for s in (2, 3, 4):
        up = transposed_upsampler(4, 1, s)
        assert up(torch.rand(1, 4, 5, 6)).shape == (1, 1, 5 * s, 6 * s)


def test_lapsrn_image_branch_is_bilinear_and_pyramid():
    torch.manual_seed(0)
    m = LapSRN(4, 1, depth=1, width=4).eval()
    x = torch.rand(1, 1, 6, 6)
    with torch.no_grad():
        levels = m.forward_pyramid(x)
        assert [t.shape[-1] for t in levels] == [12, 24]
        assert torch.equal(levels[-1], m(x))
        for level in m.levels:  # no residuals: the output is the image branch alone
            level.residual.weight.zero_()
            level.residual.bias.zero_()
        y = m(torch.full((1, 1, 6, 6), 0.7))
    # bilinear transposed convs keep a constant image constant away from the border
    assert torch.allclose(y[..., 4:-4, 4:-4], torch.full_like(y[..., 4:-4, 4:-4], 0.7))


def test_srcnn_learns_on_a_fixed_batch():
    torch.manual_seed(0)
    hr = F.avg_pool2d(torch.rand(4, 1, 48, 48), 2)  # smooth-ish 24x24 targets
    lr = F.avg_pool2d(hr, 2)
    m = SRCNN(2, 1, widths=(16, 8))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = F.mse_loss(m(lr), hr)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(("scale", "kernel"), [(1, 5), (2, 17), (3, 17), (4, 17), (3, 9)])
def test_sub_pixel_upsampler_equals_the_transposed_conv(scale, kernel):
    """The upscaler computed as conv2d + pixel_shuffle gives torch's conv_transpose2d output
    and the same gradients (float64)."""
    import torch.nn.functional as F

    from lightrestore.models.sr.common import transposed_upsampler

    torch.manual_seed(0)
    up = transposed_upsampler(5, 2, scale, kernel).double()
    x = torch.randn(2, 5, 7, 6, dtype=torch.float64, requires_grad=True)
    pad = kernel // 2
    ref = F.conv_transpose2d(x, up.weight, up.bias, stride=scale, padding=pad,
                             output_padding=scale - 1)  # fmt: skip
    out = up(x)
    assert out.shape == (2, 2, 7 * scale, 6 * scale) and torch.allclose(out, ref, atol=1e-12)
    g = torch.randn_like(ref)
    grads = torch.autograd.grad((out * g).sum(), (x, up.weight, up.bias))
    refs = torch.autograd.grad((ref * g).sum(), (x, up.weight, up.bias))
    for a, b in zip(grads, refs):
        assert torch.allclose(a, b, atol=1e-10)
    assert set(up.state_dict()) == {"weight", "bias"}  # checkpoints keep their keys
