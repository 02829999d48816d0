"""The Golf Optimizer: its networks reproduce the paper's Table 1 parameter counts row by
row; phase f trains F alone, phase g trains G through T unrolled steps (every step
supervised) with F bit-identical; the named outputs, restore, the config checks, and the
two phases chained on the command line."""

from __future__ import annotations

import warnings
from functools import partial
from pathlib import Path

import pytest
import torch
from helpers import compose_cfg

from lightrestore.build import build
from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.losses.pixel import PixelLoss
from lightrestore.methods.golf import Golf
from lightrestore.models.golf import PAPER_TABLE, GolfNet, golf_f, golf_g, parameter_table
from lightrestore.models.split import check_split

# small tensors: one intra-op thread (threads only add overhead, more so on a busy machine)
pytestmark = pytest.mark.usefixtures("one_thread")

# a fit of 3 batches of 4 16x16 crops, one validation image per level, narrow networks
FIT = ("method=golf", "task=deblur", "trainer.max_epochs=1", "data.crop_size=16", "data.batch_size=4",
       "data.train_samples_per_epoch=12", "data.val_per_level=1", "trainer.num_sanity_val_steps=0",
       "method.f_net.width=8", "method.g_net.width=4")  # fmt: skip
PHASE_G = ("method.phase=g", "method.frozen=[f_net]")


# ---------------------------------------------------------------------- the networks
def test_parameter_counts_equal_the_papers_table_1_row_by_row():
    g, f = golf_g().row_counts(), golf_f().row_counts()
    for row, paper_g, paper_f in PAPER_TABLE:
        assert (g[row], f[row]) == (paper_g, paper_f), row
    assert (g["total"], f["total"]) == (120_188, 466_348)
    assert golf_g().n_layers() == golf_f().n_layers() == 50
    assert round((g["total"] + f["total"]) * 4 / 2**20, 2) == 2.24  # the paper's "2.24 MB"
    assert (golf_g().width, golf_f().width) == (16, 32)
    # no conv has a bias; every row is there in the printed table
    convs = [m for m in golf_f().modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.bias is None and c.stride == (1, 1) for c in convs)
    table = parameter_table()
    assert (
        "every row matches the paper" in table
        and "| layer4 | 3,347 | 3,347 | 5,779 | 5,779 |" in table
    )


@pytest.mark.parametrize("size", [(16, 16), (13, 17), (1, 5)])
def test_golfnet_keeps_the_shape_of_any_image(size):
    torch.manual_seed(0)
    for net in (golf_g(), golf_f(), GolfNet(channels=1, width=4)):
        x = torch.rand(2, net.channels, *size)
        net.train()
        assert net(x).shape == x.shape
        net.eval()
        with torch.no_grad():
            y = net(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        check_split(net, x)  # forward == head(features(x), x)
    skip = GolfNet(width=4, global_skip=True).eval()
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.allclose(skip(x), x + skip.last(skip.features(x)))


# ---------------------------------------------------------------------- the method
def tiny_golf(phase: str, steps: int = 3) -> Golf:
    torch.manual_seed(0)
    method = Golf(GolfNet(width=4), GolfNet(width=4), PixelLoss(kind="l2"),
                  optimizer=partial(torch.optim.Adam, lr=1e-3), phase=phase, steps=steps,
                  frozen=["g_net" if phase == "f" else "f_net"])  # fmt: skip
    method.setup("fit")  # freezes the other network
    return method


def tiny_batch(size: tuple[int, int] = (16, 16)) -> RestorationBatch:
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(2, 3, *size, generator=g)
    degraded = (clean + 0.1 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    return RestorationBatch(clean=clean, degraded=degraded, level=torch.tensor([1, 2]))


def quiet_step(method: Golf, batch: RestorationBatch) -> torch.Tensor:
    """``training_step`` without a Trainer (Lightning warns that ``self.log`` goes nowhere)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return method.training_step(batch, 0)


def test_phase_g_loss_is_the_mean_of_every_unrolled_steps_loss():
    method, batch = tiny_golf("g"), tiny_batch()
    method.train()
    assert not method.f_net.training and method.g_net.training
    with torch.no_grad():
        x, want = method.f_net(batch.degraded), []
        for _ in range(3):
            x = x + method.g_net(x)
            want.append(((x - batch.clean) ** 2).mean())
    loss = quiet_step(method, batch)
    assert torch.allclose(loss, torch.stack(want).mean(), rtol=1e-5, atol=1e-7)
    assert not torch.allclose(want[0], want[2])  # three different steps, not one repeated


def test_every_unrolled_step_trains_g_and_none_reaches_f():
    method, batch = tiny_golf("g"), tiny_batch()
    method.train()
    losses = method.step_losses(batch)
    assert len(losses) == 3 and all(v.requires_grad for v in losses)
    assert all(not p.requires_grad for p in method.f_net.parameters())
    g_params = list(method.g_net.parameters())
    for k, step_loss in enumerate(losses, start=1):  # each step's loss alone reaches every G layer
        grads = torch.autograd.grad(step_loss, g_params, retain_graph=True)
        assert all(gr is not None and gr.abs().sum() > 0 for gr in grads), k
    # step 2's gradient goes through step 1: it differs from the gradient of G applied once
    # to a detached x_1
    with torch.no_grad():
        x1 = method.f_net(batch.degraded)
        x1 = x1 + method.g_net(x1)
    once = ((x1 + method.g_net(x1) - batch.clean) ** 2).mean()
    g_once = torch.autograd.grad(once, method.g_net.first.weight)[0]
    g_through = torch.autograd.grad(method.step_losses(batch)[1], method.g_net.first.weight)[0]
    assert not torch.allclose(g_once, g_through)


def test_restore_and_outputs_are_f_then_t_steps_of_g():
    batch = tiny_batch((13, 17))
    for steps in (1, 3):
        method = tiny_golf("g", steps).eval()
        with torch.no_grad():
            x = want_f = method.f_net(batch.degraded)
            manual = []
            for _ in range(steps):
                x = x + method.g_net(x)
                manual.append(x)
            got = method.restore(batch)
            out = method.outputs(batch)
        assert torch.equal(got, manual[-1])
        names = ["restored", "input", "after_F", *[f"G_{k}" for k in range(1, steps + 1)]]
        assert list(method.scored_outputs) == names and set(out) == set(names)
        assert all(v.shape == batch.clean.shape for v in out.values())
        assert torch.equal(out["after_F"], want_f) and torch.equal(out["input"], batch.degraded)
        for k, xk in enumerate(manual, start=1):
            assert torch.equal(out[f"G_{k}"], xk)
        assert torch.equal(out["restored"], manual[-1])
    method = tiny_golf("f").eval()  # phase f: F alone
    with torch.no_grad():
        out, want = method.outputs(batch), method.f_net(batch.degraded)
        assert torch.equal(method.restore(batch), want)
    assert method.scored_outputs == ("restored", "input", "after_F") and set(out) == set(
        method.scored_outputs
    )
    assert torch.equal(out["restored"], want) and torch.equal(out["after_F"], want)
    method.train()  # G stays in eval mode (frozen); F's loss on its output
    assert method.f_net.training and not method.g_net.training
    loss = quiet_step(method, batch)
    with torch.no_grad():
        assert torch.allclose(loss, ((method.f_net(batch.degraded) - batch.clean) ** 2).mean())


def _fit(tmp: Path, *overrides: str):
    """Build through Hydra and fit (no test): the method, its state before, the trainer."""
    objs = build(compose_cfg(tmp, *FIT, *overrides))
    method, trainer = objs["method"], objs["trainer"]
    before = {k: v.detach().clone() for k, v in method.state_dict().items()}
    trainer.fit(method, datamodule=objs["datamodule"])
    return method, before, trainer


def _same(method, before, prefix: str) -> list[bool]:
    after = method.state_dict()
    return [torch.equal(after[k], v) for k, v in before.items() if k.startswith(prefix)]


def test_phase_f_trains_f_and_leaves_g_untouched(tmp_path):
    method, before, trainer = _fit(tmp_path)
    assert isinstance(method, Golf) and method.phase == "f" and method.frozen == ["g_net"]
    assert method.optimizer_steps == 3
    assert all(_same(method, before, "g_net."))  # weights and BatchNorm statistics
    assert not all(_same(method, before, "f_net."))
    trained = {id(p) for g in trainer.optimizers[0].param_groups for p in g["params"]}
    assert trained == {id(p) for p in method.f_net.parameters()}
    assert "train/loss_step" in trainer.callback_metrics
    assert not any(k.startswith("train/loss_step_") for k in trainer.callback_metrics)


def test_phase_g_keeps_f_bit_identical_and_trains_g(tmp_path):
    method, before, trainer = _fit(
        tmp_path, *PHASE_G, "optimizer=adam_golf", "scheduler=exponential"
    )
    assert method.phase == "g" and method.frozen == ["f_net"] and method.steps == 3
    assert method.optimizer_steps == 3
    f_keys = [k for k in before if k.startswith("f_net.")]
    assert any("running_mean" in k for k in f_keys) and any(
        "num_batches_tracked" in k for k in f_keys
    )
    assert all(_same(method, before, "f_net."))  # weights and BatchNorm running statistics
    assert not method.f_net.training and all(not p.requires_grad for p in method.f_net.parameters())
    assert not all(_same(method, before, "g_net."))
    g_weights = [k for k in before if k.startswith("g_net.") and k.endswith("weight")]
    assert all(not torch.equal(method.state_dict()[k], before[k]) for k in g_weights)  # every layer
    (opt,) = trainer.optimizers
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {
        id(p) for p in method.g_net.parameters()
    }
    assert opt.param_groups[0]["initial_lr"] == 1e-4 and opt.param_groups[0]["lr"] == pytest.approx(
        0.9e-4
    )
    for k in (1, 2, 3):
        assert f"train/loss_step_{k}" in trainer.callback_metrics
    assert method.test_outputs() == ("restored", "input", "after_F", "G_1", "G_2", "G_3")


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ("method.phase=g",),
            r"method.phase=g trains g_net with f_net frozen.*'method.frozen=\[f_net\]'",
        ),
        (
            ("method.frozen=[f_net]",),
            r"method.phase=f trains f_net with g_net frozen.*'method.frozen=\[g_net\]'",
        ),
        (("method.frozen=[]",), r"set 'method.frozen=\[g_net\]'"),
        (("method.phase=g", "method.frozen=[f_net,g_net]"), r"set 'method.frozen=\[f_net\]'"),
        (("method.phase=h",), "method.phase must be 'f' or 'g'"),
        (("method.steps=0",), "method.steps"),
    ],
)
def test_phase_and_frozen_must_agree(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        build(compose_cfg(tmp_path, "method=golf", "task=deblur", *overrides))
