"""Per-image metrics against scikit-image; per-level aggregation against hand sums."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from lightrestore.metrics.image_quality import l1, l2, psnr, ssim
from lightrestore.metrics.level_metrics import LevelMetrics


def _pair(seed=0, c=3, s=40):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(4, c, s, s, generator=g)
    pred = (target + 0.1 * torch.randn(4, c, s, s, generator=g)).clamp(0, 1)
    return pred, target


@pytest.mark.parametrize("channels", [1, 3])
def test_psnr_ssim_match_scikit_image(channels):
    pred, target = _pair(c=channels)
    ours_p, ours_s = psnr(pred, target), ssim(pred, target)
    for i in range(4):
        p, t = pred[i].double().numpy(), target[i].double().numpy()
        assert float(ours_p[i]) == pytest.approx(sk_psnr(t, p, data_range=1.0), abs=1e-4)
        ref = sk_ssim(
            t,
            p,
            data_range=1.0,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=0,
        )
        assert float(ours_s[i]) == pytest.approx(ref, abs=1e-4)


def test_l1_l2_and_psnr_cap():
    pred, target = _pair()
    assert torch.allclose(l1(pred, target), (pred - target).abs().mean(dim=(1, 2, 3)))
    assert torch.allclose(l2(pred, target), ((pred - target) ** 2).mean(dim=(1, 2, 3)))
    assert float(psnr(target, target)[0]) == 100.0


def test_level_metrics_means_per_level():
    pred, target = _pair(s=24)
    level = torch.tensor([1, 2, 2, 4])
    m = LevelMetrics(4)
    m.update(pred[:2], target[:2], level[:2])
    m.update(pred[2:], target[2:], level[2:])
    out = m.compute()
    assert set(out) == {1, 2, 4}  # level 3 got no image
    p = psnr(pred, target)
    assert out[2]["psnr"] == pytest.approx(float(p[1:3].mean()), abs=1e-5)
    assert out[2]["count"] == 2 and out[4]["count"] == 1
    assert out[1]["ssim"] == pytest.approx(float(ssim(pred[:1], target[:1])[0]), abs=1e-6)
    assert np.isfinite([v["l2"] for v in out.values()]).all()
