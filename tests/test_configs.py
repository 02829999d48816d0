"""Every config composes and instantiates; the configs ship with the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import REPO, compose_cfg

from lightrestore.callbacks.policies import FixatedPolicy, FixedWeightsPolicy, OnDemandPolicy
from lightrestore.cli.train import build
from lightrestore.config import config_dir

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))


def test_expected_experiments_exist():
    for task in ("inpaint", "interp", "deblur", "denoise"):
        for prefix in ("ondemand", "rigidjoint", "fixated_easy", "fixated_hard"):
            assert f"{prefix}_{task}" in EXPERIMENTS
    for model in ("srcnn", "vdsr", "drrn", "lapsrn", "edsr"):
        for scale in (2, 3, 4):
            assert (
                f"sr_{model}_x{scale}" in EXPERIMENTS and f"sr_{model}_x{scale}_pspl" in EXPERIMENTS
            )


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(tmp_path, experiment):
    cfg = compose_cfg(tmp_path, f"experiment={experiment}")
    objs = build(cfg)
    dm, method = objs["datamodule"], objs["method"]
    assert cfg.task_name == experiment and cfg.task.name.split("_")[-1] in experiment
    policy = [
        c
        for c in objs["callbacks"]
        if isinstance(c, (OnDemandPolicy, FixedWeightsPolicy, FixatedPolicy))
    ]
    assert len(policy) == 1
    expected = {
        "ondemand": OnDemandPolicy,
        "rigidjoint": FixedWeightsPolicy,
        "fixated": FixatedPolicy,
        "sr": FixedWeightsPolicy,
    }
    assert isinstance(policy[0], expected[experiment.split("_")[0]])
    # the model restores the degraded version of a training patch to the patch's shape
    c, s = cfg.task.channels, dm.crop_size
    x = torch.rand(2, c, s, s)
    degraded, _ = dm.degradation(x, torch.ones(2, dtype=torch.long))
    method.eval()
    with torch.no_grad():
        assert method(degraded).shape == x.shape
    if experiment.startswith("sr_"):
        assert (
            dm.ladder.n_levels == 1 and dm.ladder.extra_level is None and method.metric_space == "y"
        )
        assert "pspl" not in experiment or type(method.loss).__name__ == "PSPLoss"
    else:
        assert dm.ladder.n_levels == 5 and dm.ladder.extra_level == 6


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


def test_configs_ship_in_the_wheel(tmp_path):
    """A non-editable install (the wheel) carries conf/ as lightrestore/conf and finds it."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    wheel = next(Path(tmp_path).glob("lightrestore-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert "lightrestore/conf/train.yaml" in names
        assert "lightrestore/conf/experiment/ondemand_inpaint.yaml" in names
        z.extractall(tmp_path / "site")
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import lightrestore.config as c; print(c.__file__); print(c.config_dir())",
        ],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr
    module_file, conf = probe.stdout.split()
    assert module_file.startswith(str(tmp_path / "site")) and conf == str(
        tmp_path / "site" / "lightrestore" / "conf"
    )


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
