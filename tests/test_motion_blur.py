"""Motion blur (random camera trajectories): kernels, the blur against scipy, sampling
contract, noise, config errors, and the task config through the datamodule and a Golf step."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from helpers import compose_cfg

from lightrestore.degradations import MotionBlur
from lightrestore.degradations.motion_blur import random_trajectories, splat_kernels
from lightrestore.errors import ConfigError

K = 27
C = (K - 1) / 2


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b: int, c: int = 3, h: int = 40, w: int = 44, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=gen(seed))


def moments(kernel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre of mass ``(B, 2)`` (relative to the centre) and the trace of the second
    central moment ``(B,)`` of ``(B, K, K)`` kernels."""
    k = kernel.double()
    i = torch.arange(k.shape[-1], dtype=torch.float64) - (k.shape[-1] - 1) / 2
    py, px = k.sum(2), k.sum(1)
    com = torch.stack(((py * i).sum(1), (px * i).sum(1)), dim=1)
    second = (py * i**2).sum(1) + (px * i**2).sum(1) - (com**2).sum(1)
    return com, second


@pytest.fixture(autouse=True)
def _two_threads():
    n = torch.get_num_threads()
    torch.set_num_threads(min(n, 2))
    yield
    torch.set_num_threads(n)


# --------------------------------------------------------------------------- kernels
def test_kernels_normalised_non_negative_centred_and_widen_with_level():
    d = MotionBlur()
    assert d.ladder.n_levels == 5 and d.ladder.extra_level == 6 and d.kernel_size == K
    levels = torch.arange(1, 7).repeat(60)
    p = d.sample(levels, (3, 32, 32), gen(1))
    k = p["kernel"]
    assert k.shape == (360, K, K) and k.dtype == torch.float32
    assert set(p) == {"severity", "kernel", "level"}  # no noise by default
    torch.testing.assert_close(k.sum(dim=(1, 2)), torch.ones(360), atol=1e-6, rtol=0)
    assert float(k.min()) >= 0.0
    com, second = moments(k)
    # the trajectory's mean is put on the centre pixel: no shift from the blur
    assert float(com.abs().max()) < 1e-4
    bounds = torch.tensor(d.ladder.all_bins())[levels - 1]
    assert torch.all(p["severity"] >= bounds[:, 0]) and torch.all(p["severity"] <= bounds[:, 1])
    means = [float(second[levels == lv].mean()) for lv in range(1, 7)]
    assert all(a < b for a, b in zip(means, means[1:])), means
    # a path of length L lies within L/2 of its mean: every kernel fits in L + 2 pixels
    support = (k > 0).nonzero()
    radius = (support[:, 1:] - C).abs().amax(dim=1)
    assert torch.all(radius <= p["severity"][support[:, 0]] / 2 + 1)


def test_trajectories_have_the_requested_length():
    length = torch.tensor([0.0, 1.0, 7.5, 13.0, 25.0] * 4)
    pts = random_trajectories(length, 108, gen(2))
    assert pts.shape == (20, 108, 2) and pts.dtype == torch.float32
    arc = (pts[:, 1:] - pts[:, :-1]).norm(dim=-1).sum(dim=1)
    torch.testing.assert_close(arc, length, atol=1e-3, rtol=1e-4)
    torch.testing.assert_close(pts.mean(dim=1), torch.zeros(20, 2), atol=1e-5, rtol=0)
    # with no jitter, pull or jumps the walk is a straight line
    line = random_trajectories(length, 50, gen(2), shake=0, centripetal=0, rate=0)
    ext = (line[:, -1] - line[:, 0]).norm(dim=-1)
    torch.testing.assert_close(ext, length, atol=1e-4, rtol=1e-5)


def test_fixed_severity_gives_that_length():
    d = MotionBlur(shake=0, centripetal=0, rate=0)  # straight lines: moments known exactly
    n = d.steps
    for length in (3.0, 11.0, 19.0):
        p = d.sample(
            torch.tensor([1, 3, 5, 6] * 8), (3, 32, 32), gen(3), fixed={"severity": length}
        )
        assert p["severity"].tolist() == [length] * 32
        _, second = moments(p["kernel"])
        # n evenly spaced points on a segment of length L: variance L^2 (n+1) / (12 (n-1));
        # bilinear splatting adds f(1-f) <= 1/4 per axis
        line = length**2 * (n + 1) / (12 * (n - 1))
        assert torch.all(second >= line - 1e-3) and torch.all(second <= line + 0.5 + 1e-3)
    # random shapes: the same length, different kernels, on every level
    p = MotionBlur().sample(torch.tensor([1, 6, 2]), (3, 8, 8), gen(), fixed={"severity": 19})
    assert p["severity"].tolist() == [19.0] * 3 and not torch.equal(p["kernel"][0], p["kernel"][1])
    # length 0: the unit impulse, so the blur is the identity
    p0 = MotionBlur().sample(torch.tensor([1, 2]), (3, 16, 16), gen(), fixed={"severity": 0})
    x = images(2, h=16, w=16)
    assert float(p0["kernel"][:, 13, 13].min()) == 1.0
    assert torch.equal(MotionBlur().apply(x, p0), x)
    with pytest.warns(UserWarning, match="kernel_size"):
        MotionBlur().sample(torch.tensor([6]), (3, 8, 8), gen(), fixed={"severity": 30})


def test_splatting_matches_a_numpy_reference():
    rng = np.random.default_rng(0)
    pts = rng.uniform(-12, 12, size=(5, 40, 2)).astype(np.float32)
    pts[0, :, 1] = 0.0  # integer positions on one axis
    pts[1] = np.round(pts[1])  # integer positions on both
    ref = np.zeros((5, K, K))
    for b in range(5):
        for y, x in pts[b].astype(np.float64) + C:
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            fy, fx = y - y0, x - x0
            for dy, wy in ((0, 1 - fy), (1, fy)):
                for dx, wx in ((0, 1 - fx), (1, fx)):
                    if wy * wx > 0:
                        ref[b, y0 + dy, x0 + dx] += wy * wx
    ref /= ref.sum(axis=(1, 2), keepdims=True)
    out = splat_kernels(torch.from_numpy(pts), K).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------ blur
@pytest.mark.parametrize(
    ("padding", "mode"), [("reflect", "mirror"), ("replicate", "nearest"), ("circular", "wrap")]
)
def test_blur_equals_scipy_convolution_per_sample(padding, mode):
    d = MotionBlur(padding=padding)
    levels = torch.arange(1, 7)
    x = images(6, c=2, h=36, w=30)
    p = d.sample(levels, x.shape, gen(4))
    y = d.apply(x, p)
    assert y.shape == x.shape
    for i in range(6):
        k = p["kernel"][i].double().numpy()
        for c in range(2):
            # true convolution (scipy flips the kernel): y(p) = sum_q k(q) x(p - q)
            ref = ndi.convolve(x[i, c].double().numpy(), k, mode=mode)
            np.testing.assert_allclose(y[i, c].numpy(), ref, atol=1e-5, rtol=0)


def test_blur_small_images_and_shift_direction():
    d = MotionBlur()
    x = images(2, c=3, h=9, w=12)  # smaller than the 27x27 kernel: reflected repeatedly
    p = d.sample(torch.tensor([5, 6]), x.shape, gen(5))
    y = d.apply(x, p)
    for i in range(2):
        for c in range(3):
            ref = ndi.convolve(
                x[i, c].double().numpy(), p["kernel"][i].double().numpy(), mode="mirror"
            )
            np.testing.assert_allclose(y[i, c].numpy(), ref, atol=1e-5, rtol=0)
    # all the weight at displacement (+2, -3): y[r, s] = x[r - 2, s + 3] inside
    k = torch.zeros(1, K, K)
    k[0, 13 + 2, 13 - 3] = 1.0
    x = images(1, c=1, h=20, w=20)
    y = d.operator(x, {"kernel": k})
    assert torch.equal(y[0, 0, 2:, :-3], x[0, 0, :-2, 3:])


def test_same_seed_same_kernels_and_apply_is_deterministic():
    d = MotionBlur(noise_sigma=0.05)
    x = images(12)
    levels = torch.arange(1, 7).repeat(2)
    p1, p2 = d.sample(levels, x.shape, gen(7)), d.sample(levels, x.shape, gen(7))
    assert p1.keys() == p2.keys() == {"severity", "kernel", "noise", "level"}
    for key in p1:
        assert torch.equal(p1[key], p2[key]), key
    assert torch.equal(d.apply(x, p1), d.apply(x, p2))
    assert torch.equal(d.apply(x, p1), d.apply(x, p1))  # apply draws nothing
    p3 = d.sample(levels, x.shape, gen(8))
    assert not torch.equal(p1["kernel"], p3["kernel"])
    assert not torch.equal(p1["severity"], p3["severity"])
    assert not torch.equal(p1["noise"], p3["noise"])


def test_noise_only_when_asked_and_operator_is_noiseless():
    levels = torch.tensor([1, 3, 5, 6])
    x = images(4, h=48, w=48)
    clean = MotionBlur()
    p = clean.sample(levels, x.shape, gen(9))
    assert "noise" not in p
    assert torch.equal(clean.apply(x, p), clean.operator(x, p).clamp(0, 1))
    noisy = MotionBlur(noise_sigma=0.1)
    pn = noisy.sample(levels, x.shape, gen(9))
    assert pn["noise"].shape == x.shape and pn["noise"].dtype == torch.float32
    assert abs(float(pn["noise"].std()) - 0.1) < 0.005  # 27648 draws: std error ~4e-4
    blurred = noisy.operator(x, pn)
    assert torch.equal(blurred, clean.operator(x, {"kernel": pn["kernel"]}))  # no noise in W x
    y = noisy.apply(x, pn)
    assert torch.equal(y, (blurred + pn["noise"]).clamp(0, 1))
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    # the operator is linear (and not clamped)
    a, b = images(4, h=48, w=48, seed=1), images(4, h=48, w=48, seed=2)
    lhs = noisy.operator(2.0 * a - 0.5 * b, pn)
    torch.testing.assert_close(
        lhs, 2.0 * noisy.operator(a, pn) - 0.5 * noisy.operator(b, pn), atol=1e-6, rtol=0
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_params_on_levels_device_and_dtype_kept(dtype):
    d = MotionBlur(noise_sigma=0.02)
    x = images(6, h=20, w=28).to(dtype)
    levels = torch.arange(1, 7)
    y, params = d(x, levels, gen())
    for key, v in params.items():
        assert v.device == levels.device and v.shape[0] == 6, key
    assert params["severity"].dtype == torch.float32 and params["severity"].shape == (6,)
    assert y.shape == x.shape and y.dtype == dtype and d.operator(x, params).dtype == dtype


def test_config_errors():
    with pytest.raises(ConfigError, match="kernel_size=27"):
        MotionBlur(kernel_size=25)
    with pytest.raises(ConfigError, match="odd"):
        MotionBlur(kernel_size=28)
    with pytest.raises(ConfigError, match=r"kernel_size=33 \(or more\)"):
        MotionBlur(bins=[[1, 10]], extra=[10, 30])
    assert MotionBlur(bins=[[1, 10]], extra=[10, 30], kernel_size=33).kernel_size == 33
    assert MotionBlur(bins=[[1, 5]], extra=[], kernel_size=7).ladder.extra is None
    with pytest.raises(ConfigError, match="noise_sigma"):
        MotionBlur(noise_sigma=-0.1)
    with pytest.raises(ConfigError, match="padding"):
        MotionBlur(padding="zeros")
    with pytest.raises(ConfigError, match="unknown fixed"):
        MotionBlur().sample(torch.tensor([1]), (3, 8, 8), fixed={"angle": 1.0})


# ---------------------------------------------------------------- config, data, Golf
def test_task_config_runs_through_the_datamodule_and_a_golf_step(tmp_path):
    from lightning.pytorch import Trainer

    from lightrestore.build import build
    from lightrestore.callbacks.policies import DifficultyPolicy, FixatedPolicy

    cfg = compose_cfg(
        tmp_path,
        "task=motion_blur",
        "method=golf",
        "optimizer=adam_golf",
        "curriculum=fixated_hard",
    )
    assert cfg.task.name == "motion_blur" and cfg.task.channels == 3
    assert dict(cfg.task.fixated.easy) == {"severity": 3}
    assert dict(cfg.task.fixated.hard) == {"severity": 19}
    assert "paper_budget" not in cfg.task  # the paper's iteration count is lost: no budget line
    objs = build(cfg)
    dm, deg = objs["datamodule"], objs["degradation"]
    assert isinstance(deg, MotionBlur) and deg.kernel_size == K and deg.noise_sigma == 0.0
    dm.setup("fit")
    vs, s, per = dm.val_set, dm.crop_size, cfg.data.val_per_level
    assert vs.levels == [1, 2, 3, 4, 5] and vs.degraded.shape == (5 * per, 3, s, s)
    assert vs.params["kernel"].shape == (5 * per, K, K)
    assert vs.params["level"].tolist() == vs.level.tolist()
    bounds = torch.tensor(deg.ladder.all_bins())[vs.level - 1]
    assert torch.all(vs.params["severity"] >= bounds[:, 0])
    assert torch.all(vs.params["severity"] <= bounds[:, 1])
    batch = vs.batch(torch.arange(len(vs)))
    torch.testing.assert_close(
        batch.degraded, deg.apply(batch.clean, vs.params).clamp(0, 1), atol=1e-6, rtol=0
    )
    # one Golf (phase f) step under the fixated-hard curriculum: every training image at 19 px
    policies = [c for c in objs["callbacks"] if isinstance(c, DifficultyPolicy)]
    assert any(isinstance(c, FixatedPolicy) for c in policies)
    trainer = Trainer(max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", callbacks=policies)  # fmt: skip
    trainer.fit(objs["method"], datamodule=dm)
    assert trainer.global_step == 1 and dm.sampler.fixed == {"severity": 19}
    train = dm.corrupt(torch.randint(0, 256, (4, 3, s, s), dtype=torch.uint8), 0)
    assert train.params["severity"].tolist() == [19.0] * 4 and train.degraded.shape == (4, 3, s, s)
