"""DL-Net's likelihood recursion: the inner loop against a hand-written Adam (numpy) on a
tiny linear backbone, K=1 is the backbone, gradients reach g through the loop, evaluation
runs the same loop with gradients on z only, the forward model is the degradation's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from torch import nn

from lightrestore.build import build
from lightrestore.data.batch import RestorationBatch
from lightrestore.degradations import Inpaint, Interpolate
from lightrestore.errors import ConfigError
from lightrestore.losses.pixel import PixelLoss
from lightrestore.methods.dlnet import DLNet


class LinearSplit(nn.Module):
    """``z = A x`` (1x1 conv, C -> D), ``h(z, x) = W z`` (1x1 conv, D -> C): linear, no bias."""

    def __init__(self, c: int = 3, d: int = 4) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.g = nn.Conv2d(c, d, 1, bias=False)
        self.h = nn.Conv2d(d, c, 1, bias=False)
        with torch.no_grad():
            self.g.weight.copy_(torch.randn(d, c, 1, 1, generator=g) * 0.5)
            self.h.weight.copy_(torch.randn(c, d, 1, 1, generator=g) * 0.5)

    def features(self, x):
        return self.g(x)

    def head(self, z, x):
        return self.h(z)

    def forward(self, x):
        return self.head(self.features(x), x)


def _method(k: int, gamma: float = 1e-2, model: nn.Module | None = None, deg=None) -> DLNet:
    deg = deg or Inpaint()
    return DLNet(model or LinearSplit(), PixelLoss("l2"), optimizer=torch.optim.SGD, k=k,
                 gamma=gamma, degradation=deg)  # fmt: skip


def _batch(deg, n: int = 2, size: int = 16, seed: int = 0) -> RestorationBatch:
    g = torch.Generator().manual_seed(seed)
    clean = torch.rand(n, 3, size, size, generator=g)
    levels = torch.full((n,), 2, dtype=torch.long)
    params = deg.sample(levels, clean.shape[1:], g)
    return RestorationBatch(clean, deg.apply(clean, params), levels, params)


def _numpy_dlnet(a: np.ndarray, w: np.ndarray, y: np.ndarray, mask: np.ndarray, k: int, gamma: float) -> np.ndarray:
    """Independent reference: z = A y; K-1 Adam steps on sum(mask*(W z - y))^2; W z."""
    z = np.einsum("dc,bchw->bdhw", a, y)
    m, v = np.zeros_like(z), np.zeros_like(z)
    for t in range(1, k):
        r = mask * (np.einsum("cd,bdhw->bchw", w, z) - y)
        grad = 2.0 * np.einsum("cd,bchw->bdhw", w, mask * r)
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad**2
        m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
        z = z - gamma * m_hat / np.sqrt(np.maximum(v_hat, 1e-16))  # eps inside the max
    return np.einsum("cd,bdhw->bchw", w, z)


@pytest.mark.parametrize("k", [2, 5])
def test_inner_loop_matches_a_hand_written_adam(k):
    method = _method(k).double()
    batch = _batch(method.degradation)
    batch = RestorationBatch(batch.clean.double(), batch.degraded.double(), batch.level, batch.params)
    method.eval()
    with torch.no_grad():  # as Lightning's validation: the method enables gradients on z itself
        got = method.restore(batch).numpy()
    mask = method.degradation.observed_mask(batch.params, batch.clean.shape, torch.float64).numpy()
    a = method.model.g.weight.detach()[:, :, 0, 0].double().numpy()
    w = method.model.h.weight.detach()[:, :, 0, 0].double().numpy()
    want = _numpy_dlnet(a, w, batch.degraded.numpy(), mask, k, 1e-2)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert not np.allclose(got, method.model(batch.degraded).detach().numpy())  # the loop moved z


def test_k1_is_the_backbone_and_training_matches_evaluation():
    model = LinearSplit()
    batch = _batch(Inpaint())
    one = _method(1, model=model)
    assert torch.equal(one.restore(batch), model(batch.degraded))
    five = _method(5, model=model)
    five.train()
    trained = five.restore(batch)
    five.eval()
    with torch.no_grad():
        evaluated = five.restore(batch)
    torch.testing.assert_close(trained.detach(), evaluated)  # the same loop, no graph kept
    assert not evaluated.requires_grad


def test_gradients_reach_g_through_the_inner_loop():
    batch = _batch(Inpaint())
    grads = {}
    for k in (1, 4):
        method = _method(k, gamma=0.05)
        method.train()
        method.loss(method.restore(batch), batch.clean).backward()
        grads[k] = method.model.g.weight.grad.clone()
        assert grads[k].abs().sum() > 0
    assert not torch.allclose(grads[1], grads[4])  # the loop's steps are differentiated


def test_the_inner_loop_lowers_the_likelihood_of_a_trained_size_model(tmp_path):
    objs = build(compose_cfg(tmp_path, "experiment=dlnet_inpaint"))
    method, dm = objs["method"], objs["datamodule"]
    dm.setup("fit")
    batch = dm.val_set.batch(torch.arange(len(dm.val_set)))
    method.eval()
    liks = []
    for k in (1, 3, 5):
        method.k, method.gamma = k, 1e-2
        with torch.no_grad():
            liks.append(float(method.likelihood(method.restore(batch), batch).mean()))
    assert liks[0] > liks[1] > liks[2]


@pytest.mark.parametrize("deg", [Inpaint(), Interpolate()], ids=["inpaint", "interp"])
def test_forward_model_is_the_degradation_on_the_observed_pixels(deg):
    batch = _batch(deg)
    observed = deg.observed_mask(batch.params, batch.clean.shape)
    wx = deg.operator(batch.clean, batch.params)
    assert torch.equal(wx * observed, batch.degraded * observed)  # noiseless output
    assert torch.equal(wx * (1 - observed), torch.zeros_like(wx))  # missing pixels: nothing
    # so the clean image has zero data likelihood, the degraded input's fill does not
    method = _method(3, deg=deg)
    assert torch.equal(method.likelihood(batch.clean, batch), torch.zeros(len(batch)))


def test_configs_and_the_builder(tmp_path):
    objs = build(compose_cfg(tmp_path, "experiment=dlnet_interp"))
    method = objs["method"]
    assert isinstance(method, DLNet) and (method.k, method.gamma) == (5, 1e-2)
    assert method.degradation is objs["degradation"]
    assert objs["trainer"].test_loop.inference_mode is False  # gradients on z at evaluation
    with pytest.raises(ConfigError, match="split into features"):
        DLNet(nn.Conv2d(3, 3, 1), PixelLoss(), optimizer=torch.optim.SGD)


def test_in_place_adam_equals_the_differentiable_step():
    from lightrestore.methods.dlnet import adam_step, adam_step_

    g = torch.Generator().manual_seed(3)
    z, m, v = (torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64) for _ in range(3))
    v = v.abs()
    for t in (1, 4):
        grad = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)
        ref = adam_step(z, grad, m, v, t, 1e-2)
        z2, m2, v2 = z.clone(), m.clone(), v.clone()
        adam_step_(z2, grad, m2, v2, t, 1e-2)
        for a, b in zip(ref, (z2, m2, v2)):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-15)
        z, m, v = ref
