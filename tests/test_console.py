"""What the console and the run's log file show: every line once, the results tables,
warnings and errors in ``train.log``, no noise that tells the user nothing (Lightning's
tips, wandb's deprecation notes, resume warnings), files that follow the umask."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import run_cli

NOISE = ("💡", "anonymous setting", "LeafSpec", "Images sizes do not match",
         "dirpath has changed", "`weights_only` was not set")  # fmt: skip


def _umask(mask: int):
    return lambda: os.umask(mask)


def _run_dir(root: Path) -> Path:
    (found,) = [p.parent for p in root.rglob("train.log")]
    return found


@pytest.mark.slow
def test_console_and_log_file_of_a_run_a_resume_and_an_evaluation(tmp_path):
    logs = tmp_path / "logs"
    args = ("experiment=rigid_joint_inpaint", "debug=smoke", "logger=default",  # csv + wandb
            "+callbacks.warn._target_=helpers.WarnAtFitStart", "+callbacks.warn.text=odd data xyz",
            f"paths.log_dir={logs}")  # fmt: skip
    out = run_cli(*args, cwd=tmp_path, preexec_fn=_umask(0o022))
    assert out.returncode == 0, out.stderr[-3000:]
    console = out.stdout + out.stderr
    for noise in NOISE:
        assert noise not in console, noise
    assert console.count("GPU available") == 1  # no line twice
    run_dir = _run_dir(logs)
    log = (run_dir / "train.log").read_text()
    assert "| 6 (extra) | 31-36px |" in log and "test variant: centered" in log  # the tables
    assert "odd data xyz" in log  # a Python warning
    # files follow the umask (0666 & ~022), checkpoints included
    for f in ("results.json", "results.md", "results.csv", "allocation.csv",
              "checkpoints/last.ckpt", "train.log"):  # fmt: skip
        assert (run_dir / f).stat().st_mode & 0o777 == 0o644, f

    # a resume into a new folder: quiet, and the files follow another umask
    again = run_cli(*args, "ckpt_path=last", "trainer.max_epochs=3", cwd=tmp_path,
                    preexec_fn=_umask(0o077))  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    for noise in NOISE:
        assert noise not in again.stdout + again.stderr, noise
    resumed = max((p.parent for p in logs.rglob("results.json")), key=lambda p: p.name)
    assert resumed != run_dir and (resumed / "results.json").stat().st_mode & 0o777 == 0o600

    # an evaluation prints each line once and logs its tables
    ev = run_cli(f"ckpt={run_dir / 'checkpoints' / 'last.ckpt'}", f"paths.log_dir={logs}",
                 "trainer.enable_progress_bar=false", cwd=tmp_path, module="lightrestore.evaluate")  # fmt: skip
    assert ev.returncode == 0, ev.stderr[-3000:]
    console = ev.stdout + ev.stderr
    assert console.count("GPU available") == 1 and console.count("test set: 24 pairs") == 1
    for noise in NOISE:
        assert noise not in console, noise
    (ev_log,) = (logs / "evaluate").rglob("evaluate.log")
    assert "| 6 (extra) | 31-36px |" in ev_log.read_text()


@pytest.mark.slow
def test_errors_reach_the_log_file(tmp_path):
    out = run_cli("experiment=rigid_joint_inpaint", "debug=smoke", "model._target_=helpers.NaNAfter",
                  "+model.after=3", f"paths.log_dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 2
    log = (_run_dir(tmp_path) / "train.log").read_text()
    assert "lightrestore: error: the training loss became nan" in log
