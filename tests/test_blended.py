"""LIRA / RL-Restore blended distortions and their single factors (JPEG, haze, darkness),
against independent references: scipy (blur), Pillow (JPEG), brute-force enumeration of
the sub-level triples, hand computations (haze, darkness); plus the task configs."""

from __future__ import annotations

import io
import itertools
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import skimage.data
import torch
from helpers import compose_cfg
from hydra.utils import instantiate
from PIL import Image

from lightrestore.degradations import JPEG, BlendedDistortions, Darkness, Haze
from lightrestore.degradations.chain import (
    BLUR_GRID,
    JPEG_GRID,
    NOISE_GRID,
    gaussian_blur21,
    triple_table,
)
from lightrestore.degradations.darkness import darken
from lightrestore.degradations.haze import haze, synthetic_depth
from lightrestore.degradations.jpeg import jpeg_compress
from lightrestore.errors import ConfigError, LevelError

pytestmark = pytest.mark.usefixtures("one_thread")

GROUPS = {"mild": (9, 11), "moderate": (12, 17), "severe": (18, 20)}


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def photo(h: int, w: int, size: int = 128) -> torch.Tensor:
    """``(1, 3, h, w)`` top-left crop of scikit-image's astronaut downscaled to ``size``."""
    img = Image.fromarray(skimage.data.astronaut()).resize((size, size), Image.BICUBIC)
    arr = np.array(img, dtype=np.float32)[:h, :w] / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None].contiguous()


def fspecial(sigma: float, size: int = 21) -> np.ndarray:
    """MATLAB ``fspecial('gaussian', size, sigma)``, float64."""
    r = (size - 1) / 2
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    return h / h.sum()


def pillow_jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode an ``(H, W, 3)`` uint8 array with Pillow at ``quality`` and decode it."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def to_u8(x: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` float in [0, 1] -> ``(H, W, C)`` uint8, rounded (``im2uint8``)."""
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1.0 / ((a.double() - b.double()) ** 2).mean()))


def brute_force(lo: int, hi: int) -> set[tuple[int, int, int]]:
    """Every ordered sub-level triple whose combined index k + m + n - 2 lies in lo..hi."""
    r = range(1, 11)
    return {t for t in itertools.product(r, r, r) if lo <= sum(t) - 2 <= hi}


# --------------------------------------------------------------------------- the groups
def test_group_tables_match_a_brute_force_enumeration():
    ranges = list(GROUPS.values())
    counts, table = triple_table(ranges, "cpu")
    expected = [brute_force(lo, hi) for lo, hi in ranges]
    # by hand: k + m + n = S has C(S-1, 2) solutions in positive integers, minus 3 C(S-11, 2)
    # with a part > 10 (S <= 21); S and 33 - S have as many (k -> 11 - k); index = S - 2
    n_sum = {s: math.comb(s - 1, 2) - 3 * math.comb(max(s - 11, 0), 2) for s in range(3, 17)}
    n_sum.update({s: n_sum[33 - s] for s in range(17, 31)})
    assert [n_sum[11] + n_sum[12] + n_sum[13], sum(n_sum[s] for s in range(14, 20))] == [163, 434]
    assert [len(e) for e in expected] == [163, 434, 163]
    assert counts.tolist() == [len(e) for e in expected]
    for i, e in enumerate(expected):
        rows = {tuple(t) for t in table[i, : counts[i]].tolist()}
        assert rows == e  # each ordered triple exactly once
        assert len(table[i, : counts[i]].unique(dim=0)) == len(e)


def test_drawn_triples_lie_in_their_group_and_cover_it_uniformly():
    d = BlendedDistortions()
    assert d.ladder.test_levels == [1, 2, 3] and d.level_names == ["mild", "moderate", "severe"]
    n = 12000
    levels = torch.tensor([1, 2, 3]).repeat_interleave(n)
    p = d.sample(levels, (3, 4, 4), gen(0))
    idx = p["sublevels"].sum(1) - 2
    assert torch.equal(p["severity"], idx.float())
    for lv, (lo, hi) in enumerate(GROUPS.values(), start=1):
        sel = p["sublevels"][levels == lv]
        assert int((sel.sum(1) - 2).min()) >= lo and int((sel.sum(1) - 2).max()) <= hi
    # mild: 163 triples, ~74 draws each; every one appears, none far from uniform
    mild = [tuple(t) for t in p["sublevels"][:n].tolist()]
    seen = {t: mild.count(t) for t in set(mild)}
    assert set(seen) == brute_force(9, 11)
    assert min(seen.values()) > 0.5 * n / 163 and max(seen.values()) < 1.5 * n / 163
    # uniform over triples, not over indices: index 11 (63 triples) is drawn more than 9 (45)
    per_index = torch.bincount(p["sublevels"][:n].sum(1) - 2, minlength=12)[9:12].double() / n
    torch.testing.assert_close(
        per_index, torch.tensor([45, 55, 63]).double() / 163, atol=0.02, rtol=0
    )


def test_an_odl_ladder_over_the_combined_index():
    d = BlendedDistortions(
        bins=[[1, 5], [6, 9], [10, 13], [14, 17], [18, 21]], extra=[22, 28], names=None
    )
    assert d.ladder.n_levels == 5 and d.ladder.extra_level == 6 and d.level_names is None
    levels = torch.arange(1, 7).repeat(500)
    p = d.sample(levels, (3, 4, 4), gen(1))
    idx = p["sublevels"].sum(1) - 2
    table = d.ladder.table("cpu")[levels - 1]
    assert bool(((idx >= table[:, 0]) & (idx <= table[:, 1])).all())
    assert set(idx[levels == 1].tolist()) == {1, 2, 3, 4, 5}  # 35 triples, all indices drawn
    d.ladder.check_levels([6])
    with pytest.raises(LevelError, match="outside"):
        d.ladder.check_levels([7])


def test_fixed_severity_gives_that_exact_index():
    d = BlendedDistortions()
    levels = torch.tensor([1, 2, 3]).repeat(200)
    p = d.sample(levels, (3, 4, 4), gen(2), fixed={"severity": 13})
    assert torch.equal(p["sublevels"].sum(1) - 2, torch.full((600,), 13))
    assert torch.equal(p["severity"], torch.full((600,), 13.0))
    assert torch.equal(p["level"], levels)
    assert len({tuple(t) for t in p["sublevels"].tolist()}) > 40  # of the 66 triples of index 13
    for bad in (0, 29, 12.5):
        with pytest.raises(ConfigError, match="combined index"):
            d.sample(levels, (3, 4, 4), gen(2), fixed={"severity": bad})
    with pytest.raises(ConfigError, match="unknown fixed"):
        d.sample(levels, (3, 4, 4), gen(2), fixed={"centered": True})


def test_sub_level_values_fall_in_their_grid_cells():
    d = BlendedDistortions(bins=[[1, 28]], names=None)
    b = 3000
    p = d.sample(torch.ones(b, dtype=torch.long), (3, 16, 16), gen(3))
    k, m, n = p["sublevels"].unbind(1)
    for grid, sub, value in (
        (BLUR_GRID, k, p["blur_sigma"]),
        (NOISE_GRID, m, p["noise_sigma"]),
        (JPEG_GRID, n, p["jpeg_quality"]),
    ):
        g = torch.tensor(grid, dtype=torch.float64)
        a, c = g[sub - 1], g[sub]
        lo, hi = torch.minimum(a, c), torch.maximum(a, c)
        assert bool(((value >= lo) & (value <= hi)).all())
        # spread over the whole cell, not stuck at an edge
        frac = ((value - lo) / (hi - lo)).double()
        assert (
            0.4 < float(frac.mean()) < 0.6 and float(frac.min()) < 0.05 and float(frac.max()) > 0.95
        )
    assert torch.equal(p["jpeg_quality"], p["jpeg_quality"].round())
    assert bool((p["jpeg_on"] == 1).all()) and bool((p["new_task"] == 0).all())
    # the noise is N(0, (sigma/255)^2) per pixel and channel
    std = p["noise"].flatten(1).std(1) * 255
    ratio = std[p["noise_sigma"] > 5] / p["noise_sigma"][p["noise_sigma"] > 5]
    assert abs(float(ratio.mean()) - 1) < 0.02 and float((ratio - 1).abs().max()) < 0.2


# --------------------------------------------------------------------------- applying
def test_chain_applies_blur_noise_jpeg_in_order_as_matlab_would():
    """apply() == imfilter(fspecial) -> + noise, clip -> imwrite/imread JPEG (Pillow)."""
    d = BlendedDistortions(jpeg_backend="pillow")
    x = photo(20, 28)
    xb = x.repeat(4, 1, 1, 1)
    levels = torch.tensor([1, 2, 3, 3])
    p = d.sample(levels, xb.shape[1:], gen(4))
    y = d.apply(xb, p)
    pre = d.apply(xb, {**p, "jpeg_on": torch.zeros(4)})  # the chain before the JPEG step
    for i in range(4):
        kernel = fspecial(float(p["blur_sigma"][i]))
        ref = np.stack([ndi.correlate(c, kernel, mode="nearest") for c in x[0].double().numpy()])
        ref = np.clip(ref + p["noise"][i].double().numpy(), 0, 1)
        np.testing.assert_allclose(pre[i].numpy(), ref, atol=2e-6)
        # the JPEG step is Pillow's codec at the drawn quality, on the 8-bit image
        q = int(p["jpeg_quality"][i])
        exact = pillow_jpeg(to_u8(pre[i].numpy()), q).transpose(2, 0, 1) / 255.0
        np.testing.assert_allclose(y[i].numpy(), exact, atol=1e-6)
        # ... and close to the whole MATLAB-style pipeline done in float64 (rounding may
        # flip a few 8-bit values before the codec)
        manual = pillow_jpeg(to_u8(ref), q).transpose(2, 0, 1) / 255.0
        assert np.abs(y[i].numpy() - manual).max() <= 4 / 255 + 1e-6
    # another order (noise before blur) would be visibly different
    swapped = gaussian_blur21((xb + p["noise"]).clamp(0, 1), p["blur_sigma"])
    assert float((swapped - pre).abs().max()) > 0.05


def test_blur_matches_scipy_and_sigma_zero_is_the_identity():
    x = torch.rand(3, 2, 9, 13, generator=gen(5))  # smaller than the 21-tap kernel
    sigma = torch.tensor([0.0, 1.3, 4.6])
    y = gaussian_blur21(x, sigma)
    assert torch.equal(y[0], x[0]) and not bool(y.isnan().any())
    for i in (1, 2):
        ref = np.stack(
            [
                ndi.correlate(c, fspecial(float(sigma[i])), mode="nearest")
                for c in x[i].double().numpy()
            ]
        )
        np.testing.assert_allclose(y[i].numpy(), ref, atol=1e-6)


def test_kornia_jpeg_is_close_to_pillow_and_the_pillow_backend_is_pillow():
    x = photo(64, 64, size=128).repeat(5, 1, 1, 1)
    q = torch.tensor([10.0, 25.0, 50.0, 75.0, 95.0])
    exact = jpeg_compress(x, q, "pillow")
    approx = jpeg_compress(x, q, "kornia")
    for i in range(5):
        ref = pillow_jpeg(to_u8(x[i].numpy()), int(q[i])).transpose(2, 0, 1) / 255.0
        np.testing.assert_array_equal(exact[i].numpy(), ref.astype(np.float32))
        # kornia's codec approximates libjpeg: measured 35.6, 37.8, 42.2, 39.1, 43.3 dB here
        # (kornia 0.9.0, Pillow 13.0.0), and Pillow at another quality is farther away
        close = psnr(approx[i], exact[i])
        assert close > 33.0, (int(q[i]), close)
        for other in (max(int(q[i]) - 8, 1), min(int(q[i]) + 8, 100)):
            assert psnr(approx[i], jpeg_compress(x[i : i + 1], float(other), "pillow")[0]) < close
    # 8-bit output; sizes not multiple of 16 come back unchanged; qualities rounded, clamped
    odd = photo(20, 36)
    for backend in ("kornia", "pillow"):
        y = jpeg_compress(odd, torch.tensor([33.4]), backend)
        assert y.shape == odd.shape and y.dtype == odd.dtype
        assert torch.equal(y * 255, (y * 255).round())
    assert torch.equal(jpeg_compress(odd, 33.4, "pillow"), jpeg_compress(odd, 33.0, "pillow"))
    assert torch.equal(jpeg_compress(odd, 0.0, "pillow"), jpeg_compress(odd, 1.0, "pillow"))
    # grey images: kornia codes 3 equal channels, Pillow a greyscale JPEG
    grey = odd[:, :1]
    g_k, g_p = jpeg_compress(grey, 40.0, "kornia"), jpeg_compress(grey, 40.0, "pillow")
    assert g_k.shape == grey.shape and psnr(g_k, g_p) > 35
    with pytest.raises(ConfigError, match="backend"):
        jpeg_compress(odd, 50.0, "opencv")


def test_single_mode_applies_exactly_one_factor():
    d = BlendedDistortions(mode="single", jpeg_backend="pillow")
    assert d.ladder.test_levels == [1, 2, 3] and d.level_names == ["blur", "noise", "jpeg"]
    levels = torch.tensor([1, 2, 3]).repeat(100)
    p = d.sample(levels, (3, 12, 12), gen(6))
    assert torch.equal(p["factor"], levels - 1)
    sub = p["sublevels"]
    assert torch.equal((sub > 0).long().sum(1), torch.ones(300, dtype=torch.long))
    assert torch.equal(sub.gather(1, p["factor"].view(-1, 1)).squeeze(1).float(), p["severity"])
    assert set(p["severity"].tolist()) == set(range(1, 11))
    off = torch.ones(300, 3, dtype=torch.bool).scatter_(1, p["factor"].view(-1, 1), False)
    assert bool((p["blur_sigma"][off[:, 0]] == 0).all()) and bool(
        (p["noise_sigma"][off[:, 1]] == 0).all()
    )
    assert bool((p["jpeg_quality"][off[:, 2]] == 100).all())
    assert torch.equal(p["jpeg_on"], (levels == 3).float())
    assert bool((p["noise"][levels != 2] == 0).all())
    x = photo(12, 12).repeat(3, 1, 1, 1)
    q = {k: v[:3] for k, v in p.items()}
    y = d.apply(x, q)
    torch.testing.assert_close(y[0:1], gaussian_blur21(x[0:1], q["blur_sigma"][:1]), atol=0, rtol=0)
    torch.testing.assert_close(y[1], (x[1] + q["noise"][1]).clamp(0, 1), atol=0, rtol=0)
    torch.testing.assert_close(
        y[2:], jpeg_compress(x[2:], q["jpeg_quality"][2:], "pillow"), atol=0, rtol=0
    )
    assert not torch.equal(y[2], x[2])  # JPEG ran on the third, and only there (skipped at q=100)
    p2 = d.sample(levels, (3, 12, 12), gen(6), fixed={"severity": 4})
    assert bool((p2["severity"] == 4).all())
    with pytest.raises(LevelError, match="no extra level"):
        d.ladder.check_levels([4])
    with pytest.raises(ConfigError, match="sub-level"):
        d.sample(levels, (3, 12, 12), gen(6), fixed={"severity": 11})


# --------------------------------------------------------------------------- new factors
def test_haze_matches_the_formula_by_hand():
    depth = synthetic_depth(5, 3)
    assert depth.shape == (1, 1, 5, 3)
    assert depth[0, 0, :, 1].tolist() == [10.0, 8.0, 6.0, 4.0, 2.0]  # far at the top row
    x = torch.full((2, 3, 5, 3), 0.3)
    y = haze(x, torch.tensor([0.1, 0.0]), torch.tensor([0.9, 0.8]), depth)
    for r, dist in enumerate([10, 8, 6, 4, 2]):
        t = math.exp(-0.1 * dist)
        assert y[0, :, r].sub(0.3 * t + 0.9 * (1 - t)).abs().max() < 1e-6
    assert torch.equal(y[1], x[1])  # beta 0: no haze
    d = Haze()
    assert d.ladder.n_levels == 5 and not d.ladder.has_extra
    levels = torch.arange(1, 6).repeat(200)
    p = d.sample(levels, (3, 5, 3), gen(7))
    bounds = d.ladder.table("cpu")[levels - 1]
    assert torch.equal(p["severity"], p["beta"])
    assert bool(((p["beta"] >= bounds[:, 0]) & (p["beta"] <= bounds[:, 1])).all())
    assert float(p["airlight"].min()) >= 0.8 and float(p["airlight"].max()) <= 1.0
    yd = d.apply(torch.full((1000, 3, 5, 3), 0.3), p)
    t = torch.exp(-p["beta"].view(-1, 1) * torch.tensor([10.0, 8, 6, 4, 2]))
    ref = 0.3 * t + p["airlight"].view(-1, 1) * (1 - t)
    torch.testing.assert_close(yd[:, 1, :, 2], ref, atol=1e-6, rtol=0)
    with pytest.raises(ConfigError, match="airlight"):
        Haze(airlight=[0.9, 1.2])


def test_darkness_is_imadjust_gamma():
    x = torch.tensor([0.0, 0.25, 0.5, 0.64, 1.0]).view(1, 1, 1, 5).repeat(2, 3, 1, 1)
    y = darken(x, torch.tensor([2.0, 1.5]))
    # by hand: 0.5^2 = 0.25, 0.25^2 = 0.0625; 0.25^1.5 = 0.125, 0.64^1.5 = 0.512
    torch.testing.assert_close(y[0, 0, 0], torch.tensor([0.0, 0.0625, 0.25, 0.4096, 1.0]))
    torch.testing.assert_close(y[1, 2, 0], torch.tensor([0.0, 0.125, 0.5**1.5, 0.512, 1.0]))
    r = torch.rand(4, 3, 6, 6, generator=gen(8))
    g = torch.tensor([1.5, 1.9, 2.2, 2.5])
    np.testing.assert_allclose(
        darken(r, g).numpy(), r.numpy() ** g.numpy()[:, None, None, None], rtol=1e-6
    )
    d = Darkness()
    levels = torch.arange(1, 6).repeat(100)
    p = d.sample(levels, (3, 6, 6), gen(9))
    bounds = d.ladder.table("cpu")[levels - 1]
    assert bool(((p["gamma"] >= bounds[:, 0]) & (p["gamma"] <= bounds[:, 1])).all())
    assert torch.equal(p["severity"], p["gamma"])
    with pytest.raises(LevelError):
        d.ladder.check_levels([6])


def test_jpeg_degradation_ladder():
    d = JPEG(backend="pillow")
    assert d.ladder.n_levels == 5 and not d.ladder.has_extra
    levels = torch.arange(1, 6).repeat(200)
    p = d.sample(levels, (3, 8, 8), gen(10))
    assert torch.equal(p["severity"], 100 - p["quality"])
    assert torch.equal(p["quality"], p["quality"].round())
    lo_q = torch.tensor([80.0, 60, 40, 25, 10])[levels - 1]
    hi_q = torch.tensor([100.0, 80, 60, 40, 25])[levels - 1]
    assert bool(((p["quality"] >= lo_q) & (p["quality"] <= hi_q)).all())
    fixed = d.sample(levels[:3], (3, 8, 8), gen(10), fixed={"severity": 30})
    assert fixed["quality"].tolist() == [70.0] * 3
    x = photo(8, 8).repeat(3, 1, 1, 1)
    assert torch.equal(d.apply(x, fixed), jpeg_compress(x, 70.0, "pillow"))
    with pytest.raises(LevelError):
        d.ladder.check_levels([6])
    with pytest.raises(ConfigError, match="0..99"):
        JPEG(bins=[[0, 50], [50, 100]])


def test_new_task_old_fraction_and_fixed_new_task():
    d = BlendedDistortions(extra_factors=["haze", "darkness"], jpeg_backend="pillow")
    assert d.factors == ["haze", "darkness", "blur", "noise", "jpeg"]
    assert d.new_factors == ["haze", "darkness"] and d.fixed_keys == {"new_task"}
    levels = torch.tensor([1, 2, 3]).repeat(400)
    p = d.sample(levels, (3, 4, 4), gen(11))
    assert p["new_task"].dtype == torch.float32 and bool((p["new_task"] == 1).all())
    assert float(p["haze_beta"].min()) >= 0.05 and float(p["haze_beta"].max()) <= 0.25
    assert float(p["darkness_gamma"].min()) >= 1.5 and float(p["darkness_gamma"].max()) <= 2.5
    assert float(p["haze_airlight"].min()) >= 0.8 and float(p["haze_airlight"].max()) <= 1.0
    for value, want in ((0, 0.0), (False, 0.0), (1, 1.0), (True, 1.0)):
        q = d.sample(levels, (3, 4, 4), gen(11), fixed={"new_task": value})
        assert bool((q["new_task"] == want).all())
    old = d.sample(levels, (3, 16, 16), gen(11), fixed={"new_task": 0})
    assert bool((old["haze_beta"] == 0).all()) and bool((old["darkness_gamma"] == 1).all())
    # the extra factors are off: the same output as the chain without them
    base = BlendedDistortions(jpeg_backend="pillow")
    x = photo(16, 16).repeat(3, 1, 1, 1)
    few = {k: v[:3] for k, v in old.items()}
    assert torch.equal(d.apply(x, few), base.apply(x, few))
    # a mixed batch: old_fraction of the samples without them
    mixed = BlendedDistortions(extra_factors=["haze"], old_fraction=0.3)
    m = mixed.sample(torch.ones(4000, dtype=torch.long), (3, 2, 2), gen(12))
    assert abs(float(1 - m["new_task"].mean()) - 0.3) < 0.03
    assert torch.equal(m["haze_beta"] > 0, m["new_task"] > 0) and "darkness_gamma" not in m
    forced = BlendedDistortions(extra_factors=["darkness"], old_fraction=1.0)
    assert bool((forced.sample(levels, (3, 2, 2), gen(12))["new_task"] == 0).all())
    assert bool(
        (forced.sample(levels, (3, 2, 2), gen(12), fixed={"new_task": 1})["new_task"] == 1).all()
    )
    # without extra factors new_task is 0 and cannot be forced on
    assert bool((base.sample(levels, (3, 2, 2), gen(12))["new_task"] == 0).all())
    base.sample(levels, (3, 2, 2), gen(12), fixed={"new_task": 0})
    with pytest.raises(ConfigError, match="extra_factors"):
        base.sample(levels, (3, 2, 2), gen(12), fixed={"new_task": 1})
    with pytest.raises(ConfigError, match="new_task"):
        d.sample(levels, (3, 2, 2), gen(12), fixed={"new_task": 0.5})


def test_extra_factors_come_before_the_base_chain():
    d = BlendedDistortions(extra_factors=["haze", "darkness"], jpeg_backend="pillow")
    x = photo(24, 16).repeat(2, 1, 1, 1)
    p = d.sample(torch.tensor([2, 3]), x.shape[1:], gen(13))
    depth = synthetic_depth(24, 16)
    scene = darken(haze(x, p["haze_beta"], p["haze_airlight"], depth), p["darkness_gamma"])
    camera = (gaussian_blur21(scene, p["blur_sigma"]) + p["noise"]).clamp(0, 1)
    assert torch.equal(d.apply(x, p), jpeg_compress(camera, p["jpeg_quality"], "pillow"))
    # blur, noise and JPEG first would give another image
    other = BlendedDistortions(jpeg_backend="pillow").apply(x, p)
    later = darken(haze(other, p["haze_beta"], p["haze_airlight"], depth), p["darkness_gamma"])
    assert float((later - d.apply(x, p)).abs().mean()) > 0.01


# --------------------------------------------------------------------------- contract
def test_determinism_devices_and_shapes():
    d = BlendedDistortions(extra_factors=["haze"], old_fraction=0.5)
    levels = torch.tensor([1, 2, 3, 2])
    x = photo(16, 24).repeat(4, 1, 1, 1)
    a = d.sample(levels, x.shape[1:], gen(14))
    b = d.sample(levels, x.shape[1:], gen(14))
    c = d.sample(levels, x.shape[1:], gen(15))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["noise"], c["noise"])
    assert torch.equal(d.apply(x, a), d.apply(x, b))
    y = d.apply(x, a)
    assert y.shape == x.shape and y.dtype == x.dtype and 0 <= float(y.min()) and float(y.max()) <= 1
    assert set(a) == {
        "level", "severity", "sublevels", "blur_sigma", "noise_sigma", "noise", "jpeg_quality",
        "jpeg_on", "new_task", "haze_beta", "haze_airlight",
    }  # fmt: skip
    for k, v in a.items():
        assert v.device == levels.device and v.shape[0] == 4, k
    assert a["noise"].shape == (4, 3, 16, 24)
    with pytest.raises(NotImplementedError):
        d.operator(x, a)


@pytest.mark.gpu
def test_blended_runs_on_the_gpu():
    dev = torch.device("cuda")
    d = BlendedDistortions(extra_factors=["darkness"])
    levels = torch.tensor([1, 2, 3, 2], device=dev)
    g = torch.Generator(device=dev).manual_seed(0)
    x = photo(32, 32).repeat(4, 1, 1, 1)
    p = d.sample(levels, x.shape[1:], g)
    assert all(v.device.type == "cuda" for v in p.values())
    y = d.apply(x.to(dev), p)
    y_cpu = d.apply(x, {k: v.cpu() for k, v in p.items()})
    assert y.device.type == "cuda" and psnr(y.cpu(), y_cpu) > 40


def test_config_errors():
    with pytest.raises(ConfigError, match="1..28"):
        BlendedDistortions(bins=[[0, 5]], names=None)
    with pytest.raises(ConfigError, match="1..28"):
        BlendedDistortions(bins=[[9.5, 11]], names=None)
    with pytest.raises(ConfigError, match="names"):
        BlendedDistortions(bins=[[1, 5], [6, 9]])
    with pytest.raises(ConfigError, match="extra_factors"):
        BlendedDistortions(extra_factors=["rain"])
    with pytest.raises(ConfigError, match="single"):
        BlendedDistortions(mode="single", extra_factors=["haze"])
    with pytest.raises(ConfigError, match="mode"):
        BlendedDistortions(mode="joint")
    with pytest.raises(ConfigError, match="old_fraction"):
        BlendedDistortions(old_fraction=1.5)
    with pytest.raises(ConfigError, match="jpeg_backend"):
        BlendedDistortions(jpeg_backend="cv2")
    with pytest.raises(ConfigError, match="unknown key"):
        BlendedDistortions(extra_factors=["haze"], haze={"depth": 3})
    with pytest.raises(ConfigError, match="gamma"):
        BlendedDistortions(extra_factors=["darkness"], darkness={"gamma": [2.5, 1.5]})
    d = BlendedDistortions(extra_factors=["haze"], haze={"beta": [0.1, 0.1], "near": 1, "far": 1})
    p = d.sample(torch.tensor([2, 2]), (3, 4, 4), gen(16))
    assert bool((p["haze_beta"] == 0.1).all())
    with pytest.raises(LevelError):
        BlendedDistortions().ladder.check_levels(torch.tensor([0, 4]))


# --------------------------------------------------------------------------- task configs
TASKS = {
    "blended": (BlendedDistortions, 3, None),
    "blended_index": (BlendedDistortions, 5, 6),
    "blended_single": (BlendedDistortions, 3, None),
    "blended_haze": (BlendedDistortions, 3, None),
    "blended_darkness": (BlendedDistortions, 3, None),
    "haze": (Haze, 5, None),
    "darkness": (Darkness, 5, None),
    "jpeg": (JPEG, 5, None),
}


@pytest.mark.parametrize("task", list(TASKS))
def test_task_configs_compose_and_their_settings_fit_the_ladder(task, tmp_path):
    cls, n_levels, extra = TASKS[task]
    cfg = compose_cfg(tmp_path, f"task={task}")
    assert cfg.task.name == task and cfg.task.channels == 3
    d = instantiate(cfg.task.degradation)
    assert type(d) is cls and d.ladder.n_levels == n_levels and d.ladder.extra_level == extra
    levels = torch.tensor(d.ladder.test_levels)
    settings = [dict(v) for v in (cfg.task.get("test_variants") or {}).values()]
    if task == "blended_single":  # levels are factors, not difficulties: no fixated baselines
        assert "fixated" not in cfg.task
    else:
        easy, hard = dict(cfg.task.fixated.easy), dict(cfg.task.fixated.hard)
        assert d.ladder.level_of(easy["severity"]) < d.ladder.level_of(hard["severity"])
        settings += [easy, hard]
    for fixed in settings:
        p = d.sample(levels, (3, 8, 8), gen(17), fixed=fixed)
        assert d.apply(torch.rand(len(levels), 3, 8, 8), p).shape == (len(levels), 3, 8, 8)
    if task in ("blended_haze", "blended_darkness"):
        assert d.new_factors == [task.split("_")[1]]
        assert dict(cfg.task.test_variants) == {"old": {"new_task": 0}}


def test_the_old_task_test_set_has_the_same_pairs_without_the_new_factor(tmp_path):
    from lightrestore.build import build

    cfg = compose_cfg(tmp_path, "task=blended_haze")
    objs = build(cfg)
    dm = objs["datamodule"]
    dm.setup("test")
    assert dm.test_set_names == ["default", "old"]
    new, old = dm.test_sets["default"], dm.test_sets["old"]
    assert bool((new.params["new_task"] == 1).all()) and bool((old.params["new_task"] == 0).all())
    # the same patches, levels and base distortions; only the haze is gone
    assert torch.equal(new.clean, old.clean) and torch.equal(new.level, old.level)
    assert torch.equal(new.params["sublevels"], old.params["sublevels"])
    assert torch.equal(new.params["noise"], old.params["noise"])
    base = BlendedDistortions()
    clean = old.clean[old.index].float() / 255  # shared patches, one row per pair
    torch.testing.assert_close(old.degraded, base.apply(clean, old.params), atol=1e-6, rtol=0)
    assert float((new.degraded - old.degraded).abs().mean()) > 0.05
