"""Curricula and hard mining, against hand-worked schedules."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from lightrestore.callbacks.policies import CumulativeCurriculum, HardMiningPolicy, StagedCurriculum
from lightrestore.data.sampler import DifficultySampler
from lightrestore.errors import ConfigError
from lightrestore.losses.hard_mining import HardMiningLoss, set_hard_mining
from lightrestore.losses.pixel import PixelLoss
from lightrestore.methods.restoration import RestorationModule


def _trainer(n=5, max_epochs=10, epoch=0):
    dm = SimpleNamespace(sampler=DifficultySampler(n))
    return SimpleNamespace(datamodule=dm, max_epochs=max_epochs, current_epoch=epoch)


def _schedule(policy, n=5, max_epochs=10, epochs=12):
    t = _trainer(n, max_epochs)
    policy.setup(t, None, "fit")
    out = []
    for e in range(epochs):
        t.current_epoch = e
        policy.on_train_epoch_start(t, None)
        out.append([round(w, 4) for w in t.datamodule.sampler.weights.tolist()])
    return out


def test_staged_easy_to_hard_two_epochs_each():
    # E defaults to max_epochs // N = 10 // 5 = 2
    s = _schedule(StagedCurriculum(), epochs=12)
    onehot = [[1.0 if i == k else 0.0 for i in range(5)] for k in range(5)]
    assert (
        s == [onehot[0]] * 2 + [onehot[1]] * 2 + [onehot[2]] * 2 + [onehot[3]] * 2 + [onehot[4]] * 4
    )


def test_staged_anti_starts_with_the_hardest_level():
    s = _schedule(StagedCurriculum(epochs_per_stage=3, anti=True), epochs=4)
    assert s[0] == [0, 0, 0, 0, 1.0] and s[2] == [0, 0, 0, 0, 1.0] and s[3] == [0, 0, 0, 1.0, 0]


def test_cumulative_adds_one_level_per_stage():
    s = _schedule(CumulativeCurriculum(epochs_per_stage=1), epochs=6)
    assert s[0] == [1.0, 0, 0, 0, 0]
    assert s[1] == [0.5, 0.5, 0, 0, 0]
    assert s[2] == [0.3333, 0.3333, 0.3333, 0, 0]
    assert s[4] == s[5] == [0.2] * 5  # all levels, then kept
    anti = _schedule(CumulativeCurriculum(epochs_per_stage=1, anti=True), epochs=2)
    assert anti[1] == [0, 0, 0, 0.5, 0.5]


def test_curriculum_state_must_match_on_resume():
    p = StagedCurriculum(epochs_per_stage=2)
    p.setup(_trainer(), None, "fit")
    state = p.state_dict()
    q = StagedCurriculum(epochs_per_stage=2)
    q.setup(_trainer(), None, "fit")
    q.load_state_dict(state)  # same settings: fine
    r = StagedCurriculum(epochs_per_stage=3)
    r.setup(_trainer(), None, "fit")
    with pytest.raises(ConfigError, match="epochs_per_stage=2"):
        r.load_state_dict(state)


def _module(fraction=None):
    m = RestorationModule(torch.nn.Identity(), PixelLoss("l2"), optimizer=torch.optim.SGD)
    set_hard_mining(m, fraction)
    return m


def test_hard_mining_backpropagates_only_the_hardest_samples():
    target = torch.zeros(10, 1, 2, 2)
    pred = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 2, 2).clone()
    pred.requires_grad_(True)
    per_sample = pred.detach().square().flatten(1).mean(1)  # 0, 1, 4, ..., 81
    loss = _module(fraction=0.2).loss(pred, target)  # ceil(0.2 * 10) = 2 hardest
    assert float(loss.detach()) == pytest.approx((81 + 64) / 2)
    loss.backward()
    has_grad = (pred.grad.flatten(1).abs().sum(1) > 0).tolist()
    assert has_grad == [False] * 8 + [True] * 2
    assert float(_module(None).loss(pred, target).detach()) == pytest.approx(float(per_sample.mean()))
    assert math.ceil(0.1 * 100) == 10  # the paper's 10 of 100


def test_hard_mining_policy_switches_after_warmup():
    p = HardMiningPolicy(pool_size=10, warmup_epochs=2, fraction=0.1)
    m = _module()
    m.loss = HardMiningLoss(m.loss)  # what the policy's setup does
    for epoch, expected in [(0, None), (1, None), (2, 0.1), (5, 0.1)]:
        p.on_train_epoch_start(SimpleNamespace(current_epoch=epoch), m)
        assert m.loss.fraction == expected
    with pytest.raises(ConfigError):
        HardMiningPolicy(fraction=0)


def test_hard_mining_configs_embedded_scale_and_paper_scale(tmp_path):
    """The defaults are labelled embedded-scale and agree with the policy's own defaults;
    hard_mining_paper has the paper's pool (1M), warm-up (50 epochs) and 10 of 100."""
    import inspect

    from helpers import compose_cfg

    small = compose_cfg(tmp_path, "curriculum=hard_mining").curriculum
    paper = compose_cfg(tmp_path, "curriculum=hard_mining_paper").curriculum
    defaults = {k: v.default for k, v in inspect.signature(HardMiningPolicy).parameters.items()}
    assert {k: small[k] for k in defaults} == defaults
    assert (paper.pool_size, paper.warmup_epochs, paper.fraction) == (1_000_000, 50, 0.1)
    assert paper._target_ == small._target_
