"""Ctrl-C (SIGINT) is handled like SIGTERM: the current step finishes, ``last.ckpt`` is
saved at the step boundary, the resumed run continues exactly, the CLI exits 130; a
second Ctrl-C aborts at once and saves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import compose_cfg, run_cli

from lightrestore.cli.train import run

# BatchNorm model (a mid-step checkpoint would count one batch's statistics twice)
EXP = "experiment=rigid_joint_inpaint"
COMMON = ["trainer.max_epochs=2", "data.train_samples_per_epoch=24", "trainer.deterministic=true"]


def _weights(out) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in out["method"].state_dict().items()}


@pytest.mark.slow
def test_ctrl_c_mid_step_saves_at_the_step_end_and_resumes_exactly(tmp_path):
    full = run(compose_cfg(tmp_path / "full", EXP, *COMMON))
    cut = compose_cfg(tmp_path / "cut", EXP, *COMMON,
                      "+callbacks.sigint._target_=helpers.SigintAt", "+callbacks.sigint.step=4")  # fmt: skip
    with pytest.raises(SystemExit):  # Lightning's stop at the step boundary
        run(cut)
    ckpt = tmp_path / "cut" / "run" / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert saved["global_step"] == 5  # step 4 finished: optimiser stepped, then saved
    resumed = run(compose_cfg(tmp_path / "resumed", EXP, *COMMON, f"ckpt_path={ckpt}"))
    a, b = _weights(full), _weights(resumed)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k  # BatchNorm statistics included
    assert resumed["results"] == full["results"]


@pytest.mark.slow
def test_cli_ctrl_c_exits_130_and_a_second_one_aborts(tmp_path):
    args = (EXP, "debug=smoke", "+callbacks.sigint._target_=helpers.SigintAt",
            "+callbacks.sigint.step=2")  # fmt: skip
    once = run_cli(*args, f"paths.log_dir={tmp_path / 'once'}", cwd=tmp_path)
    assert once.returncode == 130, once.stderr[-2000:]
    assert "lightrestore: interrupted by Ctrl-C (SIGINT); resume with ckpt_path=" in once.stderr
    assert "Traceback" not in once.stderr
    last = next((tmp_path / "once").rglob("last.ckpt"))
    assert torch.load(last, weights_only=True)["global_step"] == 3  # after step 2, mid-epoch

    twice = run_cli(*args, "+callbacks.sigint.times=2", f"paths.log_dir={tmp_path / 'twice'}",
                    cwd=tmp_path)  # fmt: skip
    assert twice.returncode == 130, twice.stderr[-2000:]
    assert "aborted by a second Ctrl-C, the current step was not saved" in twice.stderr
    last = next((tmp_path / "twice").rglob("last.ckpt"))
    assert torch.load(last, weights_only=True)["global_step"] == 2  # the epoch-end checkpoint
    log = next(Path(tmp_path / "twice").rglob("train.log")).read_text()
    assert "aborted by a second Ctrl-C" in log
