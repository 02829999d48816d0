"""LIRA from the command line: experiments/lira_pipeline.sh runs fork -> join -> replay GAN
-> incremental with tiny widths and resumes at the first unfinished stage;
experiments/lira_table4.sh adds the baselines from the same replay-GAN checkpoint and writes
the old / new task table; every LIRA experiment composes; the incremental stage never
reads old-task training data; the chained stages refuse to start without their input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import REPO, compose_cfg, run_cli
from lightning.pytorch import Callback, Trainer

from lightrestore.build import build
from lightrestore.config import config_dir

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["debug=smoke", "model.blocks=2", "+lira_gan_width=4", "data.val_per_level=1",
        "data.test_per_level=1", "trainer.max_epochs=1"]  # fmt: skip
LIRA = sorted(p.stem for p in (config_dir() / "experiment").glob("lira_*.yaml"))


def _script(name: str, *args: str, cwd, env_extra=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable, WANDB_MODE="offline", OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO / "tests"), **(env_extra or {}))  # fmt: skip
    return subprocess.run(["bash", str(REPO / "experiments" / name), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip


def _newest(log, name):
    return sorted((log / name / "runs").iterdir())[-1]


def test_every_lira_experiment_composes(tmp_path):
    assert set(LIRA) >= {"lira_fork", "lira_join", "lira_replay_gan", "lira_incremental",
                         "lira_ewc", "lira_pnn", "lira_lwf", "lira_setting_a", "lira_finetune",
                         "lira_joint"}  # fmt: skip
    for name in LIRA:
        cfg = compose_cfg(tmp_path, f"experiment={name}", "model.blocks=2", "+lira_gan_width=4")
        objs = build(cfg)
        assert cfg.task_name == name and objs["method"].method_name == cfg.method.name
    # the paper's values
    cfg = compose_cfg(tmp_path, "experiment=lira_incremental", smoke=False)
    m = cfg.method
    assert (m.old_weight, m.warmup_epochs, m.replay) == (0.2, 5, "gan")
    assert m.param_groups.base.lr == pytest.approx(1e-4 * 1e-3) and cfg.optimizer.lr == 1e-4
    assert list(cfg.optimizer.betas) == [0.9, 0.999] and "Cosine" in cfg.scheduler._target_
    assert (cfg.model.experts, cfg.model.blocks, m.generator.blocks) == (3, 6, 9)
    gan = compose_cfg(tmp_path, "experiment=lira_replay_gan", smoke=False).method
    assert gan.cycle_weight == 10.0
    # one learning rate for every part where the paper says so (an empty mapping in an
    # experiment file would merge into lira_incremental's {base: {lr: 1e-7}}, not replace it)
    for name, one_rate in (("lira_finetune", True), ("lira_ewc", True), ("lira_setting_a", False)):
        method = build(compose_cfg(tmp_path, f"experiment={name}", "model.blocks=2",
                                   "+lira_gan_width=4"))["method"]  # fmt: skip
        method.setup("fit")
        opt = method.configure_optimizers()
        opt = opt["optimizer"] if isinstance(opt, dict) else opt
        rates = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
        base = {rates[id(p)] for p in method.base.parameters()}
        assert base == ({1e-4} if one_rate else {1e-7}), name
    joint = compose_cfg(tmp_path, "experiment=lira_joint").task.degradation
    assert joint.old_fraction == 0.5
    darkness = compose_cfg(tmp_path, "experiment=lira_incremental", "task=blended_darkness")
    assert list(darkness.task.degradation.extra_factors) == ["darkness"]


class _Spy(Callback):
    """Records the new-task flags of every training batch."""

    def __init__(self):
        self.flags = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.flags.append(batch.params["new_task"].clone())


def test_the_incremental_stage_never_reads_old_training_data(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=lira_incremental", "model.blocks=2",
                      "+lira_gan_width=4", "method.warmup_epochs=0")  # fmt: skip
    objs = build(cfg)
    dm, method = objs["datamodule"], objs["method"]
    seen = []
    original = dm.degradation.sample

    def sample(levels, shape, generator=None, fixed=None):
        seen.append(dict(fixed or {}))
        return original(levels, shape, generator, fixed)

    dm.degradation.sample = sample
    spy = _Spy()
    trainer = Trainer(max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", callbacks=[spy])  # fmt: skip
    trainer.fit(method, datamodule=dm)
    assert spy.flags and all(bool((f == 1).all()) for f in spy.flags)  # every sample is new-task
    assert all(f.get("new_task", 1) != 0 for f in seen)  # no old-task pairs were generated
    # the old task's test set exists only for evaluation
    dm.setup("test")
    assert "old" in dm.test_sets and bool((dm.test_sets["old"].params["new_task"] == 0).all())
    # a batch with old-task samples stops training
    dm.degradation.old_fraction = 0.5
    trainer = Trainer(max_steps=2, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu")  # fmt: skip
    with pytest.raises(Exception, match="never read the old task"):
        trainer.fit(method, datamodule=dm)


@pytest.mark.parametrize(
    ("experiment", "message"),
    [("lira_replay_gan", "lira_join"), ("lira_incremental", "lira_replay_gan")],
)
def test_chained_stages_need_init_from(tmp_path, experiment, message):
    out = run_cli(f"experiment={experiment}", *TINY, f"paths.log_dir={tmp_path}", cwd=tmp_path)
    assert out.returncode == 2 and "init_from=" in out.stderr and message in out.stderr


@pytest.mark.slow
def test_pipeline_and_table4_scripts(tmp_path):
    log = tmp_path / "logs"
    args = [*TINY, f"paths.log_dir={log}"]
    out = _script("lira_pipeline.sh", *args, cwd=tmp_path, env_extra={"WARMUP": "0"})
    assert out.returncode == 0, out.stderr[-3000:]
    fork, join = _newest(log, "lira_fork"), _newest(log, "lira_join")
    gan, inc = _newest(log, "lira_replay_gan"), _newest(log, "lira_incremental")
    for earlier, later in ((fork, join), (join, gan), (gan, inc)):
        assert (
            str(earlier / "checkpoints" / "last.ckpt")
            in (later / ".hydra" / "config.yaml").read_text()
        )
    doc = json.loads((inc / "results.json").read_text())
    assert {"old_task", "new_task"} <= set(doc["outputs"]) and "old" in doc["variants"]
    # the base network the incremental stage started from is the join stage's
    gan_state = torch.load(gan / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    join_state = torch.load(join / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    base = {k[len("base_net.") :]: v for k, v in gan_state.items() if k.startswith("base_net.")}
    model = {k[len("model.") :]: v for k, v in join_state.items() if k.startswith("model.")}
    assert base.keys() == model.keys() and all(torch.equal(base[k], model[k]) for k in base)
    assert "Old and new task" in (inc / "summary.md").read_text()
    # everything finished: a second call trains nothing
    again = _script("lira_pipeline.sh", *args, cwd=tmp_path, env_extra={"DRY_RUN": "1"})
    assert again.returncode == 0 and again.stderr.count("finished in") == 4
    # the join stage interrupted (a checkpoint, no results): it resumes, the rest follows
    saved = (join / "results.json").read_text()
    (join / "results.json").unlink()
    resumed = _script("lira_pipeline.sh", *args, cwd=tmp_path, env_extra={"DRY_RUN": "1"})
    assert "stage lira_join: resuming" in resumed.stderr and "resume=true" in resumed.stdout
    (join / "results.json").write_text(saved)
    # Table 4: the baselines from the same replay-GAN checkpoint, one old / new table
    table = _script("lira_table4.sh", *args, cwd=tmp_path,
                    env_extra={"METHODS": "lira_incremental,lira_finetune,lira_pnn,lira_joint",
                               "WARMUP": "0"})  # fmt: skip
    assert table.returncode == 0, table.stderr[-3000:]
    sweep = sorted((log / "lira_table4_haze" / "multiruns").iterdir())[-1]
    summary = (sweep / "summary.md").read_text()
    rows = [ln for ln in summary.split("Old and new task")[1].splitlines() if ln.startswith("| ")]
    assert len(rows) == 1 + 4  # header + one row per method
    assert "stage lira_replay_gan: finished" in table.stderr  # not trained again
    assert (sweep / "summary_lifelong.csv").is_file()


@pytest.mark.parametrize("task", ["blended", "blended_index"])
def test_curricula_run_on_blended_levels(tmp_path, task):
    """The groups (or the combined-index ladder) are ordinary levels: on-demand learning
    re-allocates them, and every level is scored."""
    out = run_cli(f"task={task}", "curriculum=ondemand", "debug=smoke", "data.val_per_level=2",
                  "data.test_per_level=2", f"paths.log_dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    run = next((tmp_path / "train" / "runs").iterdir())
    doc = json.loads((run / "results.json").read_text())
    n = 3 if task == "blended" else 6
    assert sorted(map(int, doc["levels"])) == list(range(1, n + 1))
    if task == "blended":
        assert [doc["levels"][str(i)]["range"] for i in (1, 2, 3)] == [
            "mild 9-11", "moderate 12-17", "severe 18-20"]  # fmt: skip
    rows = (run / "allocation.csv").read_text().splitlines()
    assert len(rows) >= 3 and rows[1] != rows[2]  # the second epoch's allocation differs
