"""The ODL autoencoder: shapes, the channel-wise FC, the g/h split, and that it learns."""

from __future__ import annotations

import torch

from lightrestore.models.odl_autoencoder import ChannelWiseFC, ODLAutoencoder


def test_paper_architecture_shapes():
    m = ODLAutoencoder(channels=3, width=64, image_size=64)
    fc = m.bottleneck
    assert (fc.weight.shape, fc.bias.shape) == ((512, 16, 16), (512, 16))  # 512 x Linear(16 -> 16)
    x = torch.rand(2, 3, 64, 64)
    z = m.features(x)
    assert z.shape == (2, 64, 32, 32)
    with torch.no_grad():
        y = m(x)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert torch.allclose(m.head(z, x), y)
    convs = [
        mod for mod in m.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    assert len(convs) == 8 and all(c.bias is None for c in convs)
    # init N(0, 0.02)
    assert abs(float(convs[1].weight.detach().std()) - 0.02) < 0.002


def test_greyscale_and_small_variant():
    m = ODLAutoencoder(channels=1, width=8, image_size=32)
    assert m.bottleneck.weight.shape == (64, 4, 4)
    assert m(torch.rand(3, 1, 32, 32)).shape == (3, 1, 32, 32)


def test_channelwise_fc_has_no_cross_channel_flow():
    fc = ChannelWiseFC(4, 2, 2)
    x = torch.randn(1, 4, 2, 2)
    x2 = x.clone()
    x2[:, 1] += 1.0
    d = (fc(x2) - fc(x)).abs().sum(dim=(0, 2, 3))
    assert d[1] > 0 and float(d[[0, 2, 3]].sum()) == 0.0
    # equals an independent nn.Linear per channel
    lin = torch.nn.Linear(4, 4)
    with torch.no_grad():
        lin.weight.copy_(fc.weight[2].T)
        lin.bias.copy_(fc.bias[2])
    assert torch.allclose(fc(x)[0, 2].flatten(), lin(x[0, 2].flatten()), atol=1e-6)


def test_loss_decreases_on_a_fixed_batch():
    torch.manual_seed(0)
    m = ODLAutoencoder(channels=3, width=8, image_size=32)
    opt = torch.optim.Adam(m.parameters(), lr=2e-3, betas=(0.5, 0.999))
    # smooth images (bilinear up-sampled 4x4 noise): learnable through the bottleneck
    x = torch.nn.functional.interpolate(torch.rand(8, 3, 4, 4), size=32, mode="bilinear")
    first = None
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(m(x), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else float(loss)
    assert float(loss) < 0.5 * first


def test_channels_last_gives_the_same_output():
    from lightrestore.losses.pixel import PixelLoss
    from lightrestore.methods.restoration import RestorationModule

    torch.manual_seed(0)
    model = ODLAutoencoder(width=8, image_size=32).eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        ref = model(x)
        m = RestorationModule(model, PixelLoss(), torch.optim.Adam, channels_last=True)
        m.configure_model()
        out = m(x)
    assert torch.allclose(out, ref, atol=1e-5)
    assert next(m.model.parameters()).dim() == 4 and m.model.encoder[0][0].weight.is_contiguous(
        memory_format=torch.channels_last
    )
