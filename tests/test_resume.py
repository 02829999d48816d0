"""Exact resume after an interruption and after a SLURM requeue, on the representative set
(tests/representative.py: one run per kind of state; debug=smoke, CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import SLURM_ENV, compose_cfg
from representative import EXPERIMENTS, REPRESENTATIVE, REQUEUE

from lightrestore.cli.train import run

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


def _interrupted_then_resumed(tmp: Path, overrides: tuple[str, ...], step: int):
    cut = compose_cfg(tmp / "cut", *overrides, *COMMON,
                      "+callbacks.interrupt._target_=helpers.InterruptAt", f"+callbacks.interrupt.step={step}")  # fmt: skip
    with pytest.raises(SystemExit):  # Lightning stops after the step with SIGTERMException
        run(cut)
    ckpt = tmp / "cut" / "run" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert saved["global_step"] == step
    return run(compose_cfg(tmp / "resumed", *overrides, *COMMON, f"ckpt_path={ckpt}"))


@pytest.mark.slow
@pytest.mark.parametrize("label", REPRESENTATIVE)
def test_interrupted_run_resumes_exactly(tmp_path, label):
    overrides = REPRESENTATIVE[label]
    full = _state(run(compose_cfg(tmp_path / "full", *overrides, *COMMON)))
    # step 4 = after the first batch of epoch 1: a mid-epoch interruption
    resumed = _state(_interrupted_then_resumed(tmp_path, overrides, step=4))
    assert resumed[1] == full[1]  # allocation history, images per level included
    assert torch.equal(resumed[2], full[2])  # sampler weights
    for k, v in full[3].items():
        assert _same(resumed[3][k], v), k  # the same final weights, bit for bit
    assert resumed[0] == full[0]  # the same test results
    res_full = json.loads((tmp_path / "full" / "run" / "results.json").read_text())["levels"]
    res_resumed = json.loads((tmp_path / "resumed" / "run" / "results.json").read_text())["levels"]
    assert res_full == res_resumed
    if "staged" in label or "cumulative" in label:  # the schedule really moved
        assert full[1][0]["weights"] != full[1][1]["weights"]


def test_representative_set_names_real_experiments_and_covers_the_stateful_parts():
    assert set(REQUEUE) <= set(REPRESENTATIVE)
    chosen = [dict(o.split("=", 1) for o in ov) for ov in REPRESENTATIVE.values()]
    assert {c["experiment"] for c in chosen} <= set(EXPERIMENTS)
    kinds = {c.get("curriculum") or c["experiment"].split("_")[0] for c in chosen}
    assert {"ondemand", "staged", "cumulative_anti", "hard_mining", "fixated", "rigid"} <= kinds
    assert any(c["experiment"].endswith("_pspl") for c in chosen)


@pytest.mark.slow
@pytest.mark.parametrize("label", REQUEUE)
def test_slurm_requeue_resumes_exactly(tmp_path, label, monkeypatch):
    """SLURM's requeue signal arrives in the middle of a step; Lightning's auto-requeue
    saves hpc_ckpt_N.ckpt (at the end of that step) and the requeued job, in the same run
    folder, continues exactly."""
    for k, v in SLURM_ENV.items():
        monkeypatch.setenv(k, v)
    full = _state(run(compose_cfg(tmp_path / "full", *REPRESENTATIVE[label], *COMMON)))
    cut = compose_cfg(tmp_path / "job", *REPRESENTATIVE[label], *COMMON,
                      "+callbacks.signal._target_=helpers.SlurmSignalAt", "+callbacks.signal.step=3")  # fmt: skip
    with pytest.raises(SystemExit):
        run(cut)
    hpc = tmp_path / "job" / "run" / "hpc_ckpt_1.ckpt"
    assert hpc.is_file() and torch.load(hpc, weights_only=True)["global_step"] == 4
    requeued = _state(
        run(compose_cfg(tmp_path / "job", *REPRESENTATIVE[label], *COMMON))
    )  # finds hpc_ckpt
    # the first job's metrics are kept (Lightning's CSV logger would delete them)
    first = (tmp_path / "job" / "run" / "csv_part1" / "metrics.csv").read_text().splitlines()
    assert "epoch" in first[0].split(",") and len(first) > 2
    assert requeued[1] == full[1] and torch.equal(requeued[2], full[2])
    for k, v in full[3].items():
        assert _same(requeued[3][k], v), k
    assert requeued[0] == full[0]
