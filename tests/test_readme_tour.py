"""README's guided tour, run as written (smoke-sized), so the README cannot drift from the code.

Every command in the ``bash`` blocks of the section "## A guided tour" runs in a fresh
folder, the way a new user types it, with three changes that keep it test-sized and
offline: training commands (``python -m lightrestore ...``, single runs and sweeps) get
``debug=smoke``; the cluster sweep runs through submitit's local executor instead of
SLURM (``hydra/launcher=slurm hydra.launcher.partition=<p>`` ->
``hydra/launcher=submitit_local``: the same launcher plugin, no scheduler); the files a
user brings (a photo, its mask, the VGG-11-BN weights) are made here. The training
commands are independent and run two at a time; then the others (shell variables,
restore, report) run in order in one shell.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import REPO
from PIL import Image

SECTION = "## A guided tour"
SLURM = re.compile(r"hydra/launcher=slurm(\s+hydra\.launcher\.partition=\S+)?")


def tour_commands(readme: str) -> list[str]:
    """The commands of the tour's ``bash`` blocks (continuations joined, comments dropped)."""
    start = readme.index(SECTION)
    end = readme.find("\n## ", start + len(SECTION))
    section = readme[start : end if end > 0 else None]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()  # a trailing comment
            if line and not line.startswith("#"):
                commands.append(re.sub(r"\s+", " ", line))
    return commands


def is_training(command: str) -> bool:
    """``python -m lightrestore ...`` (a run or a sweep), not evaluate / restore / report."""
    return command.startswith("python -m lightrestore ")


def smoke(command: str) -> str:
    """The test-sized, scheduler-free version of a tour command."""
    if is_training(command):
        command = SLURM.sub("hydra/launcher=submitit_local", command) + " debug=smoke"
    if command.startswith("python "):
        command = shlex.quote(sys.executable) + command[len("python") :]
    return command


def _user_files(folder: Path) -> None:
    """What the tour asks the user to bring: a photo, its mask, VGG-11-BN weights."""
    from skimage import data

    photo = data.astronaut()[::4, ::4]  # 128 x 128 RGB
    Image.fromarray(np.ascontiguousarray(photo)).save(folder / "my_photo.jpg", quality=90)
    mask = np.zeros(photo.shape[:2], dtype=np.uint8)
    mask[40:60, 50:74] = 255  # white = missing
    Image.fromarray(mask).save(folder / "my_mask.png")
    from lightrestore.models.vgg import vgg11_bn_features

    torch.manual_seed(0)
    torch.save(vgg11_bn_features().state_dict(), folder / "vgg11_bn-8dd8db1b.pth")


def _run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="1",
               PYTHONUNBUFFERED="1")  # fmt: skip
    return subprocess.run(["bash", "-euo", "pipefail", "-c", command], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_tour_lists_one_run_per_paper_a_photo_a_comparison_and_a_cluster_sweep():
    commands = tour_commands((REPO / "README.md").read_text())
    training = " ".join(c for c in commands if is_training(c))
    for experiment in (
        "ondemand_inpaint",
        "dlnet_inpaint",
        "golf_f",
        "lira_fork",
        "sr_srcnn_x2_pspl",
    ):
        assert f"experiment={experiment}" in training, experiment
    assert any(c.startswith("python -m lightrestore.restore") for c in commands)
    assert any(c.startswith("python -m lightrestore.report") and "--html" in c for c in commands)
    assert any(c.startswith("python -m lightrestore -m ") and "hydra/launcher=slurm" in c
               for c in commands)  # fmt: skip
    assert smoke("python -m lightrestore -m hydra/launcher=slurm hydra.launcher.partition=gpu x=1") \
        == f"{shlex.quote(sys.executable)} -m lightrestore -m hydra/launcher=submitit_local x=1 debug=smoke"  # fmt: skip


@pytest.mark.slow
def test_every_tour_command_runs(tmp_path):
    commands = tour_commands((REPO / "README.md").read_text())
    _user_files(tmp_path)
    training = [c for c in commands if is_training(c)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = list(pool.map(lambda c: (c, _run(smoke(c), tmp_path)), training))
    for command, proc in done:
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        out = proc.stdout + proc.stderr
        if " -m " in command.split("lightrestore", 1)[1][:4]:  # a sweep
            assert "summary written to" in out, command
        else:  # what the tour says a run prints at its end
            assert "Against the corrupted input" in out, command
    rest = [smoke(c) for c in commands if not is_training(c)]
    proc = _run("\n".join(rest), tmp_path)
    assert proc.returncode == 0, f"{rest}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    restored = Image.open(tmp_path / "restored" / "my_photo.png")
    assert restored.size == Image.open(tmp_path / "my_photo.jpg").size
    html = (tmp_path / "comparison" / "report.html").read_text()
    assert "ondemand" in html and "rigid_joint" in html
    assert (tmp_path / "comparison" / "summary.md").is_file()
    sweeps = sorted((tmp_path / "logs" / "ondemand_inpaint" / "multiruns").glob("*/summary.md"))
    assert len(sweeps) == 2  # the local sweep and the cluster one
