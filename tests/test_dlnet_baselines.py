"""DL-Net's baselines: the naive likelihood (L_rec + lam * L_lik, L_lik against a numpy hand
computation on a hand-made inpainting batch) and multi-task learning with learned
uncertainty weights (sub-task bins, the loss and its gradients by hand); both train from
their real configs and run end to end from the command line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from hydra.utils import instantiate
from torch import nn

from lightrestore.build import build_method
from lightrestore.data.batch import RestorationBatch
from lightrestore.degradations import Inpaint
from lightrestore.errors import ConfigError
from lightrestore.losses.pixel import PixelLoss
from lightrestore.methods.multitask import LogVariances, MultitaskUncertainty
from lightrestore.methods.naive_likelihood import NaiveLikelihood

# training_step outside a Trainer: self.log warns and does nothing
NO_TRAINER = pytest.mark.filterwarnings("ignore:.*self.log.*:UserWarning")


def _conv() -> nn.Module:
    g = torch.Generator().manual_seed(0)
    net = nn.Conv2d(3, 3, 3, padding=1)
    with torch.no_grad():
        net.weight.copy_(torch.randn(net.weight.shape, generator=g) * 0.2)
        net.bias.zero_()
    return net


# ---------------------------------------------------------------- naive likelihood
SIDES, TOPS, LEFTS = [3, 5], [1, 2], [2, 0]


def _inpaint_batch(size: int = 8) -> tuple[RestorationBatch, np.ndarray]:
    """Two images with known holes (fill 0.5); returns the batch and the hand-made numpy
    observed mask ``(B, 1, H, W)``."""
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(2, 3, size, size, generator=g, dtype=torch.float64)
    params = {"severity": torch.tensor(SIDES, dtype=torch.float32),
              "top": torch.tensor(TOPS), "left": torch.tensor(LEFTS)}  # fmt: skip
    deg = Inpaint(fill=0.5)
    mask = np.ones((2, 1, size, size))
    for b, (s, t, l) in enumerate(zip(SIDES, TOPS, LEFTS)):
        mask[b, :, t : t + s, l : l + s] = 0.0
    degraded = deg.apply(clean, params)
    assert np.allclose(degraded.numpy()[np.broadcast_to(mask, clean.shape) == 0], 0.5)
    return RestorationBatch(clean, degraded, torch.ones(2, dtype=torch.long), params), mask


def _naive(lam: float, model: nn.Module | None = None) -> NaiveLikelihood:
    return NaiveLikelihood(model or _conv(), PixelLoss("l2"), optimizer=torch.optim.Adam,
                           lam=lam, degradation=Inpaint(fill=0.5))  # fmt: skip


def _numpy_lik(pred: np.ndarray, y: np.ndarray, mask: np.ndarray) -> float:
    """mean_b 1/2 sum_observed (pred - y)^2 / (observed pixels x channels)."""
    per = [0.5 * np.sum(mask[b] * (pred[b] - y[b]) ** 2) / (mask[b].sum() * pred.shape[1])
           for b in range(len(pred))]  # fmt: skip
    return float(np.mean(per))


def test_naive_likelihood_term_matches_a_hand_computation():
    batch, mask = _inpaint_batch()
    method = _naive(1e3)
    pred = torch.rand(
        batch.clean.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    got = float(method.likelihood_loss(pred, batch))
    want = _numpy_lik(pred.numpy(), batch.degraded.numpy(), mask)
    assert got == pytest.approx(want, rel=1e-12)
    # the counts differ per sample (64 - 9 and 64 - 25 observed pixels): not one global mean
    assert want != pytest.approx(
        0.5 * np.sum(mask * (pred.numpy() - batch.degraded.numpy()) ** 2) / (mask.sum() * 3)
    )


def test_missing_pixels_do_not_change_the_likelihood():
    batch, mask = _inpaint_batch()
    method = _naive(1e3)
    pred = batch.clean.clone()
    base = float(method.likelihood_loss(pred, batch))
    assert base == pytest.approx(0.0, abs=1e-15)  # the clean image explains the observed pixels
    hole = torch.from_numpy(1.0 - mask).expand_as(pred)
    changed = pred + 0.7 * hole  # only the hole's pixels change
    assert float(method.likelihood_loss(changed, batch)) == pytest.approx(base, abs=1e-15)
    outside = pred + 0.1 * (1.0 - hole)  # an observed pixel changes: the likelihood does
    assert float(method.likelihood_loss(outside, batch)) == pytest.approx(0.5 * 0.01, rel=1e-9)


@NO_TRAINER
def test_training_loss_is_reconstruction_plus_lambda_likelihood():
    batch, mask = _inpaint_batch()
    batch = RestorationBatch(batch.clean.float(), batch.degraded.float(), batch.level, batch.params)
    model = _conv()
    with torch.no_grad():
        pred = model(batch.degraded)
    mse = float(torch.mean((pred - batch.clean) ** 2))
    lik = _numpy_lik(pred.double().numpy(), batch.degraded.double().numpy(), mask)
    zero = _naive(0.0, model).training_step(batch, 0)
    assert float(zero.detach()) == pytest.approx(mse, rel=1e-6)  # lam = 0: plain MSE training
    total = _naive(250.0, model).training_step(batch, 0)
    assert total.item() == pytest.approx(mse + 250.0 * lik, rel=1e-5)
    total.backward()
    assert model.weight.grad is not None and model.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("lam", [-1.0, float("nan"), float("inf"), "1e3", True])
def test_naive_likelihood_rejects_bad_lambdas(lam):
    with pytest.raises(ConfigError, match="lam"):
        _naive(lam)


# ---------------------------------------------------------------- multi-task
def _mtl(
    n_tasks: int = 30, severity_range=(0.5, 30.5), model: nn.Module | None = None
) -> MultitaskUncertainty:
    return MultitaskUncertainty(model or _conv(), PixelLoss("l2"), optimizer=torch.optim.Adam,
                                n_tasks=n_tasks, severity_range=severity_range,
                                degradation=Inpaint())  # fmt: skip


def test_task_index_bins_the_severity():
    inpaint = _mtl(30, [0.5, 30.5])
    sides = torch.tensor([1.0, 15.0, 30.0, 36.0, 0.0])  # 36 (extra level) and 0: clamped
    assert inpaint.task_index(sides).tolist() == [0, 14, 29, 29, 0]
    assert inpaint.task_index(torch.arange(1.0, 31.0)).tolist() == list(range(30))  # side s -> s-1
    interp = _mtl(30, [0.0, 0.75])
    rates = torch.tensor([0.0, 0.024, 0.026, 0.749, 0.05, 0.8])
    assert interp.task_index(rates).tolist() == [0, 0, 1, 29, 2, 29]
    # the bin edges (2.5 % steps, float32 rates) go to the upper bin
    edges = torch.arange(30, dtype=torch.float64).mul(0.025).float()
    assert interp.task_index(edges).tolist() == list(range(30))


def test_uncertainty_loss_and_its_gradients_by_hand():
    method = _mtl(4, [0.0, 4.0])
    s = [0.3, -0.7, 0.5, -0.2]
    with torch.no_grad():
        method.task_weights.log_var.copy_(torch.tensor(s))
    index = method.task_index(torch.tensor([0.5, 0.7, 2.2, 3.9, 2.5]))
    assert index.tolist() == [0, 0, 2, 3, 2]  # sub-task 1 is absent
    per = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], requires_grad=True)
    loss = method.uncertainty_loss(per, index)
    means = {0: 1.5, 2: 4.0, 3: 4.0}
    want = sum(math.exp(-s[i]) * m + s[i] for i, m in means.items())
    assert loss.item() == pytest.approx(want, rel=1e-6)
    loss.backward()
    grad_s = method.task_weights.log_var.grad.tolist()
    for i in range(4):  # d/ds_i = 1 - exp(-s_i) L_i for present sub-tasks, 0 for absent ones
        assert grad_s[i] == pytest.approx(
            1 - math.exp(-s[i]) * means[i] if i in means else 0.0, abs=1e-6
        )
    assert grad_s[1] == 0.0
    counts = {0: 2, 2: 2, 3: 1}  # d/dper_b = exp(-s_i) / n_i
    want_per = [math.exp(-s[i]) / counts[i] for i in index.tolist()]
    np.testing.assert_allclose(per.grad.numpy(), want_per, rtol=1e-6)
    # the absent sub-task's s does not enter the loss
    with torch.no_grad():
        method.task_weights.log_var[1] = 5.0
    assert method.uncertainty_loss(per, index).item() == pytest.approx(want, rel=1e-6)


@NO_TRAINER
def test_training_step_weights_the_configured_per_sample_loss():
    method = _mtl(30, [0.5, 30.5])
    g = torch.Generator().manual_seed(3)
    deg = method.degradation
    clean = torch.rand(6, 3, 16, 16, generator=g)
    params = deg.sample(torch.tensor([1, 1, 2, 3, 5, 5]), clean.shape[1:], g)
    batch = RestorationBatch(
        clean, deg.apply(clean, params), torch.ones(6, dtype=torch.long), params
    )
    with torch.no_grad():
        method.task_weights.log_var.copy_(torch.linspace(-1.0, 1.0, 30))
    loss = method.training_step(batch, 0)
    with torch.no_grad():
        per = ((method.model(batch.degraded) - clean) ** 2).flatten(1).mean(1)
    s = method.task_weights.log_var.detach()
    idx = (params["severity"].long() - 1).tolist()
    want = sum(math.exp(-float(s[i])) * float(per[[j for j, k in enumerate(idx) if k == i]].mean())
               + float(s[i]) for i in set(idx))  # fmt: skip
    assert loss.item() == pytest.approx(want, rel=1e-5)
    loss.backward()
    grad = method.task_weights.log_var.grad
    assert (grad[sorted(set(idx))] != 0).all()
    assert (grad[[i for i in range(30) if i not in idx]] == 0).all()
    assert method.model.weight.grad.abs().sum() > 0


def test_the_model_stays_the_first_network_and_weights_are_readable():
    method = _mtl(3, [0.0, 3.0])
    assert list(method.networks()) == ["model", "task_weights"]
    assert isinstance(method.task_weights, LogVariances)
    assert "task_weights.log_var" in method.state_dict()  # saved in checkpoints
    assert method.task_weight_values == [1.0, 1.0, 1.0]  # s = 0 at the start
    with torch.no_grad():
        method.task_weights.log_var.copy_(torch.tensor([0.0, math.log(2.0), -1.0]))
    assert method.task_weight_values == pytest.approx([1.0, 0.5, math.e])
    x = torch.rand(1, 3, 8, 8)
    assert torch.equal(method.restore(RestorationBatch.of_degraded(x)), method.model(x))


@pytest.mark.parametrize(
    "kwargs",
    [{"n_tasks": 0}, {"n_tasks": 2.5}, {"n_tasks": True}, {"severity_range": [1.0, 1.0]},
     {"severity_range": [2.0, 1.0]}, {"severity_range": [0.0]}, {"severity_range": "ab"},
     {"severity_range": [0.0, float("inf")]}],
)  # fmt: skip
def test_multitask_rejects_bad_arguments(kwargs):
    args = {"n_tasks": 30, "severity_range": [0.5, 30.5], **kwargs}
    with pytest.raises(ConfigError, match="multitask_uncertainty"):
        _mtl(**args)


def test_multitask_needs_a_per_sample_loss():
    with pytest.raises(ConfigError, match="per-sample"):
        MultitaskUncertainty(_conv(), nn.MSELoss(), optimizer=torch.optim.Adam)


# ---------------------------------------------------------------- training from the configs
def _optimizer(method):
    opt = method.configure_optimizers()
    return opt["optimizer"] if isinstance(opt, dict) else opt


@NO_TRAINER
@pytest.mark.parametrize("name", ["naive_likelihood", "multitask_uncertainty"])
def test_each_baseline_trains_from_its_config(tmp_path, name):
    torch.manual_seed(0)
    cfg = compose_cfg(tmp_path, "experiment=dlnet_inpaint", f"method={name}")
    method = build_method(cfg)
    assert method.method_name == name
    dm = instantiate(cfg.data, degradation=method.degradation)
    dm.setup("fit")
    batch = dm.val_set.batch(torch.arange(0, len(dm.val_set), 2))  # 2 images per level
    opt = _optimizer(method)
    params = {id(p) for g in opt.param_groups for p in g["params"]}
    assert {id(p) for p in method.parameters() if p.requires_grad} == params  # s included
    method.train()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = method.training_step(batch, 0)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0]
    if name == "multitask_uncertainty":  # the weights moved from 1, only for present sub-tasks
        present = set(method.task_index(batch.params["severity"]).tolist())
        moved = {i for i, w in enumerate(method.task_weight_values) if w != 1.0}
        assert moved == present and len(present) > 1
    else:
        assert method.lam == 1e3


# ---------------------------------------------------------------- command line
