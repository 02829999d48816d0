"""Config values that cannot work fail in one line (exit 2) before anything is written:
counts, epochs, seeds, level lists, crop sizes, devices, output folders, mistyped keys,
missing mandatory values; a run that fails at its start leaves no folder behind."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from helpers import compose_cfg, run_cli

from lightrestore.cli.app import suggest_key
from lightrestore.cli.train import run
from lightrestore.cli.validation import output_folder, problems
from lightrestore.errors import ConfigError


def _one_line_error(out, prog: str = "lightrestore") -> str:
    """The CLI failed with status 2 and printed one line, no traceback."""
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), out.stderr
    return lines[0]


# ---------------------------------------------------------------- the checks, key by key
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("seed=-1", "seed=-1 is outside 0..4294967295"),
        ("seed=4294967296", "seed=4294967296 is outside"),
        ("data.val_per_level=0", "data.val_per_level=0 must be a positive integer"),
        ("data.test_per_level=0", "data.test_per_level=0 must be a positive integer"),
        ("data.batch_size=0", "data.batch_size=0 must be a positive integer"),
        ("data.train_samples_per_epoch=0", "data.train_samples_per_epoch=0 must be a positive"),
        ("data.test_levels=[]", "data.test_levels=[] lists no level"),
        ("data.val_levels=[]", "data.val_levels=[] lists no level"),
        ("data.crop_size=7", "data.crop_size=7 must be a multiple of 16 for ODLAutoencoder (e.g. 16)"),
        ("data.crop_size=40", "data.crop_size=40 must be a multiple of 16 for ODLAutoencoder (e.g. 48)"),
        ("trainer.max_epochs=0", "trainer.max_epochs=0 trains nothing"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1 means no epoch limit"),
    ],
)
def test_each_bad_value_is_named_with_its_fix(tmp_path, override, message):
    found = problems(compose_cfg(tmp_path, "experiment=ondemand_inpaint", override))
    assert len(found) == 1 and found[0].startswith(message), found
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        run(compose_cfg(tmp_path / "r", "experiment=ondemand_inpaint", override))
    assert not (tmp_path / "r" / "run").exists()  # nothing written


def test_a_fixated_baseline_on_a_single_level_task_is_refused_with_the_fix(tmp_path):
    """SR tasks with one level define no easy/hard settings (ODL's fixated baselines)."""
    cfg = compose_cfg(tmp_path, "experiment=sr_edsr_x2", "curriculum=fixated_easy")
    (found,) = problems(cfg)
    assert found.startswith("the curriculum needs task.fixated.easy, which task 'sr_x2' does not")
    assert "curriculum=rigid_joint" in found
    # tasks with a ladder define both (SR with blur: DL-Net's study)
    assert problems(compose_cfg(tmp_path, "experiment=sr_edsr_x2", "task=srblur_x2",
                                "curriculum=fixated_hard")) == []  # fmt: skip


def test_good_values_pass(tmp_path):
    assert problems(compose_cfg(tmp_path, "experiment=ondemand_inpaint")) == []
    assert problems(compose_cfg(tmp_path, "trainer.max_epochs=-1", "+trainer.max_steps=5")) == []
    assert problems(compose_cfg(tmp_path, "experiment=sr_edsr_x2", smoke=False)) == []
    # models without a size constraint take any crop
    assert problems(compose_cfg(tmp_path, "experiment=sr_vdsr_x3", "data.crop_size=33")) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_a_gpu_trainer_on_a_machine_without_one(tmp_path):
    found = problems(compose_cfg(tmp_path, "trainer=gpu", smoke=False))
    assert found == [
        "trainer.accelerator=gpu but this machine has no GPU device visible to torch: use "
        "trainer=default (auto) or trainer=cpu"
    ]


def test_mandatory_values_are_named(tmp_path):
    assert problems(compose_cfg(tmp_path, config_name="restore", smoke=False), "restore") == [
        "ckpt is required: give ckpt=<value> on the command line",
        "input is required: give input=<value> on the command line",
    ]
    found = problems(compose_cfg(tmp_path, config_name="evaluate", smoke=False), "evaluate")
    assert found == ["ckpt is required: give ckpt=<value> on the command line"]


def test_output_folder_checks(tmp_path, monkeypatch):
    assert output_folder(tmp_path / "new" / "deeper") == []
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "is a file" in output_folder(blocker / "runs")[0]
    long = output_folder(tmp_path / ("a" * 300) / "runs")
    assert "a folder name of 300 characters (at most 255)" in long[0]
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() == 0:  # root writes into a 0555 folder: simulate the permission
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: Path(p) != locked and real(p, m))
    else:
        locked.chmod(0o555)
    found = output_folder(locked / "logs" / "runs")
    assert len(found) == 1 and f"cannot write into {locked} (no write permission)" in found[0]
    assert "set paths.log_dir to a writable folder" in found[0]


def test_a_mistyped_key_is_answered_with_the_key_meant(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=ondemand_inpaint")
    assert suggest_key("trainer.max_epoch", cfg) == "trainer.max_epochs"
    assert suggest_key("data.val_per_levl", cfg) == "data.val_per_level"
    assert suggest_key("curiculum", cfg) == "curriculum"
    assert suggest_key("trainr.max_epochs", cfg) == "trainer.max_epochs"
    assert suggest_key("trainer.zzzzzz", cfg) is None


# ---------------------------------------------------------------- the command line
def test_cli_reports_every_problem_in_one_line_and_writes_nothing(tmp_path):
    out = run_cli("experiment=ondemand_inpaint", "debug=smoke", "seed=-1", "data.val_per_level=0",
                  "data.crop_size=7", "data.test_levels=[]", "trainer.max_epochs=0",
                  f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)  # fmt: skip
    line = _one_line_error(out)
    for part in ("seed=-1", "data.val_per_level=0", "data.crop_size=7 must be a multiple of 16",
                 "data.test_levels=[]", "trainer.max_epochs=0"):  # fmt: skip
        assert part in line
    assert not (tmp_path / "logs").exists()  # not even the run folder


def test_cli_mistyped_key(tmp_path):
    out = run_cli("debug=smoke", "trainer.max_epoch=3", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    line = _one_line_error(out)
    assert "'trainer.max_epoch' is not a key of this config: did you mean trainer.max_epochs=3?" in line
    assert not any(tmp_path.iterdir())


def test_cli_output_folder_that_cannot_be_created(tmp_path):
    (tmp_path / "file").write_text("x")
    out = run_cli("debug=smoke", f"paths.log_dir={tmp_path / 'file' / 'logs'}", cwd=tmp_path)
    assert "is a file; set paths.log_dir" in _one_line_error(out)
    out = run_cli("debug=smoke", f"paths.log_dir={tmp_path / ('x' * 300)}", cwd=tmp_path)
    assert "set a shorter paths.log_dir" in _one_line_error(out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_cli_gpu_trainer_without_a_gpu(tmp_path):
    out = run_cli("trainer=gpu", f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert "trainer.accelerator=gpu but this machine has no GPU" in _one_line_error(out)


def test_cli_missing_checkpoint_argument(tmp_path):
    for module in ("lightrestore.evaluate", "lightrestore.restore"):
        out = run_cli(f"paths.log_dir={tmp_path}", cwd=tmp_path, module=module)
        assert "ckpt is required: give ckpt=<value>" in _one_line_error(out, module)
    assert not any(tmp_path.iterdir())


def test_a_run_that_fails_at_its_start_leaves_no_folder(tmp_path):
    out = run_cli("debug=smoke", "data=folder", f"data.source.root={tmp_path / 'none'}",
                  f"paths.log_dir={tmp_path / 'logs'}", cwd=tmp_path)  # fmt: skip
    assert "does not exist" in _one_line_error(out)
    runs = tmp_path / "logs" / "train" / "runs"
    assert not runs.exists() or not any(runs.iterdir())
