"""LPIPS (Zhang et al. 2018) as an optional per-level measure: the distance against an
independent numpy recomputation, the backbones' taps, loading torchvision / lpips files,
clear errors, and a smoke run that reports ``lpips`` per level without checkpointing the
network. Weights are small random tensors written to temporary files (nothing is
downloaded)."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_cfg

from lightrestore.errors import ConfigError
from lightrestore.metrics.level_metrics import LevelMetrics
from lightrestore.metrics.lpips import LPIPS, extra_measures, load_lpips
from lightrestore.models.lpips_nets import AlexNetFeatures, VGG16Features
from lightrestore.reporting.results import results_csv, results_markdown

# the facts, from the paper and torchvision's layouts (not read from the code under test)
ALEX_CHANNELS = (64, 192, 384, 256, 256)
VGG_CHANNELS = (64, 128, 256, 512, 512)
SHIFT = np.array([-0.030, -0.088, -0.188]).reshape(1, 3, 1, 1)
SCALE = np.array([0.458, 0.448, 0.450]).reshape(1, 3, 1, 1)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*(does not have many workers|LitLogger|eval mode|integrity).*"
        )
        yield


def _alex_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A random AlexNet state dict in torchvision's layout, with (small) classifier keys."""
    torch.manual_seed(seed)
    state = dict(AlexNetFeatures().state_dict())
    state["classifier.1.weight"] = torch.randn(8, 16)
    state["classifier.1.bias"] = torch.randn(8)
    state["classifier.6.weight"] = torch.randn(4, 8)
    return state


def _lin_state(channels=ALEX_CHANNELS, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
            for k, c in enumerate(channels)}  # fmt: skip


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("lpips")
    out = {"backbone": root / "alexnet-owt-7be5be79.pth", "linear": root / "alex.pth"}
    torch.save(_alex_state(), out["backbone"])
    torch.save(_lin_state(), out["linear"])
    return out


@pytest.fixture(scope="module")
def lpips(files) -> LPIPS:
    return load_lpips("alex", files["backbone"], files["linear"])


def _images(n=3, c=3, s=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, s, s, generator=g)
    y = (x + 0.2 * torch.randn(n, c, s, s, generator=g)).clamp(0, 1)
    return x, y


# ---------------------------------------------------------------------- the distance
def _reference(model: LPIPS, lin: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    """LPIPS recomputed with numpy from the backbone's tap outputs (float64)."""

    def taps(img):
        a = (2.0 * img.double().numpy() - 1.0 - SHIFT) / SCALE  # [0,1] -> [-1,1] -> scaled
        with torch.no_grad():
            return [t.double().numpy() for t in model.backbone(torch.from_numpy(a).float())]

    total = np.zeros(x.shape[0])
    for k, (f0, f1) in enumerate(zip(taps(x), taps(y))):
        n0 = f0 / (np.sqrt((f0**2).sum(axis=1, keepdims=True)) + 1e-10)
        n1 = f1 / (np.sqrt((f1**2).sum(axis=1, keepdims=True)) + 1e-10)
        w = lin[f"lin{k}.model.1.weight"].double().numpy().reshape(1, -1, 1, 1)
        total += ((n0 - n1) ** 2 * w).sum(axis=1).mean(axis=(1, 2))
    return total


def test_distance_matches_an_independent_numpy_reference(lpips):
    x, y = _images()
    got = lpips(x, y)
    assert got.shape == (3,) and got.dtype == torch.float32
    want = _reference(lpips, _lin_state(), x, y)
    assert (want > 1e-4).all()  # a real, non-trivial distance
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-7)


def test_zero_for_equal_images_symmetric_and_grey_repeated(lpips):
    x, y = _images()
    assert torch.equal(lpips(x, x), torch.zeros(3))
    assert torch.allclose(lpips(x, y), lpips(y, x), rtol=1e-5, atol=1e-7)
    g0, g1 = x[:, :1], y[:, :1]
    assert torch.allclose(lpips(g0, g1), lpips(g0.repeat(1, 3, 1, 1), g1.repeat(1, 3, 1, 1)))
    assert not lpips.training and not any(p.requires_grad for p in lpips.parameters())
    with torch.inference_mode():  # as in Lightning's validation and test loops
        assert torch.equal(lpips(x, y), lpips.forward(x, y))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: still float32
        assert torch.equal(lpips(x, y), lpips.forward(x, y).float())
    x.requires_grad_(True)
    assert not lpips(x, y).requires_grad  # no graph: a metric
    lpips.train()  # a metric: stays in evaluation mode
    assert not lpips.training


def test_taps_of_a_64px_image_have_the_known_shapes():
    x = torch.rand(2, 3, 64, 64)
    alex = [tuple(t.shape[1:]) for t in AlexNetFeatures()(x)]
    # conv 11x11 stride 4 pad 2 -> 15; 3x3 stride-2 pools -> 7, then 3
    assert alex == [(64, 15, 15), (192, 7, 7), (384, 3, 3), (256, 3, 3), (256, 3, 3)]
    vgg = [tuple(t.shape[1:]) for t in VGG16Features()(x)]
    assert vgg == [(64, 64, 64), (128, 32, 32), (256, 16, 16), (512, 8, 8), (512, 4, 4)]
    assert [s[0] for s in alex] == list(ALEX_CHANNELS)
    assert [s[0] for s in vgg] == list(VGG_CHANNELS)
    # torchvision's vgg16 features: convs at these indices (the taps follow 3, 8, 15, 22, 29)
    convs = [k.split(".")[1] for k in VGG16Features().state_dict() if k.endswith("weight")]
    assert convs == ["0", "2", "5", "7", "10", "12", "14", "17", "19", "21", "24", "26", "28"]


def test_too_small_images_are_a_clear_error(lpips):
    with pytest.raises(ConfigError, match="at least 31x31"):
        lpips(torch.rand(1, 3, 24, 24), torch.rand(1, 3, 24, 24))


# ---------------------------------------------------------------------- loading
def test_torchvision_files_with_classifier_keys_and_checkpoint_dicts_load(files, tmp_path):
    state = _alex_state()
    model = load_lpips("alex", files["backbone"], files["linear"])
    for k, v in model.backbone.state_dict().items():
        assert torch.equal(v, state[k])
    for k, v in model.lins.state_dict().items():
        assert torch.equal(v, _lin_state()[k])
    wrapped = tmp_path / "full.ckpt"
    torch.save({"state_dict": state, "epoch": 3}, wrapped)
    again = load_lpips("alex", wrapped, files["linear"])
    x, y = _images(n=2)
    assert torch.equal(again(x, y), model(x, y))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # weights_only: no pickled objects, no warning
        load_lpips("alex", files["backbone"], files["linear"])


def test_missing_unreadable_and_mismatching_files_name_the_key_and_the_file(files, tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(ConfigError) as e:
        load_lpips("alex", missing, files["linear"])
    msg = str(e.value)
    assert msg.startswith("metrics.lpips.backbone_weights: file not found")
    assert str(missing) in msg and "alexnet-owt-7be5be79.pth" in msg
    with pytest.raises(
        ConfigError, match=r"metrics.lpips.linear_weights: file not found.*alex.pth"
    ):
        load_lpips("alex", files["backbone"], missing)
    with pytest.raises(ConfigError, match=r"linear_weights is not set"):
        load_lpips("alex", files["backbone"], "???")

    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(ConfigError, match="metrics.lpips.backbone_weights: cannot read"):
        load_lpips("alex", garbage, files["linear"])

    wrong = _lin_state()
    wrong["lin2.model.1.weight"] = torch.rand(1, 256, 1, 1)  # VGG's relu3_3 width
    path = tmp_path / "wrong.pth"
    torch.save(wrong, path)
    with pytest.raises(ConfigError) as e:
        load_lpips("alex", files["backbone"], path)
    msg = str(e.value)
    assert msg.startswith("metrics.lpips.linear_weights:") and "wrong shapes" in msg
    assert "lin2.model.1.weight (1, 256, 1, 1) (expected (1, 384, 1, 1))" in msg

    # an AlexNet file for VGG: missing and mismatching keys, named
    with pytest.raises(
        ConfigError, match=r"backbone_weights: .* does not fit: missing .*vgg16-397923af"
    ):
        load_lpips("vgg", files["backbone"], files["linear"])

    negative = _lin_state()
    negative["lin0.model.1.weight"] = -negative["lin0.model.1.weight"]
    torch.save(negative, path)
    with pytest.raises(ConfigError, match="negative weights in lin0.model.1.weight"):
        load_lpips("alex", files["backbone"], path)
    with pytest.raises(ConfigError, match="metrics.lpips.net must be 'alex' or 'vgg'"):
        load_lpips("squeeze", files["backbone"], files["linear"])
    with pytest.raises(ConfigError, match="metrics.ssim2 is not a known measure"):
        extra_measures({"ssim2": {"net": "alex"}})


# ---------------------------------------------------------------------- per level
def test_level_metrics_average_lpips_per_level_without_holding_the_network(lpips):
    x, y = _images(n=4, s=32)
    level = torch.tensor([1, 2, 2, 3])
    shared = {"lpips": lpips}
    a, b = LevelMetrics(3, extra=shared), LevelMetrics(3, extra=shared)
    a.update(y, x, level)
    out = a.compute()
    d = lpips(y, x)
    assert out[2]["lpips"] == pytest.approx(float(d[1:3].mean()), rel=1e-6)
    assert out[3]["lpips"] == pytest.approx(float(d[3]), rel=1e-6)
    assert not list(a.children()) and not list(a.parameters())  # not a sub-module
    assert not any("backbone" in k or "lin" in k for k in a.state_dict(keep_vars=True))
    assert a.extra["lpips"] is b.extra["lpips"]  # one network for every LevelMetrics
    plain = LevelMetrics(3)
    plain.update(y, x, level)
    assert "lpips" not in plain.compute()[1] and out[1]["psnr"] == plain.compute()[1]["psnr"]
    with pytest.raises(ValueError, match="clash"):
        LevelMetrics(3, extra={"psnr": lpips})


def test_markdown_and_csv_show_lpips_only_when_the_rows_have_it():
    row = {"range": "1-6", "extra": False, "psnr": 30.0, "ssim": 0.9, "l1": 0.01, "l2": 0.001,
           "count": 4}  # fmt: skip
    plain = {"levels": {"1": row}, "mean_train_levels": {k: row[k] for k in ("psnr", "ssim", "l1", "l2")},
             "train_levels": [1]}  # fmt: skip
    with_lpips = {"levels": {"1": {**row, "lpips": 0.1234}},
                  "mean_train_levels": {**plain["mean_train_levels"], "lpips": 0.1234},
                  "train_levels": [1]}  # fmt: skip
    md, md_plain = results_markdown(with_lpips), results_markdown(plain)
    assert "| L2 | LPIPS | count |" in md and "| 0.1234 |" in md and "lower is better" in md
    assert "LPIPS" not in md_plain and "| L2 | count |" in md_plain
    header = next(csv.reader(results_csv(with_lpips).splitlines()))
    assert header[-1] == "lpips" and "lpips" not in results_csv(plain)
    assert results_csv(with_lpips).splitlines()[1].endswith(",0.1234")


# ---------------------------------------------------------------------- a whole run
def test_a_smoke_run_reports_lpips_per_level_and_checkpoints_without_it(files, tmp_path):
    from lightrestore.cli.evaluate import run_evaluate
    from lightrestore.cli.train import run
    from lightrestore.storage.checkpoints import load_checkpoint

    weights = (f"metrics.lpips.backbone_weights={files['backbone']}",
               f"metrics.lpips.linear_weights={files['linear']}")  # fmt: skip
    fast = ("trainer.max_epochs=1", "data.val_per_level=2", "data.test_per_level=2",
            "data.batch_size=4", "data.train_samples_per_epoch=4")  # fmt: skip
    cfg = compose_cfg(tmp_path / "t", "experiment=ondemand_inpaint", "metrics=lpips_alex",
                      *weights, *fast)  # fmt: skip
    out = run(cfg)
    run_dir = Path(cfg.paths.output_dir)
    doc = json.loads((run_dir / "results.json").read_text())
    n = len(doc["levels"])
    assert n == 6 and all(0 <= r["lpips"] for r in doc["levels"].values())
    assert "lpips" in doc["mean_train_levels"] and "LPIPS v0.1" not in doc["protocol"]
    assert doc["lpips_protocol"].startswith("LPIPS v0.1") and "AlexNet" in doc["lpips_protocol"]
    assert all("lpips" in r for r in doc["outputs"]["input"]["default"]["levels"].values())
    assert "LPIPS" in (run_dir / "results.md").read_text()
    with open(run_dir / "csv" / "metrics.csv") as f:
        logged = next(csv.reader(f))
    assert {"val/lpips/level_1", "val/lpips/mean", "test/lpips/level_6"} <= set(logged)

    ckpt_path = Path(out["trainer"].checkpoint_callback.last_model_path)
    ckpt = load_checkpoint(ckpt_path)
    assert not any("lpips" in k or "backbone" in k or ".lins." in k for k in ckpt["state_dict"])
    assert set(ckpt["state_dict"]) == set(out["method"].state_dict())

    # an older checkpoint (its config has no metrics node) scored with LPIPS by evaluate
    config = {k: v for k, v in ckpt["lightrestore"]["config"].items() if k != "metrics"}
    old = tmp_path / "old.ckpt"
    torch.save(dict(ckpt, lightrestore=dict(ckpt["lightrestore"], config=config)), old)
    ev_cfg = compose_cfg(tmp_path / "e", f"ckpt={old}", "metrics=lpips_alex", *weights,
                         config_name="evaluate", smoke=False)  # fmt: skip
    ev = run_evaluate(ev_cfg)
    for lv, row in doc["levels"].items():  # the same pairs, the same network: the same values
        assert ev["results"][int(lv)]["lpips"] == pytest.approx(row["lpips"], rel=1e-5)
    # without metrics=..., evaluate writes what it wrote before: no LPIPS anywhere
    plain = compose_cfg(tmp_path / "p", f"ckpt={ckpt_path}", config_name="evaluate", smoke=False)
    run_evaluate(plain)
    out_dir = Path(plain.paths.output_dir)
    plain_doc = json.loads((out_dir / "results.json").read_text())
    assert not any("lpips" in r for r in plain_doc["levels"].values())
    assert "lpips" not in plain_doc["mean_train_levels"] and "lpips_protocol" not in plain_doc
    assert "LPIPS" not in (out_dir / "results.md").read_text()
    assert "lpips" not in (out_dir / "results.csv").read_text().splitlines()[0]


@pytest.mark.gpu
def test_the_network_follows_the_data_to_the_gpu_inside_inference_mode(files):
    model = load_lpips("alex", files["backbone"], files["linear"])  # on the CPU
    x, y = _images(n=4, s=32)
    level = torch.tensor([1, 1, 2, 2])
    metric = LevelMetrics(2, extra={"lpips": model}).cuda()
    with torch.inference_mode():
        metric.update(y.cuda(), x.cuda(), level.cuda())
    assert model.shift.is_cuda and next(model.parameters()).is_cuda
    cpu = load_lpips("alex", files["backbone"], files["linear"])(y, x)
    assert metric.compute()[1]["lpips"] == pytest.approx(float(cpu[:2].mean()), rel=1e-3)
    assert not next(model.parameters()).is_inference()
