"""The experiment scripts run end to end (tiny settings) and leave their summaries."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import REPO


def _script(name: str, *args: str, env: dict, cwd) -> subprocess.CompletedProcess:
    full_env = dict(os.environ, PYTHON=sys.executable, WANDB_MODE="offline", **env)
    return subprocess.run(["bash", str(REPO / "experiments" / name), *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_ondemand_table1_script(tmp_path):
    out = _script("ondemand_table1.sh", "interp", "debug=smoke", f"paths.log_dir={tmp_path}",
                  env={"EPOCHS_PER_STAGE": "1", "POLICIES": "ondemand,staged,hard_mining"}, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = next((tmp_path / "table1_interp" / "multiruns").iterdir())
    md = (sweep / "summary.md").read_text()
    for policy in ("ondemand", "staged", "hard_mining"):
        assert f"| {policy} |" in md
    assert "3/3 runs complete" in out.stdout


@pytest.mark.slow
def test_pspl_convergence_script(tmp_path):
    out = _script("pspl_convergence.sh", "debug=smoke", env={"EPOCHS": "2", "BATCHES_PER_EPOCH": "2",
                  "OUT": str(tmp_path / "conv")}, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    md = (tmp_path / "conv" / "convergence.md").read_text()
    assert "| sr_edsr_x2 |" in md and "| sr_edsr_x2_pspl" in md
    assert (tmp_path / "conv" / "convergence.png").is_file()


@pytest.mark.slow
def test_dlnet_tables_script(tmp_path):
    """The reference, then every method fine-tuned from it, then the settings table."""
    out = _script("dlnet_tables.sh", "interp", "debug=smoke", f"paths.log_dir={tmp_path}",
                  "data.test_per_image=1", env={"EPOCHS": "1"}, cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = next((tmp_path / "dlnet_tables_interp" / "multiruns").iterdir())
    md = (sweep / "summary.md").read_text()
    assert "## Test settings" in md and "| run | r15 | r45 | r75 | levels 1-5 |" in md
    for method in ("dlnet_interp_default", "dlnet_interp_joint", "dlnet_interp ",
                   "dlnet_interp_naive", "dlnet_interp_multitask"):  # fmt: skip
        assert f"| {method}" in md, method
    assert "5/5 runs complete" in out.stdout
    # every fine-tuned run started from the reference's weights
    for cfg in sweep.glob("*/.hydra/config.yaml"):
        assert "dlnet_tables_interp_reference" in cfg.read_text()
    # the baselines log their terms: naive likelihood's two losses, the 30 learned weights
    logged = {}
    for job in (d for d in sweep.iterdir() if (d / ".hydra").is_dir()):
        overrides = (job / ".hydra" / "overrides.yaml").read_text()
        header = next(job.glob("csv/**/metrics.csv")).read_text().splitlines()[0]
        logged[overrides] = header.split(",")
    naive = next(cols for o, cols in logged.items() if "dlnet_interp_naive" in o)
    multitask = next(cols for o, cols in logged.items() if "dlnet_interp_multitask" in o)
    assert {"train/loss_rec", "train/loss_lik"} <= set(naive)
    assert {f"train/mtl_weight/task_{i}" for i in (1, 30)} <= set(multitask)
