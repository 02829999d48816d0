"""The Golf Optimizer from the command line: experiments/golf.sh chains phase f and phase g
(skipping a finished phase, resuming an interrupted one), on the embedded motion blur and
on a GoPro-shaped folder; the train-time checks name their fixes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, make_gopro, run_cli

SMOKE = ["debug=smoke", "loss=mse", "data.val_per_level=1", "data.test_per_level=1",
         "trainer.max_epochs=1"]  # fmt: skip


def _golf(*args: str, cwd, dry: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, WANDB_MODE="offline", OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO / "tests"))  # fmt: skip
    if dry:
        env["DRY_RUN"] = "1"
    return subprocess.run(["bash", str(REPO / "experiments" / "golf.sh"), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip


def _runs(log_dir, name):
    return sorted((log_dir / name / "runs").iterdir())


@pytest.mark.slow
def test_golf_script_chains_and_resumes_the_phases(tmp_path):
    log = tmp_path / "logs"
    out = _golf(*SMOKE, f"paths.log_dir={log}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    f_run, g_run = _runs(log, "golf_f")[-1], _runs(log, "golf_g")[-1]
    doc = json.loads((g_run / "results.json").read_text())
    assert {"after_F", "G_1", "G_2", "G_3"} <= set(doc["outputs"])
    cfg = (g_run / ".hydra" / "config.yaml").read_text()
    assert str(f_run / "checkpoints" / "last.ckpt") in cfg  # phase g starts from phase f
    assert (g_run / "summary.md").is_file()
    # run again: both phases are finished and skipped
    again = _golf(*SMOKE, f"paths.log_dir={log}", cwd=tmp_path, dry=True)
    assert again.returncode == 0 and "phase f: finished" in again.stderr
    assert "phase g: finished" in again.stderr and again.stdout.strip() == ""  # nothing to run
    # phase g interrupted (a checkpoint, no results): it resumes, phase f stays finished
    (g_run / "results.json").unlink()
    resumed = _golf(*SMOKE, f"paths.log_dir={log}", cwd=tmp_path, dry=True)
    assert "phase g: resuming" in resumed.stderr
    assert "experiment=golf_g resume=true" in resumed.stdout


@pytest.mark.slow
def test_golf_on_a_gopro_folder(tmp_path):
    root = make_gopro(tmp_path / "gopro")
    log = tmp_path / "logs"
    out = _golf("gopro", *SMOKE, f"data.source.root={root}", "data.source.load_size=null",
                "data.test_tile=32", f"paths.log_dir={log}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    doc = json.loads((_runs(log, "golf_gopro_g")[-1] / "results.json").read_text())
    assert list(doc["levels"]) == ["1"] and "G_3" in doc["outputs"]
    assert doc["levels"]["1"]["count"] == 8  # 2 test pairs x 4 tiles of 32 px covering 40x48


@pytest.mark.parametrize(
    ("args", "message"),
    [(["experiment=golf_f"], "loss.perceptual.weights is not set"),
     (["experiment=golf_f", "loss.perceptual.weights=/nonexistent/vgg.pth"], "does not exist"),
     (["experiment=golf_g", "loss=mse"], "give init_from=")],
)  # fmt: skip
def test_train_time_checks_name_the_fix(tmp_path, args, message):
    out = run_cli(*args, "debug=smoke", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr
    assert not any((tmp_path / name).exists() for name in ("golf_f", "golf_g"))  # no run folder
