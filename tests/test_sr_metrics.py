"""SR metrics on the Y channel, against scikit-image (MATLAB-compatible rgb2ycbcr)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.color import rgb2ycbcr
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from lightrestore.metrics.sr import crop_border, measure_y, psnr_y, rgb_to_y, ssim_y


def pair(b: int = 2, h: int = 40, w: int = 36, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(b, 3, h, w, generator=g, dtype=torch.float64)
    pred = (target + 0.08 * torch.randn(b, 3, h, w, generator=g, dtype=torch.float64)).clamp(0, 1)
    return pred, target


def sk_y(x: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` -> ``(B, H, W)`` Y in [0, 1] via scikit-image's studio-range rgb2ycbcr."""
    return np.stack([rgb2ycbcr(img.permute(1, 2, 0).numpy())[..., 0] / 255 for img in x])


def test_rgb_to_y_matches_skimage():
    pred, _ = pair()
    y = rgb_to_y(pred.float())
    assert y.shape == (2, 1, 40, 36) and y.dtype == torch.float32
    np.testing.assert_allclose(y[:, 0].double().numpy(), sk_y(pred), rtol=0, atol=1e-5)
    # studio range: black -> 16/255, white -> 235/255
    ends = rgb_to_y(torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1))
    torch.testing.assert_close(ends.flatten(), torch.tensor([16 / 255, 235 / 255]))


def test_rgb_to_y_passes_grey_through_and_rejects_other_channels():
    x = torch.rand(2, 1, 8, 8)
    assert rgb_to_y(x) is x
    with pytest.raises(ValueError):
        rgb_to_y(torch.rand(2, 4, 8, 8))


@pytest.mark.parametrize("border", [0, 2, 4])
def test_psnr_and_ssim_y_match_skimage_on_cropped_y(border):
    pred, target = pair(seed=border)
    yp, yt = sk_y(pred), sk_y(target)
    if border:
        yp = yp[:, border:-border, border:-border]
        yt = yt[:, border:-border, border:-border]
    ref_psnr = [peak_signal_noise_ratio(t, p, data_range=1) for p, t in zip(yp, yt)]
    ref_ssim = [
        structural_similarity(
            p, t, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1
        )
        for p, t in zip(yp, yt)
    ]
    np.testing.assert_allclose(psnr_y(pred, target, border).numpy(), ref_psnr, atol=1e-4)
    np.testing.assert_allclose(ssim_y(pred, target, border).numpy(), ref_ssim, atol=1e-5)


def test_border_changes_the_value():
    """Errors concentrated on the border: cropping it must raise PSNR."""
    _, target = pair()
    pred = target.clone()
    pred[..., :3, :] = 0.0
    assert (psnr_y(pred, target, 3) > psnr_y(pred, target, 0) + 10).all()


def test_measure_y_clamps_and_matches_the_parts():
    pred, target = pair(seed=5)
    wild = pred * 1.4 - 0.2  # leaves [0, 1]
    out = measure_y(wild, target, border=3)
    assert set(out) == {"psnr", "ssim", "l1", "l2"}
    clamped = wild.clamp(0, 1)
    torch.testing.assert_close(out["psnr"], psnr_y(clamped, target, 3))
    torch.testing.assert_close(out["ssim"], ssim_y(clamped, target, 3))
    yp, yt = sk_y(clamped)[:, 3:-3, 3:-3], sk_y(target)[:, 3:-3, 3:-3]
    np.testing.assert_allclose(out["l1"].numpy(), np.abs(yp - yt).mean(axis=(1, 2)), atol=1e-6)
    np.testing.assert_allclose(out["l2"].numpy(), ((yp - yt) ** 2).mean(axis=(1, 2)), atol=1e-7)


def test_crop_border_errors():
    x = torch.rand(1, 1, 8, 8)
    assert crop_border(x, 0) is x
    assert crop_border(x, 2).shape == (1, 1, 4, 4)
    with pytest.raises(ValueError):
        crop_border(x, 4)
    with pytest.raises(ValueError):
        crop_border(x, -1)
