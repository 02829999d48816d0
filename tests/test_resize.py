"""MATLAB bicubic imresize and the SR degradation, against independent references.

References: Pillow's BICUBIC on mode-'F' images (a = -0.5, support stretched when
downscaling; it clips the window at the border instead of mirroring, so only the interior
is compared) and a loop-based numpy transcription of MATLAB's documented algorithm
(symmetric padding, whole image).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from lightrestore.degradations import Resize
from lightrestore.degradations.resize import imresize
from lightrestore.errors import ConfigError

# Measured: max |ours - Pillow| over the interior ~1.2e-7 (float32 output), ~7e-8 in float64.
PILLOW_ATOL = 1e-6


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def smooth_image(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    return (0.5 + 0.3 * np.sin(6 * xx + 2 * yy) * np.cos(4 * yy)).astype(np.float32)


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w)).astype(np.float32)


# ------------------------------------------------------- MATLAB reference (numpy, loops)
def keys_cubic(t: float) -> float:
    """Keys' cubic kernel, a = -0.5."""
    t = abs(t)
    if t <= 1:
        return 1.5 * t**3 - 2.5 * t**2 + 1
    if t < 2:
        return -0.5 * t**3 + 2.5 * t**2 - 4 * t + 2
    return 0.0


def ref_resize_axis(a: np.ndarray, scale: float, out: int) -> np.ndarray:
    """Resize axis 0 of ``a`` as MATLAB's bicubic imresize (antialiased), by loops.

    Output pixel ``i`` (0-based) is centred at input coordinate ``(i + 0.5) / scale - 0.5``;
    when downscaling the kernel becomes ``scale * k(scale * t)``; weights are normalised;
    the input is extended by symmetric (edge-repeating) padding.
    """
    k = min(scale, 1.0)
    half = 2.0 / k
    pad = math.ceil(half) + 2
    # np.pad's symmetric mode repeats the mirror (period 2n) when pad > n
    padded = np.pad(a, [(pad, pad)] + [(0, 0)] * (a.ndim - 1), mode="symmetric")
    res = np.zeros((out, *a.shape[1:]))
    for i in range(out):
        centre = (i + 0.5) / scale - 0.5
        total, acc = 0.0, 0.0
        for j in range(math.floor(centre - half), math.ceil(centre + half) + 1):
            wgt = k * keys_cubic(k * (centre - j))
            total += wgt
            acc = acc + wgt * padded[j + pad]
        res[i] = acc / total
    return res


def ref_imresize(img: np.ndarray, scale=None, size=None) -> np.ndarray:
    """MATLAB ``imresize(img, scale | [h w], 'bicubic')`` of a 2-D float image."""
    h, w = img.shape
    if size is None:
        size = (math.ceil(h * scale), math.ceil(w * scale))
        scales = (scale, scale)
    else:
        scales = (size[0] / h, size[1] / w)
    out = ref_resize_axis(img.astype(np.float64), scales[0], size[0])
    return ref_resize_axis(out.T, scales[1], size[1]).T


def ours(img: np.ndarray, dtype=torch.float64, **kw) -> np.ndarray:
    return imresize(torch.from_numpy(img).to(dtype)[None, None], **kw)[0, 0].double().numpy()


# ------------------------------------------------------------------------ imresize
@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 2, 3])
@pytest.mark.parametrize("kind", ["random", "smooth"])
def test_imresize_matches_pillow_in_the_interior(scale, kind):
    h, w = 48, 36
    img = random_image(h, w) if kind == "random" else smooth_image(h, w)
    oh, ow = math.ceil(h * scale), math.ceil(w * scale)
    ref = np.asarray(Image.fromarray(img).resize((ow, oh), Image.Resampling.BICUBIC))
    got = ours(img, dtype=torch.float32, scale=scale)
    assert got.shape == ref.shape == (oh, ow)
    # Pillow clips the window at the border (MATLAB mirrors): drop the affected pixels
    b = 3 if scale < 1 else math.ceil(2 * scale) + 1
    np.testing.assert_allclose(got[b:-b, b:-b], ref[b:-b, b:-b], rtol=0, atol=PILLOW_ATOL)
    # the borders do differ, so the crop above is needed (and the two are not the same code)
    assert np.abs(got - ref).max() > 1e-4


@pytest.mark.parametrize(
    ("shape", "scale", "size"),
    [
        ((13, 10), 1 / 2, None),
        ((13, 10), 1 / 3, None),
        ((13, 10), 1 / 4, None),
        ((7, 6), 2, None),
        ((7, 6), 3, None),
        ((3, 5), 1 / 4, None),  # kernel wider than the image: mirrored more than once
        ((13, 10), None, (5, 7)),  # per-axis scale out / in
    ],
)
def test_imresize_matches_matlab_algorithm_whole_image(shape, scale, size):
    img = random_image(*shape, seed=1).astype(np.float64)
    ref = ref_imresize(img, scale=scale, size=size)
    got = ours(img, scale=scale, size=size)
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("scale", [1 / 4, 1 / 3, 0.7, 2, 3])
def test_imresize_constant_stays_constant(scale):
    x = torch.full((2, 3, 15, 11), 0.37, dtype=torch.float64)
    y = imresize(x, scale)
    assert y.shape == (2, 3, math.ceil(15 * scale), math.ceil(11 * scale))
    torch.testing.assert_close(y, torch.full_like(y, 0.37), rtol=0, atol=1e-12)


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("up", [False, True])
def test_imresize_linear_ramp_stays_linear_in_the_interior(factor, up):
    """Keys' kernel reproduces linear functions: output = ramp at the pixel centre."""
    n = 24
    ramp = 0.1 + 0.03 * torch.arange(n, dtype=torch.float64)
    x = ramp.view(1, 1, 1, n).expand(1, 1, n, n)
    scale = factor if up else 1 / factor
    y = imresize(x, scale)[0, 0, 2]
    centre = (torch.arange(y.numel(), dtype=torch.float64) + 0.5) / scale - 0.5
    expect = 0.1 + 0.03 * centre
    b = 3 if not up else 2 * factor + 1
    torch.testing.assert_close(y[b:-b], expect[b:-b], rtol=0, atol=1e-12)


def test_imresize_shapes_dtype_and_errors():
    x = torch.rand(2, 3, 13, 10, generator=gen())
    assert imresize(x, 1 / 3).shape == (2, 3, 5, 4)
    assert imresize(x, 2).shape == (2, 3, 26, 20)
    assert imresize(x, size=(8, 9)).shape == (2, 3, 8, 9)
    assert imresize(x, scale=0.5, size=(6, 5)).shape == (2, 3, 6, 5)
    assert imresize(x, 0.5).dtype == torch.float32
    assert imresize(x.double(), 0.5).dtype == torch.float64
    with pytest.raises(TypeError):
        imresize((x * 255).to(torch.uint8), 0.5)
    with pytest.raises(ValueError):
        imresize(x)


def test_imresize_is_not_clamped_and_is_differentiable():
    x = torch.zeros(1, 1, 16, 16)
    x[..., ::2, :] = 1.0  # stripes: bicubic upscaling overshoots
    y = imresize(x, 2)
    assert y.max() > 1.0 and y.min() < 0.0
    x.requires_grad_(True)
    imresize(x, 0.5).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


# -------------------------------------------------------------------------- Resize
def all_levels(d: Resize, per_level: int) -> torch.Tensor:
    return torch.arange(1, d.ladder.extra_level + 1).repeat(per_level)


@pytest.mark.parametrize(("scale", "hw", "lr"), [(2, (16, 12), (8, 6)), (3, (16, 12), (6, 4))])
def test_resize_lr_shape(scale, hw, lr):
    d = Resize(scale=scale)
    x = torch.rand(4, 3, *hw, generator=gen())
    y, params = d(x, torch.tensor([1, 2, 3, 6]), gen(1))
    assert y.shape == (4, 3, *lr)
    assert d.operator(x, params).shape == (4, 3, *lr)
    assert d.upsample(y).shape == (4, 3, lr[0] * scale, lr[1] * scale)
    assert d.upsample(y, hw).shape == (4, 3, *hw)


def test_resize_default_ladder_and_draws_in_bins():
    d = Resize()
    assert d.ladder.n_levels == 5 and d.ladder.extra == (3.0, 3.6)
    assert d.kernel_radius == 11
    levels = all_levels(d, 20)
    params = d.sample(levels, (3, 16, 16), gen(2))
    assert torch.equal(params["severity"], params["sigma"])
    table = d.ladder.table("cpu")[levels - 1]
    assert (params["sigma"] >= table[:, 0]).all() and (params["sigma"] <= table[:, 1]).all()
    assert params["sigma"].unique().numel() > 50  # drawn per sample


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_resize_without_blur_is_exactly_imresize(scale):
    x = torch.rand(3, 3, 24, 24, generator=gen(3))
    expect = imresize(x, 1 / scale).clamp(0, 1)
    # PSPL's bicubic-only ladder: no blur at all
    bicubic = Resize(scale=scale, bins=[[0, 0]], extra=[0, 0])
    assert bicubic.kernel_radius == 0
    y, _ = bicubic(x, torch.ones(3, dtype=torch.long), gen())
    assert torch.equal(y, expect)
    # u = 0 on the default ladder: the 23-tap Gaussian is an exact impulse
    d = Resize(scale=scale)
    params = d.sample(torch.ones(3, dtype=torch.long), x.shape[1:], gen(), {"severity": 0})
    assert torch.equal(d.apply(x, params), expect)


def test_resize_operator_is_linear():
    d = Resize(scale=2)
    a = torch.rand(3, 3, 20, 20, generator=gen(4), dtype=torch.float64)
    b = torch.rand(3, 3, 20, 20, generator=gen(5), dtype=torch.float64)
    params = d.sample(torch.tensor([1, 4, 6]), a.shape[1:], gen(6))
    lhs = d.operator(1.7 * a - 0.4 * b, params)
    rhs = 1.7 * d.operator(a, params) - 0.4 * d.operator(b, params)
    torch.testing.assert_close(lhs, rhs, rtol=0, atol=1e-12)


def test_resize_apply_clamps_and_operator_does_not():
    d = Resize(scale=2)
    x = torch.zeros(2, 1, 16, 16)
    x[..., 7:9, :] = 1.0  # a bright line: the cubic's negative lobes undershoot beside it
    x[..., :, 12] = 1.0
    params = d.sample(torch.ones(2, dtype=torch.long), x.shape[1:], gen(), {"severity": 0})
    raw = d.operator(x, params)
    assert raw.min() < -0.01
    lr = d.apply(x, params)
    assert lr.min() >= 0.0 and lr.max() <= 1.0
    assert torch.equal(lr, raw.clamp(0, 1))


def test_resize_blur_then_downsample_matches_scipy_and_matlab_reference():
    """Per-sample Gaussian (scipy, mode 'mirror' = reflect, same radius), then MATLAB ×1/3."""
    d = Resize(scale=3)
    x = torch.rand(3, 2, 18, 15, generator=gen(7), dtype=torch.float64)
    params = d.sample(torch.tensor([1, 3, 6]), x.shape[1:], gen(8))
    got = d.operator(x, params)
    for i, sigma in enumerate(params["sigma"].tolist()):
        for c in range(2):
            blurred = gaussian_filter(x[i, c].numpy(), sigma, mode="mirror", radius=d.kernel_radius)
            ref = ref_imresize(blurred, scale=1 / 3)
            # the blur kernel is built in float32 (blur.py), hence ~1e-7
            np.testing.assert_allclose(got[i, c].numpy(), ref, rtol=0, atol=1e-6)


def test_resize_upsample_is_bicubic_on_the_hr_grid():
    d = Resize(scale=3)
    y = torch.rand(2, 3, 6, 5, generator=gen(9), dtype=torch.float64)
    full = d.upsample(y)
    torch.testing.assert_close(full, imresize(y, 3), rtol=0, atol=0)
    # HR 17x14 (not a multiple of 3): the top-left crop of the aligned upscaling
    # (equal up to the matmul order)
    torch.testing.assert_close(d.upsample(y, (17, 14)), full[..., :17, :14], rtol=0, atol=1e-14)
    np.testing.assert_allclose(full[0, 0].numpy(), ref_imresize(y[0, 0].numpy(), 3), atol=1e-12)


def test_resize_config_errors_and_truncation_warning():
    for bad in (0, 1.5, -2):
        with pytest.raises(ConfigError):
            Resize(scale=bad)
    with pytest.raises(ConfigError):
        Resize(bins=[[-1, 0]])
    with pytest.raises(ConfigError):
        Resize(kernel_radius=-1)
    d = Resize(scale=2)
    with pytest.warns(UserWarning, match="truncated"):
        d.sample(torch.ones(1, dtype=torch.long), (3, 8, 8), gen(), {"severity": 5.0})
