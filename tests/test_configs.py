"""Every config composes and instantiates; the configs ship with the package."""

from __future__ import annotations

import pytest
import torch
from helpers import compose_cfg, make_gopro
from lightning.pytorch import Trainer

from lightrestore.callbacks.policies import (
    DifficultyPolicy,
    FixatedPolicy,
    FixedWeightsPolicy,
    OnDemandPolicy,
)
from lightrestore.cli.train import build
from lightrestore.config import config_dir

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
#: the experiments built and trained one step below: all of them, except DL-Net's SR
#: experiments at x3 / x4, which differ from x2 only by the task's scale (every one of them
#: is composed and checked in test_dlnet_protocol), Golf's phase g experiments (phase g
#: is trained by test_golf and by the golf.sh test), and LIRA's stages (three-level blended
#: groups, chained by checkpoints: composed in test_lira_pipeline, trained by its scripts' test)
TRAINED = [e for e in EXPERIMENTS if not (e.startswith("dlnet_sr_") and not e.endswith("_x2"))
           and not (e.startswith("golf") and e.endswith("_g")) and not e.startswith("lira_")]  # fmt: skip


def test_expected_experiments_exist():
    for task in ("inpaint", "interp", "deblur", "denoise"):
        for prefix in ("ondemand", "rigid_joint", "fixated_easy", "fixated_hard"):
            assert f"{prefix}_{task}" in EXPERIMENTS
    for task in ("inpaint", "interp"):
        for suffix in ("", "_default", "_joint", "_naive", "_multitask"):
            assert f"dlnet_{task}{suffix}" in EXPERIMENTS
    for model in ("vdsr", "drrn", "idn"):
        assert all(f"dlnet_sr_{model}_x{s}" in EXPERIMENTS for s in (2, 3, 4))
    for model in ("srcnn", "vdsr", "drrn", "lapsrn", "edsr"):
        for scale in (2, 3, 4):
            assert (
                f"sr_{model}_x{scale}" in EXPERIMENTS and f"sr_{model}_x{scale}_pspl" in EXPERIMENTS
            )


@pytest.mark.parametrize("experiment", TRAINED)
def test_experiment_composes_and_instantiates(tmp_path, experiment):
    extra = []
    if experiment.startswith("golf"):  # a seeded random VGG for the perceptual loss
        extra.append("loss.perceptual.random_weights=true")
    paired = "gopro" in experiment
    if paired:  # a tiny GoPro-shaped folder
        extra.append(f"data.source.root={make_gopro(tmp_path / 'gopro')}")
    cfg = compose_cfg(tmp_path, f"experiment={experiment}", *extra)
    objs = build(cfg)
    dm, method = objs["datamodule"], objs["method"]
    assert cfg.task_name == experiment
    assert cfg.task.name.split("_")[-1] in experiment or experiment.startswith("golf_")
    policy = [
        c
        for c in objs["callbacks"]
        if isinstance(c, (OnDemandPolicy, FixedWeightsPolicy, FixatedPolicy))
    ]
    assert len(policy) == 1
    expected = {
        "ondemand": OnDemandPolicy,
        "rigid_joint": FixedWeightsPolicy,
        "fixated": FixatedPolicy,
        "sr": FixedWeightsPolicy,
        "dlnet": FixedWeightsPolicy,
        "golf": FixedWeightsPolicy,
    }
    if experiment.startswith("dlnet") and experiment.endswith("_default"):
        expected = {"dlnet": FixatedPolicy}  # DL-Net's single-setting reference
    assert isinstance(policy[0], next(v for k, v in expected.items() if experiment.startswith(k)))
    # the model restores the degraded version of a training patch to the patch's shape
    c, s = cfg.task.channels, dm.crop_size
    x = torch.rand(2, c, s, s)
    degraded = x if paired else dm.degradation(x, torch.ones(2, dtype=torch.long))[0]
    method.eval()
    with torch.no_grad():
        assert method(degraded).shape == x.shape
    if experiment.startswith("sr_"):
        assert (
            dm.ladder.n_levels == 1 and dm.ladder.extra_level is None and method.metric_space == "y"
        )
        assert "pspl" not in experiment or type(method.loss).__name__ == "PSPLoss"
    elif paired:  # real blur from files: one level
        assert dm.ladder.n_levels == 1 and dm.ladder.extra_level is None
    else:
        assert dm.ladder.n_levels == 5 and dm.ladder.extra_level == 6
    # the method reaches the task's forward model through the builder, not the DataModule
    assert method.degradation is objs["degradation"] and callable(method.degradation.operator)
    # one training step through the method's own training_step, under its policy
    policies = [c for c in objs["callbacks"] if isinstance(c, DifficultyPolicy)]
    trainer = Trainer(max_steps=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", callbacks=policies)  # fmt: skip
    before = {k: v.detach().clone() for k, v in method.named_parameters()}
    method.train()
    trainer.fit(method, datamodule=dm)
    assert trainer.global_step == 1
    after = dict(method.named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    trained = {k: p for k, p in after.items() if p.requires_grad}  # not the frozen networks
    assert trained and all(p.grad is not None for p in trained.values())  # each has a gradient
    if "pspl" not in experiment:  # PSPL's first step has almost no weight (delta = 0.001)
        assert any(not torch.equal(before[k], after[k]) for k in before)  # the optimiser stepped
    for name in getattr(method, "frozen", []):  # frozen networks do not move
        assert all(torch.equal(before[k], after[k]) for k in before if k.startswith(name + "."))


def test_paper_defaults_without_debug(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=ondemand_inpaint", smoke=False)
    assert cfg.data.batch_size == 100 and cfg.data.crop_size == 64
    assert cfg.method.optimizer.lr == 2e-4 and list(cfg.method.optimizer.betas) == [0.5, 0.999]
    model = build(cfg)["model"]
    assert model.bottleneck.weight.shape == (512, 16, 16)


def test_fixated_settings_follow_the_paper(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=fixated_hard_inpaint")
    policy = [c for c in build(cfg)["callbacks"] if isinstance(c, FixatedPolicy)][0]
    assert policy.fixed == {"severity": 32, "centered": True}


def test_slurm_launcher_config_composes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    cfg = compose_cfg(
        tmp_path, "hydra/launcher=slurm", "trainer=ddp", "hydra.launcher.partition=gpu"
    )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (
        launcher.partition == "gpu"
        and launcher.tasks_per_node == 1
        and launcher.timeout_min == 1440
    )
    assert cfg.trainer.strategy == "ddp"
