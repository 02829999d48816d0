"""Exact resume after an interruption, for every experiment (debug=smoke, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import SLURM_ENV, compose_cfg

from lightrestore.cli.train import run
from lightrestore.config import config_dir

EXPERIMENTS = sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
# 3 batches of 8 per epoch, 2 epochs; deterministic kernels
COMMON = ["trainer.max_epochs=2", "data.train_samples_per_epoch=24", "trainer.deterministic=true"]


def _state(out):
    dm, method = out["datamodule"], out["method"]
    params = {
        k: v.detach().clone() if torch.is_tensor(v) else v for k, v in method.state_dict().items()
    }
    return out["results"], dm.sampler.allocation(), dm.sampler.weights.clone(), params


def _same(a, b) -> bool:
    """Bit-equal tensors, equal extra states (e.g. PSPL's ``t``)."""
    return torch.equal(a, b) if torch.is_tensor(a) else a == b


def _interrupted_then_resumed(tmp: Path, experiment: str, step: int):
    cut = compose_cfg(tmp / "cut", f"experiment={experiment}", *COMMON,
                      "+callbacks.interrupt._target_=helpers.InterruptAt", f"+callbacks.interrupt.step={step}")  # fmt: skip
    with pytest.raises(SystemExit):  # Lightning stops after the step with SIGTERMException
        run(cut)
    ckpt = tmp / "cut" / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert saved["global_step"] == step
    return run(
        compose_cfg(tmp / "resumed", f"experiment={experiment}", *COMMON, f"ckpt_path={ckpt}")
    )


@pytest.mark.slow
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_interrupted_run_resumes_exactly(tmp_path, experiment):
    full = _state(run(compose_cfg(tmp_path / "full", f"experiment={experiment}", *COMMON)))
    # step 4 = after the first batch of epoch 1: a mid-epoch interruption
    resumed = _state(_interrupted_then_resumed(tmp_path, experiment, step=4))
    assert resumed[1] == full[1]  # allocation history, images per level included
    assert torch.equal(resumed[2], full[2])  # sampler weights
    for k, v in full[3].items():
        assert _same(resumed[3][k], v), k  # the same final weights, bit for bit
    assert resumed[0] == full[0]  # the same test results
    res_full = json.loads((tmp_path / "full" / "run" / "results.json").read_text())["levels"]
    res_resumed = json.loads((tmp_path / "resumed" / "run" / "results.json").read_text())["levels"]
    assert res_full == res_resumed


# SLURM's requeue path does not depend on the experiment (the per-experiment state is
# covered by the interruption test above over every experiment): a representative set,
# one per task family, plus PSPL's extra state and LapSRN's multi-scale outputs
REQUEUE = ["ondemand_inpaint", "ondemand_interp", "rigidjoint_deblur", "fixated_hard_denoise",
           "sr_edsr_x2_pspl", "sr_lapsrn_x4", "sr_drrn_x3"]  # fmt: skip


def test_requeue_set_is_a_set_of_experiments():
    assert set(REQUEUE) <= set(EXPERIMENTS)


@pytest.mark.slow
@pytest.mark.parametrize("experiment", REQUEUE)
def test_slurm_requeue_resumes_exactly(tmp_path, experiment, monkeypatch):
    """SLURM's requeue signal arrives in the middle of a step; Lightning's auto-requeue
    saves hpc_ckpt_N.ckpt (at the end of that step) and the requeued job, in the same run
    folder, continues exactly."""
    for k, v in SLURM_ENV.items():
        monkeypatch.setenv(k, v)
    full = _state(run(compose_cfg(tmp_path / "full", f"experiment={experiment}", *COMMON)))
    cut = compose_cfg(tmp_path / "job", f"experiment={experiment}", *COMMON,
                      "+callbacks.signal._target_=helpers.SlurmSignalAt", "+callbacks.signal.step=3")  # fmt: skip
    with pytest.raises(SystemExit):
        run(cut)
    hpc = tmp_path / "job" / "run" / "hpc_ckpt_1.ckpt"
    assert hpc.is_file() and torch.load(hpc, weights_only=True)["global_step"] == 4
    requeued = _state(
        run(compose_cfg(tmp_path / "job", f"experiment={experiment}", *COMMON))
    )  # finds hpc_ckpt
    # the first job's metrics are kept (Lightning's CSV logger would delete them)
    first = (tmp_path / "job" / "run" / "csv_part1" / "metrics.csv").read_text().splitlines()
    assert "epoch" in first[0].split(",") and len(first) > 2
    assert requeued[1] == full[1] and torch.equal(requeued[2], full[2])
    for k, v in full[3].items():
        assert _same(requeued[3][k], v), k
    assert requeued[0] == full[0]


@pytest.mark.slow
@pytest.mark.parametrize("curriculum", ["staged", "cumulative_anti", "hard_mining"])
def test_curricula_resume_exactly(tmp_path, curriculum):
    """Curriculum schedules and the hard-mining pool continue where they stopped."""
    exp = ["experiment=ondemand_interp", f"curriculum={curriculum}"]
    full = _state(run(compose_cfg(tmp_path / "full", *exp, *COMMON)))
    cut = compose_cfg(tmp_path / "cut", *exp, *COMMON,
                      "+callbacks.interrupt._target_=helpers.InterruptAt", "+callbacks.interrupt.step=4")  # fmt: skip
    with pytest.raises(SystemExit):
        run(cut)
    ckpt = tmp_path / "cut" / "run" / "checkpoints" / "last.ckpt"
    resumed = _state(run(compose_cfg(tmp_path / "resumed", *exp, *COMMON, f"ckpt_path={ckpt}")))
    assert resumed[1] == full[1] and torch.equal(resumed[2], full[2])
    for k, v in full[3].items():
        assert _same(resumed[3][k], v), k
    assert resumed[0] == full[0]
    if curriculum != "hard_mining":  # the schedule really moved: one level, then others
        assert full[1][0]["weights"] != full[1][1]["weights"]
