"""LIRA's methods: the EWC Fisher and penalty against hand computations, the replay GAN's
steps, the incremental stage's phases, learning rates and its refusal of old-task data,
PNN's untouched old column, the fork's routing."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError, DataError
from lightrestore.losses.ewc import FisherDiagonal
from lightrestore.losses.pixel import PixelLoss
from lightrestore.methods.lira_fork import LiraFork
from lightrestore.methods.lira_incremental import LiraIncremental
from lightrestore.methods.lira_replay import LiraReplayGAN
from lightrestore.models.cyclegan import PatchDiscriminator, ResnetGenerator
from lightrestore.models.lira import LiraBaseNet, LiraExpandedNet, LiraForkNet

pytestmark = pytest.mark.usefixtures("one_thread")


def adam(lr=1e-4):
    return lambda params: torch.optim.Adam(params, lr=lr)


# ---------------------------------------------------------------------------- EWC
class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.part = nn.Linear(2, 1, bias=False)
        self.other = nn.Linear(1, 1, bias=False)

    def forward(self, x):
        return self.other(self.part(x))


def test_fisher_matches_a_hand_computation():
    torch.manual_seed(0)
    net = Tiny()
    with torch.no_grad():
        net.part.weight.copy_(torch.tensor([[0.5, -1.0]]))
        net.other.weight.fill_(2.0)
    x = torch.tensor([[1.0, 2.0], [3.0, -1.0], [0.0, 4.0]])
    y = torch.tensor([[1.0], [0.0], [-2.0]])
    fisher = FisherDiagonal(net, "part")
    fisher.accumulate(net, x, y)
    # l_s = 1/2 (2 (w . x_s) - y_s)^2: dl/dw = (2 w.x_s - y_s) * 2 x_s
    w = torch.tensor([0.5, -1.0])
    expected = torch.stack([((2 * (w @ xs) - ys) * 2 * xs) ** 2 for xs, ys in zip(x, y[:, 0])])
    got = fisher.fisher()["weight"]
    torch.testing.assert_close(got, expected.mean(0, keepdim=True))
    assert int(fisher.samples) == 3
    assert net.part.weight.grad is None  # the network's own gradients untouched


def test_ewc_penalty_is_zero_at_the_old_weights_and_quadratic_away():
    net, old = Tiny(), Tiny()
    old.load_state_dict(net.state_dict())
    fisher = FisherDiagonal(net, "part")
    fisher.accumulate(net, torch.randn(4, 2), torch.randn(4, 1))
    assert fisher.penalty(net.part, old.part).item() == 0.0
    with torch.no_grad():
        net.part.weight.add_(torch.tensor([[0.1, -0.2]]))
    f = fisher.fisher()["weight"]
    expected = 0.5 * (f * torch.tensor([[0.1, -0.2]]) ** 2).sum()
    torch.testing.assert_close(fisher.penalty(net.part, old.part), expected)
    fisher.penalty(net.part, old.part).backward()  # differentiable in the current weights
    assert net.part.weight.grad is not None


# ---------------------------------------------------------------------------- networks
W, BLOCKS = 8, 2


def base_net():
    return LiraBaseNet(channels=3, width=W, experts=3, blocks=BLOCKS)


def batch(n=4, size=16, new_task=1.0, factor=None):
    clean = torch.rand(n, 3, size, size)
    degraded = (clean + 0.1 * torch.randn_like(clean)).clamp(0, 1)
    params = {"new_task": torch.full((n,), float(new_task))}
    if factor is not None:
        params["factor"] = factor
    return RestorationBatch(clean, degraded, torch.full((n,), 2, dtype=torch.long), params)


def incremental(replay="gan", frozen=("teacher", "generator"), warmup=0, **kw):
    torch.manual_seed(0)
    base, teacher = base_net(), base_net()
    teacher.load_state_dict(base.state_dict())
    return LiraIncremental(
        base=base, expanded=LiraExpandedNet(channels=3, width=W, blocks=BLOCKS),
        teacher=teacher, generator=ResnetGenerator(channels=3, width=4, blocks=1),
        loss=PixelLoss("l1"), optimizer=adam(), replay=replay, warmup_epochs=warmup,
        frozen=list(frozen), n_val_levels=3, n_test_levels=3, **kw,
    )  # fmt: skip


def _train_steps(method, batches, epoch=0):
    """Run training steps by hand (no Trainer): the phase of ``epoch``, one optimiser."""
    method.setup("fit")
    opt = method.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    method.log = lambda *a, **k: None  # no Trainer to log to
    method.log_train_loss = lambda *a, **k: None
    type(method).current_epoch = property(lambda self: epoch)
    try:
        method._set_phase()
        method.train()
        for b in batches:
            opt.zero_grad()
            method.training_step(b, 0).backward()
            opt.step()
    finally:
        del type(method).current_epoch


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_parameter_groups_carry_the_configured_learning_rates():
    method = incremental(param_groups={"base": {"lr": 1e-7}})
    method.setup("fit")
    opt = method.configure_optimizers()
    opt = opt["optimizer"] if isinstance(opt, dict) else opt
    by_lr = {g["lr"]: {id(p) for p in g["params"]} for g in opt.param_groups}
    assert set(by_lr) == {1e-7, 1e-4}
    assert by_lr[1e-7] == {id(p) for p in method.base.parameters()}
    assert by_lr[1e-4] == {id(p) for p in method.expanded.parameters()}
    frozen = {id(p) for n in ("teacher", "generator") for p in getattr(method, n).parameters()}
    assert not frozen & (by_lr[1e-7] | by_lr[1e-4])


def test_incremental_refuses_old_task_training_data():
    method = incremental()
    method.log = lambda *a, **k: None
    mixed = batch()
    mixed.params["new_task"][1] = 0.0
    with pytest.raises(DataError, match="never read the old task"):
        method.training_step(mixed, 0)
    with pytest.raises(DataError, match="new_task"):
        method.training_step(RestorationBatch(mixed.clean, mixed.degraded, mixed.level, {}), 0)


def test_warm_up_trains_the_new_branch_only_then_everything():
    method = incremental(warmup=1, param_groups={"base": {"lr": 1e-3}})
    base0, exp0 = _state(method.base), _state(method.expanded)
    _train_steps(method, [batch() for _ in range(2)], epoch=0)
    assert all(torch.equal(v, method.base.state_dict()[k]) for k, v in base0.items())
    assert any(not torch.equal(v, method.expanded.state_dict()[k]) for k, v in exp0.items())
    _train_steps(method, [batch() for _ in range(2)], epoch=1)  # after the warm-up
    assert any(not torch.equal(v, method.base.state_dict()[k]) for k, v in base0.items())


@pytest.mark.parametrize("replay", ["gan", "lwf", "real"])
def test_the_old_task_term_trains_the_base_network(replay):
    method = incremental(replay=replay, param_groups={"base": {"lr": 1e-3}})
    with torch.no_grad():  # R~ = R at the start makes L_old 0 with a zero L1 gradient
        for p in method.base.decoder.parameters():
            p.add_(0.01 * torch.randn_like(p))
    base0 = _state(method.base)
    b = batch()
    if replay == "real":
        b.params["new_task"][:2] = 0.0  # joint learning: real old samples in the batch
    _train_steps(method, [b], epoch=0)
    changed = [k for k, v in base0.items() if not torch.equal(v, method.base.state_dict()[k])]
    # the base network's own decoder only learns from L_old
    assert any(k.startswith("decoder.") for k in changed)


def test_teacher_and_generator_stay_fixed_and_must_be_frozen():
    method = incremental(param_groups={"base": {"lr": 1e-3}})
    t0, g0 = _state(method.teacher), _state(method.generator)
    _train_steps(method, [batch()], epoch=0)
    assert all(torch.equal(v, method.teacher.state_dict()[k]) for k, v in t0.items())
    assert all(torch.equal(v, method.generator.state_dict()[k]) for k, v in g0.items())
    with pytest.raises(ConfigError, match="teacher"):
        incremental(frozen=["generator"])


def test_pnn_leaves_the_old_column_bit_identical():
    method = incremental(replay="none", frozen=("base", "teacher", "generator"))
    base0, exp0 = _state(method.base), _state(method.expanded)
    x = batch().degraded
    with torch.no_grad():
        before = method.base(x)
    _train_steps(method, [batch() for _ in range(3)], epoch=3)
    assert all(torch.equal(v, method.base.state_dict()[k]) for k, v in base0.items())
    assert any(not torch.equal(v, method.expanded.state_dict()[k]) for k, v in exp0.items())
    with torch.no_grad():
        assert torch.equal(method.base(x), before)


def test_ewc_needs_the_fisher():
    method = incremental(replay="none", ewc_weight=1.0)
    with pytest.raises(ConfigError, match="Fisher"):
        method.on_train_start()


def test_incremental_outputs():
    method = incremental().eval()
    b = batch()
    with torch.no_grad():
        out = method.outputs(b)
    assert set(out) == {"restored", "input", "old_task", "new_task"}
    assert torch.equal(out["restored"], out["new_task"]) and out["old_task"].shape == b.clean.shape
    with torch.no_grad():
        assert torch.equal(out["old_task"], method.base(b.degraded))


# ---------------------------------------------------------------------------- replay GAN
def test_replay_gan_steps_both_networks_and_keeps_the_base_fixed():
    from lightning.pytorch import Trainer

    torch.manual_seed(0)
    method = LiraReplayGAN(
        generator=ResnetGenerator(channels=3, width=4, blocks=1),
        discriminator=PatchDiscriminator(channels=3, width=4, layers=2),
        base_net=base_net(), optimizer={"generator": adam(2e-4), "discriminator": adam(2e-4)},
        frozen=["base_net"], fisher_samples=6, n_val_levels=3, n_test_levels=3,
    )  # fmt: skip
    nets = {n: _state(getattr(method, n)) for n in ("generator", "discriminator", "base_net")}
    data = [batch(n=4) for _ in range(3)]

    loader = torch.utils.data.DataLoader(data, batch_size=None, collate_fn=lambda b: b)
    trainer = Trainer(max_steps=3, logger=False, enable_checkpointing=False, accelerator="cpu",
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)  # fmt: skip
    trainer.fit(method, train_dataloaders=loader)
    for name in ("generator", "discriminator"):
        assert any(
            not torch.equal(v, getattr(method, name).state_dict()[k]) for k, v in nets[name].items()
        )
    assert all(torch.equal(v, method.base_net.state_dict()[k]) for k, v in nets["base_net"].items())
    assert int(method.ewc_fisher.samples) == 6  # the Fisher's samples, then no more
    assert all((f >= 0).all() for f in method.ewc_fisher.fisher().values())
    assert any((f > 0).any() for f in method.ewc_fisher.fisher().values())
    with pytest.raises(ConfigError, match="base_net"):
        LiraReplayGAN(generator=nn.Identity(), discriminator=nn.Identity(), base_net=base_net(),
                      optimizer={}, frozen=[])  # fmt: skip


# ---------------------------------------------------------------------------- fork
def test_fork_routes_by_factor_and_needs_it():
    method = LiraFork(model=LiraForkNet(channels=3, width=W, experts=3, blocks=BLOCKS),
                      loss=PixelLoss("l1"), optimizer=adam(), n_val_levels=3, n_test_levels=3)  # fmt: skip
    b = batch(factor=torch.tensor([0, 1, 2, 1]))
    with torch.no_grad():
        out = method.restore(b)
        assert torch.equal(out, method.model(b.degraded, b.params["factor"]))
    with pytest.raises(ConfigError, match="blended_single"):
        method.restore(batch())


def test_ddp_looks_for_unused_parameters():
    """The warm-up, the modes without an old-task term and the fork's experts without an
    image in a batch leave parameters without a gradient: DDP must be told."""
    from omegaconf import OmegaConf

    from lightrestore.build import trainer_options

    cfg = OmegaConf.create({"trainer": {"strategy": "ddp"}})
    fork = LiraFork(model=LiraForkNet(channels=3, width=W, experts=3, blocks=BLOCKS),
                    loss=PixelLoss("l1"), optimizer=adam())  # fmt: skip
    for method in (incremental(), fork):
        assert trainer_options(cfg, method)["strategy"] == "ddp_find_unused_parameters_true"
