"""The core every method fits: a toy two-network method (tests/toy_methods.py) trains with a
frozen part, two optimisers and per-group learning rates, resumes exactly, has its extra
outputs scored per level, and is evaluated, restored and initialised through the one
builder; hard mining and PSPL apply to it unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from omegaconf import OmegaConf, open_dict
from PIL import Image
from toy_methods import SmallNet, TwoNetMethod, Watch, toy_method_config

from lightrestore.build import build, init_weights
from lightrestore.callbacks.policies import HardMiningPolicy, OnDemandPolicy
from lightrestore.cli.evaluate import run_evaluate
from lightrestore.cli.restore import run_restore
from lightrestore.cli.train import run
from lightrestore.errors import ConfigError
from lightrestore.losses.hard_mining import HardMiningLoss
from lightrestore.losses.pixel import PixelLoss
from lightrestore.methods.restoration import RestorationModule
from lightrestore.storage.checkpoints import CheckpointError

# 3 batches of 8 per epoch, 2 epochs, deterministic kernels
COMMON = ("trainer.max_epochs=2", "data.train_samples_per_epoch=24", "trainer.deterministic=true")
EXTRA_OUTPUTS = ("input", "after_F", "G_1", "restored_known")  # inpainting: + known pixels put back


def toy_cfg(tmp: Path, *overrides: str, method: dict | None = None):
    cfg = compose_cfg(tmp, "experiment=ondemand_inpaint", *COMMON, *overrides)
    with open_dict(cfg):
        cfg.method = OmegaConf.create(method or toy_method_config())
    return cfg


WATCH = ("+callbacks.watch._target_=toy_methods.Watch",)


def watch_of(out) -> Watch:
    return next(c for c in out["callbacks"] if isinstance(c, Watch))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("toy")
    out = run(toy_cfg(tmp, *WATCH))
    return tmp, out, watch_of(out)


def test_toy_method_trains_with_a_frozen_part_two_optimisers_and_group_lrs(toy_run):
    tmp, out, watch = toy_run
    method, trainer = out["method"], out["trainer"]
    end = method.state_dict()
    # the frozen network is unchanged, bit for bit, and stayed in eval mode; the others trained
    for k, v in watch.start.items():
        if k.startswith("f_net."):
            assert torch.equal(end[k], v), k
    assert any(not torch.equal(end[k], v) for k, v in watch.start.items() if k.startswith("g_net."))
    assert any(not torch.equal(end[k], v) for k, v in watch.start.items() if k.startswith("d_net."))
    assert watch.modes and all(m == (False, True, True) for m in watch.modes)
    assert all(not p.requires_grad for p in method.f_net.parameters())
    # two optimisers: g_net with its tail in its own group, d_net; f_net in neither
    g_opt, d_opt = trainer.optimizers
    f_params = {id(p) for p in method.f_net.parameters()}
    assert not f_params & {id(p) for o in (g_opt, d_opt) for g in o.param_groups for p in g["params"]}
    tail, body = g_opt.param_groups
    assert {id(p) for p in tail["params"]} == {id(p) for p in method.g_net.tail.parameters()}
    assert {id(p) for p in body["params"]} == {id(p) for p in method.g_net.body.parameters()}
    # StepLR(step 1, gamma 0.5) stepped at the end of each of the 2 epochs
    assert (tail["initial_lr"], body["initial_lr"]) == (1e-4, 1e-3)
    assert tail["lr"] == pytest.approx(1e-4 / 4) and body["lr"] == pytest.approx(1e-3 / 4)
    assert [g["lr"] for g in d_opt.param_groups] == [5e-4]
    # manual optimisation: 2 optimiser steps per batch, 6 batches
    assert trainer.global_step == 12 and method.optimizer_steps == 6


def test_toy_method_records_its_networks_and_scores_its_outputs_per_level(toy_run):
    tmp, out, _ = toy_run
    run_dir = tmp / "run"
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    info = ckpt["lightrestore"]
    assert info["method"] == "toy_two_net" and info["frozen"] == ["f_net"]
    assert info["networks"] == {"f_net": "toy_methods.SmallNet", "g_net": "toy_methods.SmallNet",
                                "d_net": "toy_methods.Critic"}  # fmt: skip
    doc = json.loads((run_dir / "results.json").read_text())
    levels = [str(lv) for lv in range(1, 7)]
    assert list(doc["levels"]) == levels  # the headline: restored on the default test set
    for output in EXTRA_OUTPUTS:
        for test_set in ("default", "centered"):
            table = doc["outputs"][output][test_set]
            assert list(table["levels"]) == levels and table["test_set"]["checksum"]
    # G_1 is the restored image; input is the degraded input (its PSNR is the input PSNR)
    for lv in levels:
        assert doc["outputs"]["G_1"]["default"]["levels"][lv]["psnr"] == doc["levels"][lv]["psnr"]
        inp = doc["outputs"]["input"]["default"]["levels"][lv]["psnr"]
        assert inp == pytest.approx(doc["levels"][lv]["input_psnr"])
    scores = out["method"].test_scores_results
    assert set(scores) == {"default", "centered"}
    assert set(scores["default"]) == {"restored", *EXTRA_OUTPUTS}
    md = (run_dir / "results.md").read_text()
    assert "#### output: after_F (default test set)" in md and "#### output: G_1" in md
    csv_rows = (run_dir / "results.csv").read_text().splitlines()
    assert csv_rows[0].startswith("variant,output,level")
    assert sum(",after_F," in r for r in csv_rows) == 12  # 6 levels x 2 test sets


def test_toy_method_resumes_exactly_with_two_optimisers_and_pspl(tmp_path):
    """Interrupted after batch 4 (global step 8: two optimiser steps per batch), resumed:
    the same weights bit for bit; PSPL's t follows the 6 optimisation steps although the
    method calls its loss twice per batch."""
    from helpers import InterruptAt

    pspl = ("loss=pspl", "loss.batches_per_epoch=4")
    full = run(toy_cfg(tmp_path / "full", *pspl))
    assert full["method"].loss.t == pytest.approx(6 / 4)  # not 12 / 4
    cut = toy_cfg(tmp_path / "cut", *pspl, "+callbacks.interrupt._target_=helpers.InterruptAt",
                  "+callbacks.interrupt.step=8")  # fmt: skip
    assert InterruptAt  # the callback the config names
    with pytest.raises(SystemExit):
        run(cut)
    ckpt = tmp_path / "cut" / "run" / "checkpoints" / "last.ckpt"
    resumed = run(toy_cfg(tmp_path / "resumed", *pspl, f"ckpt_path={ckpt}"))
    a, b = full["method"].state_dict(), resumed["method"].state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]) if torch.is_tensor(a[k]) else a[k] == b[k], k
    assert resumed["results"] == full["results"]
    assert full["datamodule"].sampler.allocation() == resumed["datamodule"].sampler.allocation()


def test_report_shows_the_extra_outputs(toy_run, tmp_path):
    import csv

    from lightrestore.reporting.report import write_summary

    tmp, _, _ = toy_run
    write_summary([tmp / "run"], out=tmp_path)
    md = (tmp_path / "summary.md").read_text()
    for output in ("after_F", "G_1"):
        assert f"## PSNR (dB) per level, output {output}, test set" in md
        assert f"## PSNR (dB) per level, output {output}, test variant: centered" in md
    assert "output input" not in md  # already the input PSNR of the results
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert {r["output"] for r in rows} == {"restored", *EXTRA_OUTPUTS}
    assert sum(r["output"] == "after_F" for r in rows) == 12


def test_evaluate_and_restore_go_through_the_method(toy_run, tmp_path):
    tmp, out, _ = toy_run
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    ev = run_evaluate(compose_cfg(tmp_path / "ev", f"ckpt={ckpt}", config_name="evaluate", smoke=False))
    assert isinstance(ev["method"], TwoNetMethod)
    doc = json.loads((tmp_path / "ev" / "run" / "results.json").read_text())
    assert doc["levels"] == json.loads((tmp / "run" / "results.json").read_text())["levels"]
    assert set(doc["outputs"]) == set(EXTRA_OUTPUTS)
    # restore: g_net(f_net(x)) of the trained weights (the method has no single `model`)
    src = tmp_path / "in.png"
    img = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    Image.fromarray(img).save(src)
    (dst,) = run_restore(compose_cfg(tmp_path / "re", f"ckpt={ckpt}", f"input={src}",
                                     f"output={tmp_path / 'out'}", config_name="restore", smoke=False))  # fmt: skip
    method = out["method"].cpu().eval()
    with torch.no_grad():
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
        want = (method.g_net(method.f_net(x))[0].clamp(0, 1) * 255).round().byte()
    got = torch.from_numpy(np.array(Image.open(dst))).permute(2, 0, 1)
    assert torch.equal(got, want)


def test_init_from_loads_named_networks_strictly(toy_run, tmp_path):
    tmp, out, _ = toy_run
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    trained = out["method"].state_dict()
    method = build(toy_cfg(tmp_path / "a"))["method"]
    before = {k: v.clone() for k, v in method.state_dict().items()}
    assert init_weights(method, ckpt, ["f_net"]) == ["f_net"]
    now = method.state_dict()
    for k in now:
        if k.startswith("f_net."):
            assert torch.equal(now[k], trained[k].cpu()), k
        elif k.startswith(("g_net.", "d_net.")):
            assert torch.equal(now[k], before[k]), k  # untouched
    # a mapping: this run's g_net from the checkpoint's f_net (same architecture)
    init_weights(method, ckpt, {"g_net": "f_net"})
    assert torch.equal(method.g_net.tail.weight, trained["f_net.tail.weight"].cpu())
    # the whole method through the CLI key
    cfg = toy_cfg(tmp_path / "b", f"init_from={ckpt}", "trainer.max_epochs=1", *WATCH)
    for k, v in watch_of(run(cfg)).start.items():
        if k.split(".")[0] in ("f_net", "g_net", "d_net"):
            assert torch.equal(v, trained[k].cpu()), k
    # mismatches: a network the checkpoint lacks, a different width, an unknown name
    odl = build(compose_cfg(tmp_path / "c", "experiment=ondemand_inpaint"))["method"]
    with pytest.raises(CheckpointError, match=r"has no network 'model' \(it has \['d_net', 'f_net', 'g_net'\]\)"):
        init_weights(odl, ckpt)
    wide = toy_method_config(f_net={"_target_": "toy_methods.SmallNet", "channels": 3, "width": 4})
    with pytest.raises(CheckpointError, match="network 'f_net' .* does not fit this run's 'f_net'"):
        init_weights(build(toy_cfg(tmp_path / "d", method=wide))["method"], ckpt, ["f_net"])
    with pytest.raises(ConfigError, match=r"names \['h_net'\]"):
        init_weights(method, ckpt, ["h_net"])


def test_hard_mining_and_the_policies_apply_to_any_method(tmp_path):
    """The hard-mining policy wraps the toy method's configured loss; every policy starts
    from a clean sampler state, whatever a previous policy left."""
    cfg = toy_cfg(tmp_path, "curriculum=hard_mining", "curriculum.warmup_epochs=1",
                  "trainer.max_epochs=2")  # fmt: skip
    out = run(cfg)
    method, dm = out["method"], out["datamodule"]
    assert isinstance(method.loss, HardMiningLoss) and method.loss.fraction == 0.1
    assert type(method.loss.base) is PixelLoss
    assert "loss.base" not in " ".join(method.state_dict())  # checkpoints see the plain loss
    assert type(dm.train_set).__name__ == "PoolDataset"
    dm.sampler.set_weights([0, 0, 0, 0, 1])
    dm.sampler.fixed = {"severity": 3}
    trainer = SimpleNamespace(datamodule=dm)
    OnDemandPolicy().setup(trainer, method, "fit")
    assert dm.sampler.weights.tolist() == [0.2] * 5 and dm.sampler.fixed is None
    assert type(dm.train_set).__name__ == "RandomCropDataset"
    assert method.loss.fraction is None  # hard mining off
    HardMiningPolicy(pool_size=16).setup(trainer, method, "fit")
    assert type(dm.train_set).__name__ == "PoolDataset"


def test_hard_mining_wrapper_is_invisible_in_state_dicts():
    from lightrestore.losses.pspl import PSPLoss

    m = RestorationModule(torch.nn.Conv2d(1, 1, 1), PSPLoss(), optimizer=torch.optim.SGD)
    m.loss.t = 0.25
    plain = m.state_dict()
    m.loss = HardMiningLoss(m.loss, 0.5)
    wrapped = m.state_dict()
    assert plain.keys() == wrapped.keys() and wrapped["loss._extra_state"] == {"t": 0.25}
    fresh = RestorationModule(torch.nn.Conv2d(1, 1, 1), HardMiningLoss(PSPLoss()), optimizer=torch.optim.SGD)
    fresh.load_state_dict(plain)  # strict: the same keys
    assert fresh.loss.base.t == 0.25
    with pytest.raises(ConfigError, match="per-sample form"):
        HardMiningLoss(torch.nn.MSELoss())


def test_bad_method_settings_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ConfigError, match=r"method.frozen names \['h_net'\].*use some of"):
        build(toy_cfg(tmp_path / "a", method=toy_method_config(frozen=["h_net"])))["method"].setup("fit")
    adam = {"_target_": "torch.optim.Adam", "_partial_": True}
    bad_opt = toy_method_config(optimizer={"g_net": adam, "e_net": adam})
    method = build(toy_cfg(tmp_path / "b", method=bad_opt))["method"]
    with pytest.raises(ConfigError, match="entry 'e_net', which is not a sub-network"):
        method.configure_optimizers()
    auto = RestorationModule(SmallNet(), PixelLoss(), optimizer={"model": adam})
    with pytest.raises(ConfigError, match="must use manual optimisation"):
        auto.configure_optimizers()


def test_single_network_methods_record_their_network_and_use_param_groups(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=ondemand_inpaint")
    with open_dict(cfg):
        cfg.method.param_groups = {"model.head_conv": {"lr": 1.0e-5}}
    method = build(cfg)["method"]
    assert list(method.networks()) == ["model"]
    (head, rest) = method.configure_optimizers().param_groups
    assert head["lr"] == 1e-5 and rest["lr"] == 2e-4
    assert {id(p) for p in head["params"]} == {id(p) for p in method.model.head_conv.parameters()}
    record: dict = {}
    method.on_save_checkpoint(record)
    assert record["lightrestore"]["networks"] == {
        "model": "lightrestore.models.odl_autoencoder.ODLAutoencoder"
    }
    assert record["lightrestore"]["model"] == "ODLAutoencoder"


def test_methods_that_need_gradients_at_evaluation_run_without_inference_mode(tmp_path):
    class GradAtEval(RestorationModule):
        needs_grad_at_eval = True

    from lightrestore.build import trainer_options

    cfg = compose_cfg(tmp_path, "experiment=ondemand_inpaint")
    method = GradAtEval(SmallNet(), PixelLoss(), optimizer=torch.optim.SGD)
    assert trainer_options(cfg, method).get("inference_mode") is False
    assert "inference_mode" not in trainer_options(cfg, build(cfg)["method"])


def test_resume_refuses_a_checkpoint_whose_sub_network_differs(toy_run, tmp_path):
    from lightrestore.cli.train import resolve_ckpt_path

    tmp, _, _ = toy_run
    ckpt = tmp / "run" / "checkpoints" / "last.ckpt"
    wide = toy_method_config(g_net={"_target_": "toy_methods.SmallNet", "channels": 3, "width": 4})
    cfg = toy_cfg(tmp_path, f"ckpt_path={ckpt}", method=wide)
    with pytest.raises(CheckpointError, match=r"method.g_net.width=<absent> but this run has method.g_net.width=4"):
        resolve_ckpt_path(cfg)
    assert resolve_ckpt_path(toy_cfg(tmp_path / "same", f"ckpt_path={ckpt}")) == str(ckpt)


@pytest.mark.slow
def test_toy_method_under_ddp_from_the_command_line(tmp_path):
    """2 CPU processes (gloo): the method's own config file, found through Hydra's search
    path; one optimiser per network needs DDP's unused-parameter detection (the builder
    turns it on), and every output is scored on the gathered pairs."""
    from helpers import REPO, run_cli

    out = run_cli("experiment=ondemand_inpaint", "debug=smoke", "trainer=ddp", "trainer.accelerator=cpu",
                  "trainer.devices=2", f"hydra.searchpath=[file://{REPO / 'tests' / 'conf'}]",
                  "method=toy_two_net", f"paths.log_dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (res,) = tmp_path.glob("ondemand_inpaint/runs/*/results.json")
    doc = json.loads(res.read_text())
    assert doc["method"] == "toy_two_net" and set(doc["outputs"]) == set(EXTRA_OUTPUTS)
    assert [r["count"] for r in doc["outputs"]["after_F"]["default"]["levels"].values()] == [4] * 6


def test_the_nan_guard_stops_a_manually_optimised_method_before_its_update(tmp_path):
    from lightrestore.callbacks.reliability import NonFiniteLossError

    nan_g = toy_method_config(g_net={"_target_": "helpers.NaNAfter", "after": 3})  # 4th batch
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 1, step 6.*last good checkpoint"):
        run(toy_cfg(tmp_path, "trainer.max_epochs=3", method=nan_g))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
