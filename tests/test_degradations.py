"""Degradation families: ladders, batched per-sample operators, independent references."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from lightrestore.degradations import (
    Degradation,
    GaussianBlur,
    GaussianNoise,
    Inpaint,
    Interpolate,
    Ladder,
)
from lightrestore.degradations.inpaint import MEAN_COLOUR
from lightrestore.errors import ConfigError, LevelError

FAMILIES = [Inpaint, Interpolate, GaussianBlur, GaussianNoise]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b: int, c: int = 3, h: int = 64, w: int = 64, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=gen(seed))


def all_levels(d: Degradation, per_level: int) -> torch.Tensor:
    """Every test level 1..N+1, ``per_level`` times each (mixed in one batch)."""
    return torch.arange(1, d.ladder.extra_level + 1).repeat(per_level)


# --------------------------------------------------------------------------- ladder
@pytest.mark.parametrize("family", FAMILIES)
def test_draws_fall_in_each_levels_bin(family):
    d = family()
    levels = all_levels(d, 400)
    sev = d.sample(levels, (1, 64, 64), gen())["severity"]
    bounds = torch.tensor(d.ladder.all_bins())[levels - 1]
    assert d.ladder.n_levels == 5 and d.ladder.extra_level == 6
    assert torch.all(sev >= bounds[:, 0]) and torch.all(sev <= bounds[:, 1])


def test_integer_ladder_covers_both_endpoints():
    d = Inpaint()
    levels = all_levels(d, 600)
    sev = d.sample(levels, (3, 64, 64), gen())["severity"]
    assert torch.equal(sev, sev.round())
    for level, (lo, hi) in enumerate(d.ladder.all_bins(), start=1):
        s = sev[levels == level]
        # 600 draws from 6 values: each appears, so both lo and hi are reachable.
        assert set(s.tolist()) == {float(v) for v in range(int(lo), int(hi) + 1)}


@pytest.mark.parametrize("family", FAMILIES)
def test_check_levels_rejects_outside_with_valid_range(family):
    ladder = family().ladder
    ladder.check_levels([1, 5, 6])
    for bad in (0, 7):
        with pytest.raises(LevelError, match=r"1\.\.5.*6"):
            ladder.check_levels(torch.tensor([1, bad]))
    with pytest.raises(LevelError, match="test-only"):
        ladder.check_levels([6], allow_extra=False)


def test_level_of_boundaries():
    inpaint, interp = Inpaint().ladder, Interpolate().ladder
    assert [inpaint.level_of(s) for s in (1, 6, 7, 30, 31, 36)] == [1, 1, 2, 5, 6, 6]
    assert [interp.level_of(r) for r in (0.0, 0.15, 0.151, 0.75, 0.9)] == [1, 1, 2, 5, 6]
    with pytest.raises(LevelError, match="outside"):
        inpaint.level_of(37)
    with pytest.raises(LevelError):
        interp.level_of(0.95)


def test_ladder_from_hydra_lists():
    d = Inpaint(bins=[[2, 4], [5, 8]], extra=[9, 10])
    assert d.ladder == Ladder(
        bins=((2, 4), (5, 8)), extra=(9, 10), name="hole side", unit="px", integer=True
    )
    sev = d.sample(torch.tensor([1, 2, 3] * 50), (3, 32, 32), gen())["severity"]
    assert sev.min() == 2 and sev.max() == 10
    assert GaussianNoise(bins=[[0, 5]], extra=[5, 6]).ladder.test_levels == [1, 2]


def test_unknown_fixed_key_is_a_config_error():
    with pytest.raises(ConfigError, match="centered"):
        GaussianBlur().sample(torch.tensor([1]), (3, 8, 8), fixed={"centered": True})
    with pytest.raises(ConfigError, match="wobble"):
        Inpaint().sample(torch.tensor([1]), (3, 8, 8), fixed={"wobble": 1})


# ------------------------------------------------------------ determinism, dtype
@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_params_and_output(family):
    d = family()
    x = images(12)
    levels = all_levels(d, 2)
    p1, p2 = d.sample(levels, x.shape, gen(7)), d.sample(levels, x.shape, gen(7))
    assert p1.keys() == p2.keys() >= {"severity", "level"}
    for k in p1:
        assert torch.equal(p1[k], p2[k]), k
    assert torch.equal(d.apply(x, p1), d.apply(x, p2))
    assert torch.equal(d.apply(x, p1), d.apply(x, p1))  # apply draws nothing
    p3 = d.sample(levels, x.shape, gen(8))
    assert not torch.equal(p1["severity"], p3["severity"])
    assert torch.equal(p1["level"], levels)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_params_on_levels_device_and_apply_keeps_shape_dtype(family, dtype):
    d = family()
    x = images(6, c=3, h=20, w=28).to(dtype)
    levels = all_levels(d, 1)
    params = d.sample(levels, x.shape, gen())
    for k, v in params.items():
        assert v.device == levels.device and v.shape[0] == 6, k
    assert params["severity"].dtype == torch.float32 and params["severity"].shape == (6,)
    y, params2 = d(x, levels, gen())
    assert y.shape == x.shape and y.dtype == dtype
    assert torch.equal(params2["level"], levels)
    assert d.apply(x, params).dtype == dtype
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0


# --------------------------------------------------------------------------- inpaint
def expected_hole(params, h, w) -> torch.Tensor:
    """Reference hole mask by plain slicing, one sample at a time."""
    m = torch.zeros(len(params["top"]), 1, h, w, dtype=torch.bool)
    for i, (t, l, s) in enumerate(
        zip(params["top"].tolist(), params["left"].tolist(), params["severity"].long().tolist())
    ):
        m[i, :, t : t + s, l : l + s] = True
    return m


def test_inpaint_holes_every_level():
    d = Inpaint()
    h, w = 64, 60
    levels = all_levels(d, 20)
    x = images(len(levels), h=h, w=w)
    p = d.sample(levels, x.shape, gen(3))
    y = d.apply(x, p)
    side, top, left = p["severity"].long(), p["top"], p["left"]
    assert p["top"].dtype == p["left"].dtype == torch.long
    bounds = torch.tensor(d.ladder.all_bins())[levels - 1]
    assert torch.all(side >= bounds[:, 0]) and torch.all(side <= bounds[:, 1])
    assert torch.all(top >= 0) and torch.all(left >= 0)
    assert torch.all(top + side <= h) and torch.all(left + side <= w)
    hole = expected_hole(p, h, w).expand_as(x)
    fill = torch.tensor(MEAN_COLOUR).view(1, 3, 1, 1).expand_as(x)
    assert torch.equal(y[hole], fill[hole])
    assert torch.equal(y[~hole], x[~hole])
    # exactly s^2 pixels changed per image (random x never equals the fill exactly)
    changed = (y != x).all(dim=1).sum(dim=(1, 2))
    assert torch.equal(changed, side**2)
    assert torch.equal(d.hole_mask(p, x.shape), expected_hole(p, h, w))


def test_inpaint_top_left_uniform_over_all_valid_positions():
    d = Inpaint()
    p = d.sample(torch.ones(500, dtype=torch.long), (3, 64, 62), gen(), fixed={"severity": 60})
    # room 4 rows, 2 columns: every valid corner 0..room is used, nothing outside
    assert set(p["top"].tolist()) == {0, 1, 2, 3, 4}
    assert set(p["left"].tolist()) == {0, 1, 2}


def test_inpaint_centered_and_fixed_override():
    levels = torch.tensor([1, 3, 6, 2])
    p = Inpaint().sample(levels, (3, 64, 64), gen(), fixed={"severity": 32, "centered": True})
    assert torch.equal(p["severity"], torch.full((4,), 32.0))
    assert p["top"].tolist() == [16] * 4 and p["left"].tolist() == [16] * 4
    p = Inpaint(centered=True).sample(levels, (1, 64, 63), gen(), fixed={"severity": 20})
    assert p["top"].tolist() == [22] * 4 and p["left"].tolist() == [21] * 4  # (44//2, 43//2)
    # odd room: the centre rounds down
    p = Inpaint(centered=True).sample(levels, (1, 9, 10), gen(), fixed={"severity": 4})
    assert p["top"].tolist() == [2] * 4 and p["left"].tolist() == [3] * 4
    # a fixed centered=False overrides the constructor
    p = Inpaint(centered=True).sample(
        torch.ones(200, dtype=torch.long), (3, 64, 64), gen(), fixed={"centered": False}
    )
    assert len(set(p["top"].tolist())) > 10


def test_inpaint_max_shift_bounds():
    n = 3000
    ones = torch.ones(n, dtype=torch.long)
    p = Inpaint(max_shift=10).sample(ones, (3, 64, 64), gen(), fixed={"severity": 20})
    for key in ("top", "left"):
        v = p[key]
        # centre 22, shifts -10..10, all 21 values hit in 3000 draws
        assert set(v.tolist()) == set(range(12, 33)), key
    assert not torch.equal(p["top"], p["left"])  # independent per axis
    # near-full holes: the shifted position is clamped inside the image
    p = Inpaint(max_shift=10).sample(ones, (3, 64, 64), gen(), fixed={"severity": 60})
    assert set(p["top"].tolist()) == {0, 1, 2, 3, 4}
    # as a fixed setting too; centered wins over max_shift
    p = Inpaint().sample(ones[:50], (3, 64, 64), gen(), fixed={"severity": 20, "max_shift": 0})
    assert set(p["top"].tolist()) == {22}
    with pytest.raises(ConfigError, match="max_shift"):
        Inpaint(max_shift=-1)


def test_inpaint_side_clamped_to_image():
    d = Inpaint()
    x = images(3, h=20, w=16)
    p = d.sample(torch.tensor([6, 6, 6]), x.shape, gen(), fixed={"severity": 30})
    assert p["severity"].tolist() == [16.0] * 3
    assert torch.all(p["top"] + 16 <= 20) and torch.all(p["left"] == 0)
    assert int((d.apply(x, p) != x).all(dim=1).sum()) == 3 * 16 * 16


def test_inpaint_grey_fill_is_luminance_and_operator_zeroes_hole():
    d = Inpaint()
    x = images(4, c=1, h=32, w=32)
    p = d.sample(torch.tensor([5, 5, 6, 6]), x.shape, gen())
    y = d.apply(x, p)
    hole = expected_hole(p, 32, 32)
    lum = (0.299 * 117 + 0.587 * 104 + 0.114 * 123) / 255
    assert torch.allclose(y[hole], torch.full_like(y[hole], lum), atol=1e-7, rtol=0)
    obs = d.observed_mask(p, x.shape)
    assert obs.shape == (4, 1, 32, 32) and obs.dtype == torch.float32
    assert torch.equal(obs, (~hole).float())
    wx = d.operator(x, p)
    assert torch.all(wx[hole] == 0) and torch.equal(wx[~hole], x[~hole])
    with pytest.raises(ConfigError, match="channels"):
        d.apply(images(4, c=2, h=32, w=32), p)
    grey = Inpaint(fill=0.25)
    assert torch.all(grey.apply(images(4, h=32, w=32), p)[hole.expand(4, 3, 32, 32)] == 0.25)


# ----------------------------------------------------------------------- interpolate
def test_interpolate_deleted_fraction_per_sample():
    d = Interpolate()
    levels = all_levels(d, 16)
    x = images(len(levels))
    p = d.sample(levels, x.shape, gen(1))
    frac = p["deleted"].float().mean(dim=(1, 2, 3))
    # Bernoulli on 4096 pixels: std <= 0.0078, so 0.03 is ~4 std (fixed seed).
    assert torch.all((frac - p["severity"]).abs() < 0.03)
    assert p["deleted"].shape == (len(levels), 1, 64, 64) and p["deleted"].dtype == torch.bool
    big = d.sample(torch.ones(64, dtype=torch.long), (3, 64, 64), gen(2), fixed={"severity": 0.3})
    # 64 * 4096 pixels: std of the mean ~ 0.0007
    assert abs(big["deleted"].float().mean().item() - 0.3) < 0.005


def test_interpolate_mask_shared_fill_and_kept_pixels():
    d = Interpolate()
    levels = all_levels(d, 3)
    x = images(len(levels))
    p = d.sample(levels, x.shape, gen(4))
    y = d.apply(x, p)
    deleted = p["deleted"]
    for ch in range(3):  # the same pixels change in every channel
        assert torch.equal(y[:, ch : ch + 1] != x[:, ch : ch + 1], deleted)
    m = deleted.expand_as(x)
    fill = torch.tensor(MEAN_COLOUR).view(1, 3, 1, 1).expand_as(x)
    assert torch.equal(y[m], fill[m]) and torch.equal(y[~m], x[~m])
    assert torch.equal(d.observed_mask(p), (~deleted).float())
    assert torch.equal(d.operator(x, p), torch.where(m, torch.zeros_like(x), x))
    none = d.sample(torch.tensor([1]), x.shape, gen(), fixed={"severity": 0.0})
    assert not none["deleted"].any()


# ------------------------------------------------------------------------------ blur
def scipy_blur(x: torch.Tensor, sigma_y: float, sigma_x: float, radius: int) -> np.ndarray:
    """Independent reference: scipy's Gaussian, mirror border (= OpenCV REFLECT_101)."""
    return ndi.gaussian_filter(
        x.double().numpy(), sigma=(0, sigma_y, sigma_x), mode="mirror", radius=radius
    )


def test_blur_matches_scipy_per_sample_anisotropic():
    d = GaussianBlur()
    r = d.kernel_radius
    assert r == 18
    sy = [0.3, 2.7, 5.5, 0.0, 1.0, 6.0]
    sx = [2.7, 0.3, 5.5, 0.0, 4.2, 3.3]
    x = images(len(sy), h=64, w=72)
    p = {"sigma_y": torch.tensor(sy), "sigma_x": torch.tensor(sx)}
    y = d.apply(x, p)
    for i in range(len(sy)):
        ref = scipy_blur(x[i], sy[i], sx[i], r)
        # float32 sums of 37x37 weights on [0, 1] values: errors ~3e-7, so 1e-5 is loose
        np.testing.assert_allclose(y[i].numpy(), ref, atol=1e-5, rtol=0)
        # interior pixels (no border involved) to the same tolerance
        np.testing.assert_allclose(y[i, :, r:-r, r:-r].numpy(), ref[:, r:-r, r:-r], atol=1e-5)
    assert torch.equal(y[3], x[3])  # sigma 0 is the identity


def test_blur_sampled_params_and_small_images_match_scipy():
    d = GaussianBlur()
    levels = all_levels(d, 2)
    x = images(len(levels), c=2, h=11, w=30)  # H smaller than the 18 px radius
    p = d.sample(levels, x.shape, gen(5))
    assert torch.equal(p["severity"], torch.maximum(p["sigma_x"], p["sigma_y"]))
    assert not torch.equal(p["sigma_x"], p["sigma_y"])  # drawn independently
    y = d.apply(x, p)
    for i in range(len(levels)):
        ref = scipy_blur(x[i], float(p["sigma_y"][i]), float(p["sigma_x"][i]), d.kernel_radius)
        np.testing.assert_allclose(y[i].numpy(), ref, atol=1e-5, rtol=0)


def test_blur_fixed_sigma_identity_and_linearity():
    d = GaussianBlur()
    levels = torch.tensor([1, 4, 6])
    p = d.sample(levels, (3, 32, 32), gen(), fixed={"severity": 5})
    assert p["sigma_x"].tolist() == p["sigma_y"].tolist() == p["severity"].tolist() == [5.0] * 3
    x0 = images(3, h=32, w=32)
    p0 = d.sample(levels, x0.shape, gen(), fixed={"severity": 0})
    assert torch.equal(d.apply(x0, p0), x0)
    a, b = images(3, h=32, w=32, seed=1), images(3, h=32, w=32, seed=2)
    assert torch.equal(d.operator(a, p), d.apply(a, p))
    lhs = d.apply(0.3 * a + 0.7 * b, p)
    assert torch.allclose(lhs, 0.3 * d.apply(a, p) + 0.7 * d.apply(b, p), atol=1e-6)
    with pytest.warns(UserWarning, match="kernel_radius"):
        d.sample(levels, (3, 32, 32), gen(), fixed={"severity": 7})


def test_blur_kernel_radius_override():
    assert GaussianBlur(bins=[[0, 1]], extra=[1, 2]).kernel_radius == 6
    d = GaussianBlur(kernel_radius=4)
    x = images(1, h=24, w=24)
    p = {"sigma_x": torch.tensor([1.5]), "sigma_y": torch.tensor([2.0])}
    np.testing.assert_allclose(d.apply(x, p)[0].numpy(), scipy_blur(x[0], 2.0, 1.5, 4), atol=1e-5)
    with pytest.raises(ConfigError):
        GaussianBlur(kernel_radius=-1)
    with pytest.raises(ConfigError, match="padding"):
        GaussianBlur(padding="zeros")


# ----------------------------------------------------------------------------- noise
@pytest.mark.parametrize("sigma", [10.0, 40.0])
def test_noise_std_matches_sigma(sigma):
    d = GaussianNoise()
    x = torch.full((8, 3, 64, 64), 0.5)
    p = d.sample(torch.ones(8, dtype=torch.long), x.shape, gen(), fixed={"severity": sigma})
    diff = d.apply(x, p) - x
    # 12288 values per image: std error ~0.6 %, clipping at 0.5 (>= 3.2 std) negligible
    std = diff.flatten(1).std(dim=1)
    assert torch.allclose(std, torch.full_like(std, sigma / 255), rtol=0.03)
    assert abs(diff.mean().item()) < 0.02 * sigma / 255 + 1e-3
    assert torch.equal(d.operator(x, p), x)


def test_noise_per_sample_sigma_clip_and_grey():
    x = torch.where(images(6) > 0.5, 0.98, 0.02)
    d = GaussianNoise()
    p = d.sample(torch.full((6,), 6), x.shape, gen(), fixed={"severity": 120})
    y = d.apply(x, p)
    assert float(y.min()) == 0.0 and float(y.max()) == 1.0
    unclipped = GaussianNoise(clip=False).apply(x, p)
    assert float(unclipped.min()) < -0.5 and float(unclipped.max()) > 1.5
    assert torch.allclose(unclipped, x + p["noise"])
    grey = GaussianNoise(grey=True)
    levels = all_levels(grey, 2)
    pg = grey.sample(levels, (3, 32, 32), gen())
    assert pg["noise"].shape == (len(levels), 1, 32, 32)
    yg = grey.apply(torch.full((len(levels), 3, 32, 32), 0.5), pg)
    assert torch.equal(yg[:, 0], yg[:, 1]) and torch.equal(yg[:, 0], yg[:, 2])
    # per-sample scaling: each image's noise std follows its own sigma
    ratio = pg["noise"].flatten(1).std(dim=1) / (pg["severity"] / 255)
    keep = pg["severity"] > 1  # level 1 can draw sigma ~ 0
    assert torch.allclose(ratio[keep], torch.ones_like(ratio[keep]), rtol=0.05)


def test_ladder_without_an_extra_level():
    from lightrestore.degradations.base import Ladder
    from lightrestore.errors import LevelError

    ladder = Ladder.from_config([[0, 0]], None, name="blur width")
    assert ladder.test_levels == [1] and ladder.extra_level is None and not ladder.has_extra
    ladder.check_levels([1])
    with pytest.raises(LevelError, match="no extra level"):
        ladder.check_levels([2])
    assert ladder.draw(torch.ones(3, dtype=torch.long)).tolist() == [0.0, 0.0, 0.0]
