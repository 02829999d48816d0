"""PSPL: the attention's closed form, no gradient through the SSIM map, the delta schedule."""

from __future__ import annotations

import math

import pytest
import torch
from skimage.metrics import structural_similarity

from lightrestore.losses.pspl import PSPLoss, attention, ssim_map


def test_attention_closed_form_on_a_hand_made_map():
    m = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0])
    for delta in (0.5, 1.0, 2.0):
        got = attention(m, delta, gamma=2.0, mu=-1.0)
        want = [2.0 * math.exp(-(((v + 1.0) / delta) ** 2)) for v in m.tolist()]
        assert got.tolist() == pytest.approx(want, rel=1e-6)
    w = attention(torch.rand(1000) * 2 - 1, 1.0)
    assert float(w.min()) > 0 and float(w.max()) <= 2.0  # in (0, gamma] once delta is ~1
    assert float(attention(torch.tensor(-1.0), 1e-3)) == 2.0  # the worst pixel keeps gamma


def test_ssim_map_matches_scikit_image_in_the_interior():
    g = torch.Generator().manual_seed(0)
    hr = torch.rand(1, 3, 40, 40, generator=g)
    sr = (hr + 0.1 * torch.randn(1, 3, 40, 40, generator=g)).clamp(0, 1)
    ours = ssim_map(sr, hr)[0]
    assert ours.shape == (3, 40, 40)  # zero padding keeps the size
    _, ref = structural_similarity(hr[0].double().numpy(), sr[0].double().numpy(), data_range=1.0,
                                   gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   channel_axis=0, full=True)  # fmt: skip
    assert torch.allclose(
        ours[:, 5:-5, 5:-5].double(), torch.from_numpy(ref)[:, 5:-5, 5:-5], atol=1e-4
    )


def test_delta_schedule_follows_the_optimisation_step_not_the_loss_calls():
    loss = PSPLoss(batches_per_epoch=4, alpha=1.0, beta=0.5)
    x, y = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    deltas = []
    for step in range(6):
        loss.set_optimizer_step(step)
        for _ in range(3):  # a method that calls its loss 3 times per batch (Golf's T steps)
            loss(x, y)
        deltas.append(float(loss.log_values()["delta"]))
    assert deltas == pytest.approx([0.5 + k / 4 for k in range(1, 7)])  # t starts at 1/N
    loss.eval()
    loss(x, y)
    assert float(loss.t) == pytest.approx(1.5)  # evaluation does not advance t
    restored = PSPLoss(batches_per_epoch=4, beta=0.5)
    restored.load_state_dict(loss.state_dict())
    assert float(restored.t) == pytest.approx(1.5)
    assert PSPLoss(beta=0.0).delta == 1e-6  # guard for delta = 0 at t = 0


def test_no_gradient_flows_through_the_attention_map():
    torch.manual_seed(0)
    hr = torch.rand(2, 3, 24, 24)
    sr = (hr + 0.2 * torch.rand(2, 3, 24, 24)).clamp(0, 1).requires_grad_(True)
    loss = PSPLoss(base="l2", batches_per_epoch=1)
    loss.set_optimizer_step(0)  # t = 1: delta = 1
    loss(sr, hr).backward()
    m = attention(ssim_map(sr.detach(), hr), 1.0)
    sr2 = sr.detach().clone().requires_grad_(True)
    ((m * sr2 - m * hr) ** 2).mean().backward()  # the map as a constant
    assert torch.allclose(sr.grad, sr2.grad, atol=1e-7)
    stats = loss.log_values()
    assert (
        0
        <= float(stats["attention_min"])
        <= float(stats["attention_mean"])
        <= float(stats["attention_max"])
        <= 2
    )


def test_pspl_wraps_l1_and_l2():
    x, y = torch.rand(1, 1, 12, 12), torch.rand(1, 1, 12, 12)
    for base in ("l1", "l2"):
        loss = PSPLoss(base=base, batches_per_epoch=1)
        loss.set_optimizer_step(0)  # t = 1: delta = 1
        value = loss(x, y)
        m = attention(ssim_map(x, y), 1.0)
        d = m * x - m * y
        assert float(value) == pytest.approx(
            float(d.abs().mean() if base == "l1" else d.square().mean()), rel=1e-5
        )
