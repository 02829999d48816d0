"""Paper constants wherever they are set (issue #10).

A constant can be set in a config file, in a class default or in the arithmetic of an
operator; this file catches a wrong one in any of those places:

1. the composed configs (``smoke=False``), instantiated with ``build``: the *objects*
   are checked against the values of ``/work/shared/METHODS.md`` and the papers in
   ``/work/shared/papers/`` (never against the config files themselves);
2. exact seeded references for every degradation: the parameters are drawn with a fixed
   ``torch.Generator`` and ``apply`` is compared with an independent computation from
   the same draws (a 0.4 % error in a scale, or a swapped axis, fails exactly, not
   statistically);
3. literal SHA-256 checksums of small evaluation sets, recomputed in this process and
   in a fresh one, so evaluation pairs that drift (or differ between processes) fail.
"""

from __future__ import annotations

import copy
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from helpers import REPO, compose_cfg
from torch import nn

from lightrestore.callbacks.policies import (
    DifficultyPolicy,
    FixatedPolicy,
    FixedWeightsPolicy,
    HardMiningPolicy,
    OnDemandPolicy,
)
from lightrestore.cli.train import build, instantiate
from lightrestore.config import config_dir
from lightrestore.data.sampler import DifficultySampler
from lightrestore.degradations import (
    GaussianBlur,
    GaussianNoise,
    Inpaint,
    Interpolate,
    Resize,
)
from lightrestore.degradations.resize import imresize
from lightrestore.losses.hard_mining import set_hard_mining
from lightrestore.losses.pixel import PixelLoss
from lightrestore.losses.pspl import PSPLoss
from lightrestore.metrics.sr import measure_y

# =====================================================================================
# Pinned checksums of small evaluation sets (part 3).
#
# SHA-256 of the val/test pairs of `experiment=ondemand_<task> debug=smoke seed=12345`
# with 3 pairs per level (see `eval_checksums`): the clean patches, the levels and the
# uint8-quantised degraded images (lightrestore.data.eval_set.checksum). They change when
# the embedded data split (which photos/regions feed val/test), the crops, a degradation,
# its ladder or its constants change. Regenerate them deliberately with
#     .venv/bin/python tests/test_constants.py
# paste the printed dict here, and explain the change in the commit message.
# =====================================================================================
EVAL_CHECKSUMS = {
    "inpaint/val": "4b40fa6db9bda6b1a2e66b51ecc822aa55a998aa0b4895e42e5494182066eeee",
    "inpaint/test": "60aacf94639216964e5e3a3098f06876d4987c3afbd3634a6d4a458d961692a9",
    "inpaint/test:centered": "243f326132d8165723cf2baaac87293ee142323fa4698c2c90417356f16331c0",
    "interp/val": "503406424dd9029aac26f5aecb2b4801f88f5ef282ae61f8a3411461c9fb3b15",
    "interp/test": "d1ad08a89f8d7d6c7962da2acf18a6164317a6e0a73a4598eb053ffe30c4009f",
    "deblur/val": "b2d69353acd9ac7f951cc3029b666b2f401f2b2d7994e85d3b2efc9e64db0e8e",
    "deblur/test": "c6d8ebdec77edb9d2dd16fe08aacbc53aa1a26089de0a3a093585571d994df8d",
    "denoise/val": "2548bf61659f974f01e8af84d54b35416c15741f3e161118c382afbe008f9755",
    "denoise/test": "804989882a43d250db3b4cee0ccd2b1b215bf1e1f5863c991f5702c56b74a2b8",
}

#: the tasks whose evaluation sets are pinned
CHECKSUM_TASKS = ("inpaint", "interp", "deblur", "denoise")

# =====================================================================================
# Expected values, each from METHODS.md (/work/shared/METHODS.md) or a paper.
# =====================================================================================

#: METHODS.md, ODL "Inpainting (code)": holes (and deleted pixels) are filled with the
#: dataset mean colour (117, 104, 123)/255.
MEAN_COLOUR_255 = (117, 104, 123)


def _percent(bins):
    return tuple((lo / 100, hi / 100) for lo, hi in bins)


#: Training bins, levels 1..5. METHODS.md ODL + on-demand-learning.txt §6.2:
#: inpainting hole sides 1-6, 7-12, 13-18, 19-24, 25-30 px; pixel interpolation
#: 0-15, 15-30, 30-45, 45-60, 60-75 % deleted; deblurring sigma_x, sigma_y 0-1 .. 4-5;
#: denoising sigma (0-255 scale) 0-20 .. 80-100.
ODL_BINS = {
    "inpaint": ((1, 6), (7, 12), (13, 18), (19, 24), (25, 30)),
    "interp": _percent(((0, 15), (15, 30), (30, 45), (45, 60), (60, 75))),
    "deblur": ((0, 1), (1, 2), (2, 3), (3, 4), (4, 5)),
    "denoise": ((0, 20), (20, 40), (40, 60), (60, 80), (80, 100)),
}
#: The extra test-only level 6. METHODS.md "Extra level (ours, following the
#: progression)": inpaint 31-36, interp 75-90 %, blur 5-6, noise 100-120.
ODL_EXTRA = {
    "inpaint": (31, 36),
    "interp": (75 / 100, 90 / 100),
    "deblur": (5, 6),
    "denoise": (100, 120),
}
#: Fixated baselines (easy, hard). METHODS.md "Baselines (paper)" and
#: on-demand-learning.txt §6.4: inpaint 5x5 / 32x32 *central* blocks; interp 10 % / 80 %
#: deleted; deblur sigma_x = sigma_y = 1 / 5; denoise sigma = 10 / 90.
FIXATED = {
    "inpaint": ({"severity": 5, "centered": True}, {"severity": 32, "centered": True}),
    "interp": ({"severity": 10 / 100}, {"severity": 80 / 100}),
    "deblur": ({"severity": 1}, {"severity": 5}),
    "denoise": ({"severity": 10}, {"severity": 90}),
}
ODL_DEGRADATION = {
    "inpaint": Inpaint,
    "interp": Interpolate,
    "deblur": GaussianBlur,
    "denoise": GaussianNoise,
}
#: METHODS.md ODL "Denoising (paper + code): greyscale (a 1-channel network)";
#: on-demand-learning.txt §6.2 "We use gray-scale images for denoising".
ODL_CHANNELS = {"inpaint": 3, "interp": 3, "deblur": 3, "denoise": 1}

#: METHODS.md ODL "Optimiser (code): Adam lr 2e-4, beta1 0.5; batch 100; MSE loss; ...
#: random 64x64 crops" (on-demand-learning.txt §6.2: "batch size B = 100"). beta2 is
#: Torch's Adam default 0.999 (the paper: "default solver hyper-parameters of [33]").
ODL_LR, ODL_BETAS, ODL_BATCH, ODL_CROP = 2e-4, (0.5, 0.999), 100, 64
#: METHODS.md "Shared conventions": N training levels, level N+1 test-only; N = 5 from
#: on-demand-learning.txt §6.2 ("N = 5 difficulty levels during training ... An extra
#: level (level 6) is added during testing").
ODL_LEVELS = 5

#: Super-resolution optimiser: Adam lr 1e-4, betas (0.9, 0.999) -- EDSR's setting (Lim et
#: al. 2017; the one LIRA in METHODS.md also states: "Adam (0.9, 0.999) ... from 1e-4");
#: neither METHODS.md's PSPL section nor pspl.txt gives an optimiser.
SR_LR, SR_BETAS = 1e-4, (0.9, 0.999)
#: METHODS.md "Shared conventions": SR metrics on the Y channel of ITU-R BT.601 as
#: MATLAB's rgb2ycbcr (Y = 16 + 65.481 R + 128.553 G + 24.966 B, R, G, B in [0, 1], as
#: MATLAB documents it), with a border of `scale` pixels cropped.
Y_COEFFS_255 = (65.481, 128.553, 24.966)

#: METHODS.md PSPL "Attention (paper Eq. 7 + code)": mu = -1, gamma = 2, delta = alpha*t +
#: beta with alpha = 1, beta = 0 (pspl.txt: "we set gamma = 2, alpha = 1 and beta = 0",
#: "mu equals the lower bound" of SSIM); t's unit is 1000 batches (the authors' "epoch").
PSPL = {"gamma": 2.0, "mu": -1.0, "alpha": 1.0, "beta": 0.0, "batches_per_epoch": 1000}
#: Each SR model's own pixel loss; PSPL wraps it (pspl.txt §2.4, Eq. 9-10: L(M_a * I_sr,
#: M_a * I_hr) with the model's L, "L1 or L2"; METHODS.md PSPL: "each model as its own
#: paper"). From the model papers: SRCNN, VDSR and DRRN train with MSE, EDSR with L1,
#: LapSRN with the Charbonnier penalty (a smooth L1).
SR_LOSS = {"srcnn": "l2", "vdsr": "l2", "drrn": "l2", "lapsrn": "charbonnier", "edsr": "l1"}

#: METHODS.md ODL "hard mining ... back-propagate only the k highest-loss samples of each
#: batch; paper: k=10 of 100" (on-demand-learning.txt §6.3: "in each batch, we select the
#: 10 with highest loss").
HARD_MINING_K, HARD_MINING_B = 10, 100

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
#: the On-Demand Learning paper's experiments (not DL-Net's or the SR ones)
ODL_EXPERIMENTS = [e for e in EXPERIMENTS if e.startswith(("ondemand_", "rigid_joint_", "fixated_"))]
SR_EXPERIMENTS = [e for e in EXPERIMENTS if e.startswith("sr_")]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_experiment_families_are_known():
    """Every experiment is checked below: an ODL task or a super-resolution preset."""
    for e in ODL_EXPERIMENTS:
        assert e.rsplit("_", 1)[-1] in ODL_BINS, e
    for e in SR_EXPERIMENTS:
        assert e.split("_")[2] in ("x2", "x3", "x4"), e
    assert len(ODL_EXPERIMENTS) >= 16 and len(SR_EXPERIMENTS) >= 30


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``built(*overrides) -> (cfg, objects of build(cfg))``, composed without debug=smoke,
    cached for the module (tests that change an object work on a copy)."""
    cache: dict[tuple[str, ...], tuple] = {}

    def get(*overrides: str):
        if overrides not in cache:
            cfg = compose_cfg(tmp_path_factory.mktemp("build"), *overrides, smoke=False)
            cache[overrides] = (cfg, build(cfg))
        return cache[overrides]

    return get


def policy_of(objs) -> DifficultyPolicy:
    policies = [c for c in objs["callbacks"] if isinstance(c, DifficultyPolicy)]
    assert len(policies) == 1
    return policies[0]


def optimizer_of(method) -> torch.optim.Optimizer:
    return method.optimizer_factory(method.model.parameters())


def check_fill(fill_tensor: torch.Tensor) -> None:
    """The fill colour is (117, 104, 123)/255: within 1e-6 (the configs store 6
    decimals) and exactly those integers back on the 0-255 scale."""
    expected = torch.tensor(MEAN_COLOUR_255, dtype=torch.float32) / 255
    got = fill_tensor.flatten().float()
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=0)
    on_255 = got.double() * 255
    assert on_255.round().long().tolist() == list(MEAN_COLOUR_255)
    assert float((on_255 - on_255.round()).abs().max()) < 1e-3


# =====================================================================================
# 1. The composed configs' paper constants, on the instantiated objects
# =====================================================================================
@pytest.mark.parametrize("experiment", ODL_EXPERIMENTS)
def test_odl_experiment_constants(built, experiment):
    cfg, objs = built(f"experiment={experiment}")
    task = experiment.rsplit("_", 1)[-1]
    deg, dm, method, model = objs["degradation"], objs["datamodule"], objs["method"], objs["model"]
    # the degradation family and its ladder
    assert type(deg) is ODL_DEGRADATION[task]
    assert deg.ladder.bins == ODL_BINS[task]
    assert deg.ladder.extra == ODL_EXTRA[task]
    assert deg.ladder.n_levels == ODL_LEVELS and deg.ladder.extra_level == ODL_LEVELS + 1
    assert dm.val_levels == [1, 2, 3, 4, 5] and dm.test_levels == [1, 2, 3, 4, 5, 6]
    # data: batch 100, 64x64 crops; greyscale for denoising
    assert dm.batch_size == ODL_BATCH and dm.crop_size == ODL_CROP
    channels = ODL_CHANNELS[task]
    assert cfg.task.channels == channels and dm.source.channels == channels
    assert model.encoder[0][0].in_channels == channels
    assert model.head_conv.out_channels == channels
    assert model.image_size == ODL_CROP
    # optimiser and loss: Adam 2e-4, (0.5, 0.999); MSE
    opt = optimizer_of(method)
    assert type(opt) is torch.optim.Adam
    assert opt.defaults["lr"] == ODL_LR and tuple(opt.defaults["betas"]) == ODL_BETAS
    assert type(method.loss) is PixelLoss and method.loss.kind == "l2"
    # METHODS.md shared conventions: metrics on all channels, no border
    assert method.metric_space == "rgb" and method.metric_border == 0
    # the difficulty policy of the experiment
    policy = policy_of(objs)
    kind = experiment.split("_")[0]
    if kind == "ondemand":
        assert type(policy) is OnDemandPolicy and policy.metric == "val/psnr"
    elif experiment.startswith("rigid_joint"):  # METHODS.md: rigid joint = equal counts
        assert type(policy) is FixedWeightsPolicy and policy.weights is None
    else:
        easy_or_hard = experiment.split("_")[1]
        assert type(policy) is FixatedPolicy
        assert policy.fixed == FIXATED[task][0 if easy_or_hard == "easy" else 1]
    # task specifics
    if task in ("inpaint", "interp"):
        check_fill(deg.fill.tensor(3, torch.device("cpu"), torch.float32))
    if task == "inpaint":
        # METHODS.md: side "drawn uniformly within the level's bin" (integers), hole
        # "placed at a random position anywhere in the image"; test variant: centred
        assert deg.ladder.integer and not deg.centered and deg.max_shift is None
        assert dm.test_variants == {"centered": {"centered": True}}
    if task == "deblur":
        # METHODS.md: "a kernel of >= 2*ceil(3 sigma)+1 is the faithful choice", for the
        # largest sigma (6, extra level); OpenCV's default border is BORDER_REFLECT_101
        # (torch's "reflect")
        assert 2 * deg.kernel_radius + 1 >= 2 * math.ceil(3 * 6) + 1
        assert deg.padding == "reflect"
    if task == "denoise":
        assert deg.clip  # METHODS.md: "result clamped to the valid range"


@pytest.mark.parametrize("task", list(ODL_DEGRADATION))
def test_class_defaults_hold_the_same_constants(task):
    """The classes' defaults (used without a config) hold METHODS.md's ladders and fill."""
    d = ODL_DEGRADATION[task]()
    assert d.ladder.bins == ODL_BINS[task] and d.ladder.extra == ODL_EXTRA[task]
    if task in ("inpaint", "interp"):
        check_fill(d.fill.tensor(3, torch.device("cpu"), torch.float32))


def test_odl_autoencoder_architecture(built):
    """METHODS.md ODL "Network (code)": conv4x4/s2/p1 3->64->128->256->512, BN +
    LeakyReLU(0.2) each (BN on the first layer too); channel-wise FC of 512 independent
    Linear(16->16) with bias over the 4x4 map; ConvTranspose4x4/s2/p1 512->256->128->64
    with BN + ReLU, then 64->3 and tanh; no conv biases; init N(0, 0.02), BN N(1, 0.02)."""
    _, objs = built("experiment=ondemand_inpaint")
    model = objs["model"]

    def geometry(m):
        return (m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.bias)

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [geometry(m) for m in convs] == [
        (cin, cout, (4, 4), (2, 2), (1, 1), None)
        for cin, cout in ((3, 64), (64, 128), (128, 256), (256, 512))
    ]
    deconvs = [m for m in model.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [geometry(m) for m in deconvs] == [
        (cin, cout, (4, 4), (2, 2), (1, 1), None)
        for cin, cout in ((512, 256), (256, 128), (128, 64), (64, 3))
    ]
    bns = [m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns == [64, 128, 256, 512, 256, 128, 64]
    slopes = [m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert slopes == [0.2] * 4  # the encoder's four, nowhere else
    assert all(isinstance(blk[2], nn.LeakyReLU) for blk in model.encoder)
    assert all(isinstance(blk[2], nn.ReLU) for blk in model.decoder)
    fc = model.bottleneck
    assert fc.weight.shape == (512, 16, 16) and fc.bias.shape == (512, 16)
    # tanh output mapped to [0, 1]: saturates at both ends for large features
    with torch.no_grad():
        out = model.head(1e3 * torch.randn(2, 64, 32, 32, generator=gen()), torch.zeros(2, 3, 64, 64))
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0
    # init: conv weights N(0, 0.02) (131k samples: std error ~0.2 %), BN weights N(1, 0.02)
    w = convs[1].weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(w.mean())) < 0.001
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)][3]  # 512 features
    bn_w = bn.weight.detach()
    assert abs(float(bn_w.mean()) - 1.0) < 0.005
    assert 0.015 < float(bn_w.std()) < 0.025 and not bn.bias.any()


@pytest.mark.parametrize("level", ["easy", "hard"])
@pytest.mark.parametrize("task", list(ODL_DEGRADATION))
def test_fixated_policy_draws_the_papers_setting(built, task, level):
    """The fixated policy, set up on a sampler, makes the degradation draw exactly the
    paper's setting (inpainting: the block at the centre)."""
    _, objs = built(f"experiment=fixated_{level}_{task}")
    deg = objs["degradation"]
    sampler = DifficultySampler(ODL_LEVELS)
    trainer = SimpleNamespace(datamodule=SimpleNamespace(sampler=sampler, ladder=deg.ladder))
    policy_of(objs).setup(trainer, None, "fit")
    expected = FIXATED[task][0 if level == "easy" else 1]
    s = expected["severity"]
    levels = torch.arange(1, ODL_LEVELS + 1)  # the fixed setting overrides every level
    params = deg.sample(levels, (ODL_CHANNELS[task], 64, 64), gen(), fixed=sampler.fixed)
    assert params["severity"].tolist() == [pytest.approx(s, abs=1e-7)] * ODL_LEVELS
    if task == "inpaint":
        centre = (64 - s) // 2
        assert params["top"].tolist() == params["left"].tolist() == [centre] * ODL_LEVELS
    if task == "deblur":
        assert params["sigma_x"].tolist() == params["sigma_y"].tolist() == [s] * ODL_LEVELS


def test_ondemand_rule_of_the_composed_policy(built):
    """METHODS.md On-demand (paper Eq. 3): equal counts first; after validation
    B_i = B (1/P_i) / sum_j (1/P_j), largest-remainder rounding so sum B_i = B."""
    _, objs = built("experiment=ondemand_inpaint")
    policy = copy.deepcopy(policy_of(objs))
    sampler = DifficultySampler(ODL_LEVELS)
    sampler.set_weights([1, 0, 0, 0, 0])
    psnr = [20.0, 25.0, 40.0, 30.0, 35.0]
    metrics = {f"val/psnr/level_{i}": torch.tensor(p) for i, p in enumerate(psnr, start=1)}
    trainer = SimpleNamespace(
        datamodule=SimpleNamespace(sampler=sampler), callback_metrics=metrics, sanity_checking=False
    )
    policy.setup(trainer, None, "fit")
    assert sampler.counts(ODL_BATCH).tolist() == [20] * 5
    policy.on_validation_end(trainer, None)
    inv = [1 / p for p in psnr]
    expected = [v / sum(inv) for v in inv]
    assert sampler.weights.tolist() == pytest.approx(expected, rel=1e-12)
    # by hand: 28.27, 22.61, 14.13, 18.84, 16.15 -> floors 28, 22, 14, 18, 16 (98) -> the
    # two largest remainders (.84, .61) get one more each
    assert sampler.counts(ODL_BATCH).tolist() == [28, 23, 14, 19, 16]


def test_hard_mining_keeps_the_10_hardest_of_100(built):
    _, objs = built("experiment=rigid_joint_inpaint", "curriculum=hard_mining")
    policy, method = policy_of(objs), copy.deepcopy(objs["method"])
    assert type(policy) is HardMiningPolicy
    assert objs["datamodule"].batch_size == HARD_MINING_B
    # behaviour: per-sample errors 0, 1, ..., 99; the loss is the mean of the top 10
    target = torch.zeros(HARD_MINING_B, 1, 2, 2)
    pred = (
        torch.arange(HARD_MINING_B, dtype=torch.float32).sqrt().view(-1, 1, 1, 1).expand_as(target)
    )
    set_hard_mining(method, policy.fraction)
    loss = method.loss(pred, target)
    top = torch.arange(HARD_MINING_B - HARD_MINING_K, HARD_MINING_B, dtype=torch.float32)
    assert float(loss) == pytest.approx(float(top.mean()), rel=1e-6)


def test_pspl_constants_and_attention(built):
    pspl = [e for e in SR_EXPERIMENTS if e.endswith("_pspl")]
    assert len(pspl) >= 15
    for e in pspl:
        loss = built(f"experiment={e}")[1]["method"].loss
        assert type(loss) is PSPLoss, e
        got = {k: getattr(loss, k) for k in PSPL}
        assert got == PSPL, e
        assert loss.base.kind == SR_LOSS[e.split("_")[1]], e
    # behaviour of one instance: t starts at 1/1000 (the first batch, 0 steps before it) ...
    loss = copy.deepcopy(built(f"experiment={pspl[0]}")[1]["method"].loss).train()
    x = torch.rand(2, 3, 16, 16, generator=gen())
    loss.set_optimizer_step(0)
    loss.per_sample(x, x)
    assert loss.t == pytest.approx(1 / 1000, abs=1e-12)
    # ... and at t = 2, delta = 2; identical images have SSIM 1 everywhere, so the
    # attention is gamma * exp(-((1 - mu) / delta)^2) = 2 exp(-1) on every pixel
    loss.set_optimizer_step(1999)
    loss.per_sample(x, x)
    assert loss.delta == pytest.approx(2.0, abs=1e-9)
    stats = loss.log_values()
    for key in ("attention_min", "attention_max"):
        assert float(stats[key]) == pytest.approx(2 * math.exp(-1), abs=1e-5), key


@pytest.mark.parametrize("experiment", SR_EXPERIMENTS)
def test_sr_experiment_constants(built, experiment):
    cfg, objs = built(f"experiment={experiment}")
    scale = int(experiment.split("_")[2][1:])
    deg, method = objs["degradation"], objs["method"]
    # classic SR: MATLAB bicubic downscaling by the named scale, no blur, one level
    assert cfg.task.scale == scale
    assert type(deg) is Resize and deg.scale == scale
    assert deg.ladder.bins == ((0, 0),) and deg.ladder.extra is None
    assert deg.kernel_radius == 0
    # metrics on Y with a border of `scale` px
    assert method.metric_space == "y" and method.metric_border == scale
    measure = method.val_metrics.measure
    # SR tables round the output to 8 bits first (EDSR, BasicSR and the PSPL code do)
    assert measure.func is measure_y and measure.keywords == {"border": scale, "quantize": True}
    opt = optimizer_of(method)
    assert type(opt) is torch.optim.Adam
    assert opt.defaults["lr"] == SR_LR and tuple(opt.defaults["betas"]) == SR_BETAS
    assert (type(method.loss) is PSPLoss) == experiment.endswith("_pspl")
    pixel = method.loss.base if experiment.endswith("_pspl") else method.loss
    assert type(pixel) is PixelLoss and pixel.kind == SR_LOSS[experiment.split("_")[1]]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_metric_is_y_with_a_border_of_scale(built, scale):
    """A change in one channel of the first kept row moves the metric's L1 by exactly
    that channel's BT.601 weight (MATLAB rgb2ycbcr); a change in the outer ``scale``
    pixels does not count; one pixel further in does."""
    _, objs = built(f"experiment=sr_srcnn_x{scale}")
    measure = objs["method"].val_metrics.measure
    # an 8-bit target and a whole grey level of change: the 8-bit rounding moves nothing
    h, w, d = 24, 20, 26 / 255
    target = ((0.2 + 0.6 * torch.rand(1, 3, h, w, generator=gen())) * 255).round() / 255
    for c, coeff in enumerate(Y_COEFFS_255):
        pred = target.clone()
        pred[..., :scale, :] = pred[..., -scale:, :] = 0.0  # the border ring
        pred[..., :, :scale] = pred[..., :, -scale:] = 0.0
        pred[:, c, scale, scale:-scale] += d  # the first row inside the border
        l1 = float(measure(pred, target)["l1"][0])
        assert l1 == pytest.approx(coeff / 255 * d / (h - 2 * scale), rel=1e-4), c


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_sr_tasks_downscale_by_matlab_antialiased_bicubic(tmp_path, scale):
    """conf/task/sr_x{s}.yaml: the degradation is imresize(x, 1/s) with antialiasing
    (MATLAB's default; tests/test_resize.py checks imresize against MATLAB's algorithm)."""
    cfg = compose_cfg(tmp_path, f"task=sr_x{scale}", smoke=False)
    deg = instantiate(cfg.task.degradation)
    x = torch.rand(2, 3, 12 * scale, 8 * scale, generator=gen(scale))
    y = deg.apply(x, deg.sample(torch.ones(2, dtype=torch.long), x.shape[1:], gen()))
    assert y.shape == (2, 3, 12, 8)
    ref = imresize(x, scale=1 / scale, antialias=True).clamp(0, 1)
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=0)
    plain = imresize(x, scale=1 / scale, antialias=False).clamp(0, 1)
    assert float((y - plain).abs().max()) > 1e-2


# =====================================================================================
# 2. Exact seeded references for the degradations
#    (tests/test_degradations.py checks hand-picked settings and the module's own
#    MEAN_COLOUR; here: the composed task's degradation, the draws regenerated from the
#    same seed, and the constants written out from METHODS.md)
# =====================================================================================
def task_degradation(tmp_path, task: str):
    cfg = compose_cfg(tmp_path, f"task={task}", smoke=False)
    return instantiate(cfg.task.degradation)


def all_levels(per_level: int) -> torch.Tensor:
    return torch.arange(1, ODL_LEVELS + 2).repeat(per_level)  # levels 1..6


def bin_bounds(task: str, levels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(lo, hi) float32 of each sample's level, from METHODS.md's bins (not the ladder)."""
    table = torch.tensor((*ODL_BINS[task], ODL_EXTRA[task]), dtype=torch.float32)
    b = table[levels - 1]
    return b[:, 0], b[:, 1]


def fill_255(channels: int) -> torch.Tensor:
    return (torch.tensor(MEAN_COLOUR_255, dtype=torch.float32) / 255).view(1, channels, 1, 1)


def test_noise_is_sigma_over_255_of_the_seeded_normal_draw(tmp_path):
    d = task_degradation(tmp_path, "denoise")
    levels = all_levels(4)
    b, h, w = len(levels), 24, 32
    x = torch.rand(b, 1, h, w, generator=gen(1))  # greyscale (1 channel)
    params = d.sample(levels, x.shape[1:], gen(7))
    y = d.apply(x, params)
    # regenerate: the sigma of each sample (uniform in its bin), then the unit normals
    g = gen(7)
    lo, hi = bin_bounds("denoise", levels)
    sigma = lo + torch.rand(b, generator=g) * (hi - lo)
    n = torch.randn(b, 1, h, w, generator=g)
    torch.testing.assert_close(params["severity"], sigma, atol=1e-5, rtol=0)
    ref = (x + n * (sigma / 255).view(-1, 1, 1, 1)).clamp(0, 1)  # 0-255 scale, clamped
    torch.testing.assert_close(y, ref, atol=1e-6, rtol=0)
    # the comparison has the power to see sigma/256, and clamping happens
    off = (x + n * (sigma / 256).view(-1, 1, 1, 1)).clamp(0, 1)
    assert float((off - ref).abs().max()) > 1e-3
    assert bool((y == 0).any()) and bool((y == 1).any())


def test_inpaint_hole_is_the_sampled_square_in_the_mean_colour(tmp_path):
    d = task_degradation(tmp_path, "inpaint")
    levels = all_levels(4)
    h, w = 48, 64  # not square: a swapped axis moves the hole
    x = torch.rand(len(levels), 3, h, w, generator=gen(2))
    p = d.sample(levels, x.shape[1:], gen(3))
    y = d.apply(x, p)
    side = p["severity"].long()
    lo, hi = bin_bounds("inpaint", levels)
    assert torch.all(side >= lo.long()) and torch.all(side <= hi.long())
    assert torch.equal(p["severity"], side.float())
    hole = torch.zeros(len(levels), 1, h, w, dtype=torch.bool)
    for i, (t, l, s) in enumerate(zip(p["top"].tolist(), p["left"].tolist(), side.tolist())):
        assert 0 <= t <= h - s and 0 <= l <= w - s
        hole[i, :, t : t + s, l : l + s] = True
    assert not torch.equal(p["top"], p["left"])
    assert_filled(x, y, hole)
    # exact counts: s*s pixels changed in every channel (a random x never equals the fill)
    changed = (y != x).all(dim=1).sum(dim=(1, 2))
    assert torch.equal(changed, side**2) and torch.equal((y != x).any(dim=1), hole[:, 0])


def assert_filled(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> None:
    """``y`` is ``x`` with the pixels of ``mask`` ``(B, 1, H, W)`` set to ODL's fill colour
    (within 1e-6, and exactly (117, 104, 123) on 0-255) in every channel, the rest unchanged."""
    m3 = mask.expand_as(x)
    fill = fill_255(3).expand_as(x)
    torch.testing.assert_close(y[m3], fill[m3], atol=1e-6, rtol=0)
    assert torch.equal((y[m3] * 255).round().long(), (fill[m3] * 255).round().long())
    assert torch.equal(y[~m3], x[~m3])


def test_interpolate_deletes_exactly_the_seeded_mask(tmp_path):
    d = task_degradation(tmp_path, "interp")
    levels = all_levels(4)
    b, h, w = len(levels), 40, 48
    x = torch.rand(b, 3, h, w, generator=gen(4))
    p = d.sample(levels, x.shape[1:], gen(5))
    y = d.apply(x, p)
    # regenerate: the rate of each sample (uniform in its bin), then one Bernoulli(r)
    # field per image shared by the channels
    g = gen(5)
    lo, hi = bin_bounds("interp", levels)
    rate = lo + torch.rand(b, generator=g) * (hi - lo)
    mask = torch.rand(b, 1, h, w, generator=g) < rate.view(-1, 1, 1, 1)
    torch.testing.assert_close(p["severity"], rate, atol=1e-7, rtol=0)
    assert torch.equal(p["deleted"], mask)
    assert_filled(x, y, mask)
    changed = (y != x).all(dim=1).sum(dim=(1, 2))
    assert torch.equal(changed, mask.sum(dim=(1, 2, 3)))


def gaussian_taps(sigma: float, radius: int) -> np.ndarray:
    """exp(-n^2 / 2 sigma^2) at n = -radius..radius, normalised (sigma ~ 0: an impulse)."""
    n = np.arange(-radius, radius + 1, dtype=np.float64)
    if sigma < 1e-2:
        return (n == 0).astype(np.float64)
    k = np.exp(-(n**2) / (2 * sigma**2))
    return k / k.sum()


def test_blur_matches_a_2d_gaussian_built_from_the_seeded_sigmas(tmp_path):
    d = task_degradation(tmp_path, "deblur")
    # blur.py: the kernel radius is fixed per degradation, ceil(3 * largest sigma of the
    # ladder) = ceil(3 * 6) = 18 (37 taps), for every draw; border = mirror (OpenCV's
    # BORDER_REFLECT_101, scipy's "mirror")
    radius = math.ceil(3 * ODL_EXTRA["deblur"][1])
    assert d.kernel_radius == radius
    levels = all_levels(2)
    b, h, w = len(levels), 40, 48
    x = torch.rand(b, 3, h, w, generator=gen(6))
    p = d.sample(levels, x.shape[1:], gen(8))
    y = d.apply(x, p).double().numpy()
    # regenerate: sigma_x then sigma_y, each uniform in the level's bin
    g = gen(8)
    lo, hi = bin_bounds("deblur", levels)
    sigma_x = lo + torch.rand(b, generator=g) * (hi - lo)
    sigma_y = lo + torch.rand(b, generator=g) * (hi - lo)
    torch.testing.assert_close(p["sigma_x"], sigma_x, atol=1e-6, rtol=0)
    torch.testing.assert_close(p["sigma_y"], sigma_y, atol=1e-6, rtol=0)
    xs = x.double().numpy()
    worst_off = 0.0
    for i in range(b):
        sy, sx = float(sigma_y[i]), float(sigma_x[i])
        kernel = np.outer(gaussian_taps(sy, radius), gaussian_taps(sx, radius))  # (H, W) axes
        ref = np.stack([ndi.correlate(xs[i, c], kernel, mode="mirror") for c in range(3)])
        np.testing.assert_allclose(y[i], ref, atol=1e-5, rtol=0)
        # power: the same comparison fails for sigmas 0.4 % off or axes swapped
        k_off = np.outer(gaussian_taps(sy * 1.004, radius), gaussian_taps(sx * 1.004, radius))
        k_swap = np.outer(gaussian_taps(sx, radius), gaussian_taps(sy, radius))
        for k in (k_off, k_swap):
            alt = np.stack([ndi.correlate(xs[i, c], k, mode="mirror") for c in range(3)])
            worst_off = max(worst_off, float(np.abs(alt - ref).max()))
    assert worst_off > 1e-4


# =====================================================================================
# 3. Pinned checksums of small evaluation sets, in this process and a fresh one
# =====================================================================================
def eval_checksums(tasks=CHECKSUM_TASKS) -> dict[str, str]:
    """``{"<task>/<split>[:<variant>]": sha256}`` of the val and test sets of
    ``experiment=ondemand_<task>`` with ``debug=smoke`` and 3 pairs per level."""
    out: dict[str, str] = {}
    for task in tasks:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose_cfg(
                Path(tmp),
                f"experiment=ondemand_{task}",
                "data.val_per_level=3",
                "data.test_per_level=3",
                "seed=12345",
            )
            dm = build(cfg)["datamodule"]
            dm.setup("validate")
            dm.setup("test")
            out[f"{task}/val"] = dm.val_set.checksum
            for name, es in dm.test_sets.items():
                out[f"{task}/test" + ("" if name == "default" else f":{name}")] = es.checksum
    return out


@pytest.fixture(scope="module")
def checksums_here() -> dict[str, str]:
    return eval_checksums()


@pytest.mark.parametrize("task", CHECKSUM_TASKS)
def test_eval_set_checksums_are_pinned(checksums_here, task):
    """The pairs every method is compared on have not drifted.

    Inpainting and interpolation are exact arithmetic (copies and a fill colour ~0.5 away
    from a uint8 rounding boundary): safe on any CPU. Blurred and noisy values are float
    results quantised to uint8, and a few lie within 1e-5 (on the 0-255 scale) of a
    rounding boundary: stable across processes, thread counts and ATen / oneDNN ISA
    levels here, but a torch version (or CPU) that sums the blur in another order can
    flip one. If only ``deblur`` / ``denoise`` fail on a new platform while the
    fresh-process test passes, regenerate and say so in the commit.
    """
    mine = {k: v for k, v in checksums_here.items() if k.startswith(f"{task}/")}
    pinned = {k: v for k, v in EVAL_CHECKSUMS.items() if k.startswith(f"{task}/")}
    assert mine == pinned


def test_eval_set_checksums_in_a_fresh_process(checksums_here):
    """A fresh interpreter (one thread, its own hash seed) builds the same pairs."""
    code = (
        "import json, sys; sys.path.insert(0, {tests!r}); import test_constants as t; "
        "print('CHECKSUMS=' + json.dumps(t.eval_checksums()))"
    ).format(tests=str(REPO / "tests"))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="random")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("CHECKSUMS=")][-1]
    assert json.loads(line.removeprefix("CHECKSUMS=")) == checksums_here


if __name__ == "__main__":  # regenerate EVAL_CHECKSUMS (see the comment at the top)
    import logging

    logging.disable(logging.WARNING)
    sums = eval_checksums()
    print("EVAL_CHECKSUMS = {")
    for key, value in sums.items():
        print(f'    "{key}": "{value}",')
    print("}")
