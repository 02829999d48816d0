"""LIRA's networks (lira.txt §3.1-3.2) and CycleGAN's generator/discriminator: shapes of
every block and network, the size check, attention and gate ranges, Bi-SGU against a
hand-computed case, the fork's per-sample routing and its experts loading into the base
network, the expanded network's lateral connection to the old amalgamator, per-sample
gradients with torch.func, and the parameter-count table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lightrestore.models.cyclegan import PatchDiscriminator, ResnetGenerator, init_weights_normal
from lightrestore.models.lira import (
    Amalgamator,
    BiSGU,
    Decoder,
    Expert,
    ExpertAttention,
    FeatureExtractor,
    GateLayer,
    LiraBaseNet,
    LiraExpandedNet,
    LiraForkNet,
    SKBlock,
    SKDuRB,
    count_parameters,
)
from lightrestore.models.lira.__main__ import main

# small tensors: one intra-op thread (threads only add overhead, more so on a busy machine)
pytestmark = pytest.mark.usefixtures("one_thread")

W = 8  # feature width of every test network


def rand(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def perturb(module: nn.Module, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.5 * torch.randn(p.shape, generator=g))


# ---------------------------------------------------------------------- blocks
@pytest.mark.parametrize("dilate", [True, False])
def test_sk_block_keeps_the_shape_and_is_nonnegative(dilate):
    torch.manual_seed(0)
    block = SKBlock(W, kernels=(3, 5), reduction=4, dilate=dilate)
    x = torch.randn(2, W, 8, 12)
    y = block(x)
    assert y.shape == x.shape and (y >= 0).all()
    conv = block.branches[1][0]
    assert (conv.kernel_size, conv.dilation) == (((3, 3), (2, 2)) if dilate else ((5, 5), (1, 1)))


def test_sk_block_with_identical_branches_returns_the_branch():
    # softmax weights over identical branches sum to 1: the selection changes nothing
    torch.manual_seed(0)
    block = SKBlock(W, kernels=(3, 3))
    block.branches[1].load_state_dict(block.branches[0].state_dict())
    x = torch.randn(2, W, 8, 8)
    torch.testing.assert_close(block(x), block.branches[0](x))


def test_sk_durb_follows_the_dual_residual_pattern():
    torch.manual_seed(0)
    block = SKDuRB(W)
    u0, p0 = torch.randn(2, W, 8, 8), torch.randn(2, W, 8, 8)
    u, p = block(u0, p0)
    relu = torch.relu
    r = u0
    t = relu(block.conv2(relu(block.conv1(u0))) + r)
    p_exp = relu(block.t1(t) + p0)
    u_exp = relu(block.t2(p_exp) + r)
    torch.testing.assert_close(p, p_exp)
    torch.testing.assert_close(u, u_exp)
    assert u.shape == p.shape == u0.shape
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in block.modules())


# ---------------------------------------------------------------------- parts
@pytest.mark.parametrize("size", [(32, 32), (48, 64)])
def test_feature_extractor_gives_two_quarter_size_streams(size):
    h, g = FeatureExtractor(3, W)(rand(2, 3, *size))
    assert h.shape == g.shape == (2, W, size[0] // 4, size[1] // 4)
    assert not torch.equal(h, g)


@pytest.mark.parametrize("size", [(30, 32), (32, 34), (29, 31)])
def test_sizes_not_multiple_of_4(size):
    """The extractor refuses them; the networks pad to a multiple of 4 and crop back, so
    restore works on any photo, and a padded image's restoration matches on the inside."""
    with pytest.raises(ValueError, match="multiples of 4"):
        FeatureExtractor(3, W)(rand(1, 3, *size))
    x = rand(1, 3, *size)
    base, fork = LiraBaseNet(3, W, 2, 2), LiraForkNet(3, W, 2, 2)
    expanded = LiraExpandedNet(3, W, 2)
    with torch.no_grad():
        y = base(x)
        assert y.shape == x.shape
        assert fork(x, 1).shape == x.shape and expanded(x, base.amalgamator).shape == x.shape
        h, w = size
        padded = torch.nn.functional.pad(x, (0, (-w) % 4, 0, (-h) % 4), mode="replicate")
        torch.testing.assert_close(base(padded)[..., :h, :w], y)


@pytest.mark.parametrize("blocks", [2, 4])
def test_expert_returns_every_second_blocks_outputs(blocks):
    torch.manual_seed(0)
    expert = Expert(W, blocks)
    u, p = torch.rand(2, W, 8, 8), torch.rand(2, W, 8, 8)
    s, q = expert(u, p)
    assert len(s) == len(q) == blocks // 2 == expert.depths
    assert all(t.shape == u.shape for t in s + q)
    for block in expert.blocks:
        u, p = block(u, p)
    torch.testing.assert_close(s[-1], u)
    torch.testing.assert_close(q[-1], p)


@pytest.mark.parametrize("blocks", [0, 3])
def test_expert_needs_an_even_number_of_blocks(blocks):
    with pytest.raises(ValueError, match="even number"):
        Expert(W, blocks)


def test_gate_lies_in_0_1_and_gates_the_feature():
    torch.manual_seed(0)
    layer = GateLayer(W, 3)
    f, g, x = torch.randn(2, W, 8, 12), torch.randn(2, W, 8, 12), rand(2, 3, 32, 48)
    gate = layer.gate(f, g, x)
    assert gate.shape == f.shape
    assert (gate > 0).all() and (gate < 1).all()
    assert gate.std() > 0  # pixel-level, not constant
    torch.testing.assert_close(layer(f, g, x), gate * f)
    # the image enters through its 4x average-pooled version
    x2 = x.clone()
    x2[:, :, :4, :4] = x[:, :, :4, :4].mean(dim=(2, 3), keepdim=True)  # same 4x4 mean
    torch.testing.assert_close(layer.gate(f, g, x2), gate)
    assert not torch.allclose(layer.gate(f, g, x.flip(-1)), gate)


def test_expert_attention_is_a_softmax_over_experts_per_depth():
    torch.manual_seed(0)
    att = ExpertAttention(W, experts=3, depths=2)
    a = att(torch.randn(4, W, 8, 8))
    assert a.shape == (4, 3, 2)
    assert (a > 0).all()
    torch.testing.assert_close(a.sum(dim=1), torch.ones(4, 2))
    assert not torch.allclose(a[:, :, 0], a[:, :, 1])  # one mixture per depth


def _set_sgus(bisgu: BiSGU) -> None:
    """Zero convs with constant gates: sigma(0) = 1/2 on the active input, sigma(ln 3) = 3/4
    on the passive one, so SGU(fa, fb) = fa / 2 + 3 fb / 4 (asymmetric)."""
    with torch.no_grad():
        for sgu in list(bisgu.forward_sgus) + list(bisgu.backward_sgus):
            for p in sgu.parameters():
                p.zero_()
            sgu.conv_b.bias.fill_(torch.log(torch.tensor(3.0)).item())
        # out = 1 * forward chain + 2 * backward chain, channel by channel
        eye = torch.eye(W)[:, :, None, None]
        bisgu.out.weight.copy_(torch.cat([eye, 2 * eye], dim=1))
        bisgu.out.bias.zero_()


def sgu(fa: torch.Tensor, fb: torch.Tensor) -> torch.Tensor:
    return 0.5 * fa + 0.75 * fb


def test_bisgu_by_hand_two_depths():
    bisgu = BiSGU(W, depths=2)
    _set_sgus(bisgu)
    v1, v2 = torch.randn(2, W, 4, 4), torch.randn(2, W, 4, 4)
    fwd = sgu(v2, v1)
    bwd = sgu(v1, v2)
    torch.testing.assert_close(bisgu([v1, v2]), fwd + 2 * bwd)


def test_bisgu_by_hand_three_depths():
    bisgu = BiSGU(W, depths=3)
    _set_sgus(bisgu)
    v1, v2, v3 = (
        torch.randn(2, W, 4, 4, generator=torch.Generator().manual_seed(i)) for i in range(3)
    )
    fwd = sgu(v3, sgu(v2, v1))  # Eq. 7: SGU(v_{M/2}, SGU(v_{M/2-1}, ...))
    bwd = sgu(v1, sgu(v2, v3))  # SGU(v_1, SGU(v_2, ...))
    torch.testing.assert_close(bisgu([v1, v2, v3]), fwd + 2 * bwd)
    with pytest.raises(ValueError, match="expects 3"):
        bisgu([v1, v2])


def test_sgu_gates_come_from_the_active_input():
    torch.manual_seed(0)
    sgu = BiSGU(W, depths=2).forward_sgus[0]
    fa, fb = torch.randn(1, W, 4, 4), torch.randn(1, W, 4, 4)
    expected = torch.sigmoid(sgu.conv_a(fa)) * fa + torch.sigmoid(sgu.conv_b(fa)) * fb
    torch.testing.assert_close(sgu(fa, fb), expected)


def test_decoder_upsamples_by_4():
    assert Decoder(W, 3)(torch.randn(2, W, 8, 16)).shape == (2, 3, 32, 64)


# ---------------------------------------------------------------------- networks
@pytest.mark.parametrize("blocks", [2, 4])
def test_amalgamator_aggregates_gated_expert_features(blocks):
    torch.manual_seed(0)
    am = Amalgamator(W, 3, experts=3, blocks=blocks)
    x = rand(2, 3, 32, 48)
    h, g = FeatureExtractor(3, W)(x)
    v, f = am(h, g, x)
    assert len(v) == len(f) == blocks // 2
    assert all(t.shape == h.shape for t in v + f)
    a, b = am.mixture_weights(g)
    assert a.shape == b.shape == (2, 3, blocks // 2)
    torch.testing.assert_close(a.sum(1), torch.ones(2, blocks // 2))
    # Eqs. 2-5 for the last depth, by hand
    j = blocks // 2 - 1
    outs = [e(h, g) for e in am.experts]
    v_exp = sum(
        a[:, i, j, None, None, None] * am.gates_s[i][j].gate(s[j], h, x) * s[j]
        for i, (s, _) in enumerate(outs)
    )
    f_exp = sum(
        b[:, i, j, None, None, None] * am.gates_q[i][j].gate(q[j], g, x) * q[j]
        for i, (_, q) in enumerate(outs)
    )
    torch.testing.assert_close(v[j], v_exp)
    torch.testing.assert_close(f[j], f_exp)


@pytest.mark.parametrize(("blocks", "size"), [(2, (32, 32)), (4, (48, 64))])
def test_base_net_keeps_the_shape(blocks, size):
    torch.manual_seed(0)
    net = LiraBaseNet(3, W, experts=3, blocks=blocks)
    x = rand(2, 3, *size)
    y = net(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert (net.channels, net.scale) == (3, 1)
    # the global residual: zero the decoder's last conv -> identity
    with torch.no_grad():
        last = net.decoder.body[-1]
        last.weight.zero_()
        last.bias.zero_()
    torch.testing.assert_close(net(x), x)


def test_base_net_follows_eq_8():
    torch.manual_seed(0)
    net = LiraBaseNet(3, W, experts=2, blocks=4)
    x = rand(2, 3, 16, 16)
    h, g = net.extractor(x)
    v, f = net.amalgamator(h, g, x)
    z = net.fuse(torch.cat([net.bisgu_v(v), net.bisgu_f(f)], dim=1))
    torch.testing.assert_close(
        net(x), x + net.decoder(z), rtol=0, atol=1e-6
    )  # tight: small effects


def test_base_net_has_no_normalisation_and_takes_per_sample_gradients():
    from torch.func import functional_call, grad, vmap

    torch.manual_seed(0)
    net = LiraBaseNet(1, 4, experts=2, blocks=2)
    assert not any(isinstance(m, nn.modules.batchnorm._NormBase) for m in net.modules())
    params = {k: v.detach() for k, v in net.named_parameters()}
    x, y = rand(2, 1, 16, 16), rand(2, 1, 16, 16, seed=1)

    def loss(p, xi, yi):
        return (functional_call(net, p, (xi[None],)) - yi[None]).abs().mean()

    per_sample = vmap(grad(loss), in_dims=(None, 0, 0))(params, x, y)
    name = "amalgamator.experts.0.blocks.0.t1.select.0.weight"
    one = grad(loss)(params, x[1], y[1])
    torch.testing.assert_close(per_sample[name][1], one[name], rtol=1e-4, atol=1e-6)


def test_fork_routes_each_sample_through_its_own_expert():
    torch.manual_seed(0)
    net = LiraForkNet(3, W, experts=3, blocks=2)
    x = rand(4, 3, 16, 16)
    expert = torch.tensor([0, 1, 2, 1])
    y = net(x, expert)
    assert y.shape == x.shape
    # batch-independent: every sample alone gives the same output (rows not mixed up)
    for k in range(4):
        torch.testing.assert_close(net(x[k : k + 1], expert[k : k + 1]), y[k : k + 1])
    torch.testing.assert_close(net(x[:1], 0), y[:1])
    perturb(net.experts[1])
    y2 = net(x, expert)
    changed = (y2 - y).flatten(1).abs().amax(1) > 1e-6
    assert changed.tolist() == [False, True, False, True]


def test_fork_needs_valid_expert_indices():
    net = LiraForkNet(3, W, experts=2, blocks=2)
    x = rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="distortion's index"):
        net(x)
    with pytest.raises(ValueError, match=r"0\.\.1"):
        net(x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="integer tensor"):
        net(x, torch.tensor([0.0, 1.0]))


def test_fork_experts_load_into_the_base_network():
    torch.manual_seed(0)
    fork = LiraForkNet(3, W, experts=3, blocks=4)
    base = LiraBaseNet(3, W, experts=3, blocks=4)
    base.amalgamator.experts.load_state_dict(fork.experts.state_dict())  # strict
    base.extractor.load_state_dict(fork.extractor.state_dict())
    base.decoder.load_state_dict(fork.decoder.state_dict())
    for a, b in zip(fork.experts.parameters(), base.amalgamator.experts.parameters()):
        assert torch.equal(a, b)


def _expanded(blocks: int = 2) -> tuple[LiraBaseNet, LiraExpandedNet]:
    torch.manual_seed(0)
    return LiraBaseNet(3, W, experts=3, blocks=blocks), LiraExpandedNet(3, W, blocks=blocks)


@pytest.mark.parametrize(("blocks", "size"), [(2, (32, 32)), (4, (48, 64))])
def test_expanded_net_keeps_the_shape_and_does_not_own_the_old_expert(blocks, size):
    base, net = _expanded(blocks)
    x = rand(2, 3, *size)
    assert net(x, base.amalgamator).shape == x.shape
    assert not any(n.startswith("old") for n, _ in net.named_parameters())
    c, d = net.mixture_weights(net.extractor(x)[1])
    assert c.shape == d.shape == (2, 2, blocks // 2)
    torch.testing.assert_close(c.sum(1), torch.ones(2, blocks // 2))


def test_expanded_net_follows_eqs_10_to_14():
    base, net = _expanded(blocks=4)
    old = base.amalgamator
    x = rand(2, 3, 16, 16)
    h2, g2 = net.extractor(x)
    v_old, f_old = old(h2, g2, x)  # the old expert on the new extractor's features
    s2, q2 = net.expert(h2, g2)
    c, d = net.attention_v(g2), net.attention_f(g2)
    theta, phi = [], []
    for j in range(2):
        xi = [
            net.gates_s[0][j].gate(v_old[j], h2, x) * v_old[j],
            net.gates_s[1][j].gate(s2[j], h2, x) * s2[j],
        ]
        psi = [
            net.gates_q[0][j].gate(f_old[j], g2, x) * f_old[j],
            net.gates_q[1][j].gate(q2[j], g2, x) * q2[j],
        ]
        theta.append(c[:, 0, j, None, None, None] * xi[0] + c[:, 1, j, None, None, None] * xi[1])
        phi.append(d[:, 0, j, None, None, None] * psi[0] + d[:, 1, j, None, None, None] * psi[1])
    z = net.fuse(torch.cat([net.bisgu_v(theta), net.bisgu_f(phi)], dim=1))
    torch.testing.assert_close(net(x, old), x + net.decoder(z), rtol=0, atol=1e-6)  # tight


def test_expanded_net_depends_on_the_old_amalgamator():
    base, net = _expanded()
    x = rand(2, 3, 16, 16)
    y = net(x, base.amalgamator)
    perturb(base.amalgamator.experts[0])
    assert not torch.allclose(net(x, base.amalgamator), y)


@pytest.mark.parametrize("frozen", [False, True])
def test_expanded_net_gradients_reach_the_new_expert_and_the_unfrozen_old_one(frozen):
    base, net = _expanded()
    base.amalgamator.requires_grad_(not frozen)
    net(rand(2, 3, 16, 16), base.amalgamator).square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.expert.parameters())
    old = [p.grad for p in base.amalgamator.parameters()]
    if frozen:
        assert all(g is None for g in old)
    else:
        assert all(g is not None for g in old)
        assert base.amalgamator.experts[2].blocks[0].conv1.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in base.bisgu_v.parameters())  # not on the path


def test_expanded_net_rejects_a_mismatched_old_amalgamator():
    net = LiraExpandedNet(3, W, blocks=2)
    with pytest.raises(ValueError, match="same width"):
        net(rand(1, 3, 16, 16), Amalgamator(4, 3, 3, 2))


# ---------------------------------------------------------------------- CycleGAN
def test_generator_maps_01_to_01_with_the_same_shape():
    torch.manual_seed(0)
    gen = ResnetGenerator(3, W, blocks=2)
    x = rand(2, 3, 32, 48)
    y = gen(x)
    assert y.shape == x.shape
    assert (y >= 0).all() and (y <= 1).all() and y.std() > 0
    norms = [m for m in gen.modules() if isinstance(m, nn.InstanceNorm2d)]
    assert norms and all(not m.affine for m in norms)


def test_patch_discriminator_gives_a_logits_map():
    torch.manual_seed(0)
    d = PatchDiscriminator(3, W, layers=3)
    assert d(rand(2, 3, 64, 64)).shape == (2, 1, 6, 6)
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [W, 2 * W, 4 * W, 8 * W, 1]
    assert [c.stride[0] for c in convs] == [2, 2, 2, 1, 1]


def test_normal_init_and_cyclegan_parameter_counts():
    torch.manual_seed(0)
    conv = init_weights_normal(nn.Conv2d(64, 64, 3), std=0.02)
    assert abs(conv.weight.std().item() - 0.02) < 0.002 and not conv.bias.any()
    # CycleGAN's own code reports 11.378 M and 2.765 M at ngf = ndf = 64
    with torch.device("meta"):
        assert count_parameters(ResnetGenerator()) == 11_378_179
        assert count_parameters(PatchDiscriminator()) == 2_764_737


def test_parameter_table_prints(capsys):
    main(["--width", "8", "--blocks", "2"])
    out = capsys.readouterr().out
    for name in ("extractor", "experts", "gates", "attention", "bisgus", "decoder",
                 "LiraForkNet", "LiraExpandedNet", "ResnetGenerator", "PatchDiscriminator"):  # fmt: skip
        assert name in out
    assert f"| LiraBaseNet: total | {count_parameters(LiraBaseNet(3, 8, 3, 2)):,} |" in out
