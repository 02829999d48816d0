"""The difficulty sampler and ODL's Eq. 3, against hand-worked numbers."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
import torch

from lightrestore.callbacks.policies import FixedWeightsPolicy, OnDemandPolicy
from lightrestore.data.sampler import DifficultySampler, inverse_psnr_weights, largest_remainder
from lightrestore.errors import ConfigError


def test_eq3_weights_hand_worked():
    # 1/20 = .05, 1/25 = .04, 1/40 = .025; sum .115
    w = inverse_psnr_weights([20.0, 25.0, 40.0])
    assert w.tolist() == pytest.approx([0.05 / 0.115, 0.04 / 0.115, 0.025 / 0.115], abs=1e-12)
    assert float(w.sum()) == pytest.approx(1.0)


def test_largest_remainder_hand_worked():
    # raw 43.478, 34.783, 21.739 -> floors 43, 34, 21 (98); +1 to .783 and .739
    counts = largest_remainder(inverse_psnr_weights([20.0, 25.0, 40.0]), 100)
    assert counts.tolist() == [43, 35, 22]


def test_largest_remainder_exact_and_sums():
    assert largest_remainder(torch.full((5,), 0.2, dtype=torch.float64), 100).tolist() == [20] * 5
    assert largest_remainder(
        torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64), 100
    ).tolist() == [100, 0, 0, 0, 0]
    # 7 levels, B = 100: 14.28 each -> 14 * 7 = 98, two left over
    counts = largest_remainder(
        torch.full((7,), 1 / 7, dtype=torch.float64), 100, torch.Generator().manual_seed(0)
    )
    assert int(counts.sum()) == 100 and sorted(counts.tolist()) == [14] * 5 + [15] * 2


def test_ties_are_broken_at_random_not_towards_easy_levels():
    s = DifficultySampler(5, seed=3)
    totals = torch.zeros(5, dtype=torch.long)
    for _ in range(200):
        levels = s.assign(8)  # 1.6 per level: three levels get 2, two get 1
        totals += torch.bincount(levels, minlength=6)[1:]
    assert int(totals.sum()) == 1600
    # expected 320 each; a fixed tie-break would give 400/400/400/200/200
    assert totals.min() > 280 and totals.max() < 360, totals.tolist()


def test_assign_counts_shuffle_and_determinism():
    s = DifficultySampler(3, seed=0)
    s.set_weights(inverse_psnr_weights([20.0, 25.0, 40.0]))
    levels = s.assign(100)
    assert levels.shape == (100,) and levels.dtype == torch.long
    assert torch.bincount(levels, minlength=4)[1:].tolist() == [43, 35, 22]
    assert not torch.equal(levels, levels.sort().values)  # shuffled
    s2 = DifficultySampler(3, seed=0)
    s2.set_weights(inverse_psnr_weights([20.0, 25.0, 40.0]))
    assert torch.equal(s2.assign(100), levels)


def test_set_weights_validates():
    s = DifficultySampler(5)
    with pytest.raises(ConfigError, match="exactly 5 weights"):
        s.set_weights([1, 1, 1])
    with pytest.raises(ConfigError, match=">= 0"):
        s.set_weights([1, -1, 1, 1, 1])
    s.set_weights([2, 2, 0, 0, 0])
    assert s.weights.tolist() == [0.5, 0.5, 0, 0, 0]


def test_history_per_epoch():
    s = DifficultySampler(2, seed=0)
    s.assign(10, epoch=0)
    s.assign(10, epoch=0)
    s.set_weights([1, 0])  # takes effect now, recorded for the next epoch
    s.assign(10, epoch=1)
    rows = s.allocation()
    assert [r["epoch"] for r in rows] == [0, 1]
    assert rows[0]["images"] == [10, 10] and rows[0]["weights"] == [0.5, 0.5]
    assert rows[1]["images"] == [10, 0] and rows[1]["weights"] == [1.0, 0.0]


def test_state_roundtrip_with_weights_only_load():
    s = DifficultySampler(5, seed=7)
    s.set_weights(inverse_psnr_weights([30, 28, 25, 22, 20]))
    s.fixed = {"severity": 5.0, "centered": True}
    for _ in range(3):
        s.assign(16, epoch=0)
    buf = io.BytesIO()
    torch.save(s.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    r = DifficultySampler(5, seed=999)
    r.load_state_dict(state)
    assert torch.equal(r.weights, s.weights) and r.fixed == s.fixed and r.steps == 3
    assert torch.equal(r.assign(16, epoch=0), s.assign(16, epoch=0))  # same generator state
    assert r.allocation() == s.allocation()
    with pytest.raises(ConfigError, match="same task"):
        DifficultySampler(3).load_state_dict(state)


def _fake_trainer(sampler, metrics, sanity=False):
    dm = SimpleNamespace(sampler=sampler)
    return SimpleNamespace(datamodule=dm, callback_metrics=metrics, sanity_checking=sanity)


def test_ondemand_policy_applies_eq3_after_validation():
    sampler = DifficultySampler(3)
    metrics = {
        f"val/psnr/level_{i}": torch.tensor(p) for i, p in enumerate([20.0, 25.0, 40.0], start=1)
    }
    policy = OnDemandPolicy()
    policy.setup(_fake_trainer(sampler, metrics), None, "fit")
    assert sorted(sampler.counts(100).tolist()) == [33, 33, 34]  # equal weights at the start
    policy.on_validation_end(_fake_trainer(sampler, metrics, sanity=True), None)
    assert sampler.weights.tolist() == pytest.approx([1 / 3] * 3)  # sanity check ignored
    policy.on_validation_end(_fake_trainer(sampler, metrics), None)
    assert sampler.counts(100).tolist() == [43, 35, 22]


def test_ondemand_policy_needs_every_level():
    sampler = DifficultySampler(3)
    metrics = {"val/psnr/level_1": torch.tensor(20.0)}
    with pytest.raises(ConfigError, match="level_2"):
        OnDemandPolicy().on_validation_end(_fake_trainer(sampler, metrics), None)


def test_fixed_weights_policy_default_is_rigid_joint():
    sampler = DifficultySampler(5)
    sampler.set_weights([1, 0, 0, 0, 0])
    FixedWeightsPolicy().setup(_fake_trainer(sampler, {}), None, "fit")
    assert sampler.counts(100).tolist() == [20] * 5
    FixedWeightsPolicy([0, 0, 1, 0, 0]).setup(_fake_trainer(sampler, {}), None, "fit")
    assert sampler.counts(100).tolist() == [0, 0, 100, 0, 0]
