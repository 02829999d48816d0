"""Per-step host work of a run's Trainer kept to what acts: a progress bar refreshed by
time, only the callbacks that act in the run, and no per-hook profiler context."""

from __future__ import annotations

import pytest
from helpers import compose_cfg
from lightning.pytorch.callbacks import ModelCheckpoint, ProgressBar, TQDMProgressBar
from lightning.pytorch.profilers import PassThroughProfiler, SimpleProfiler

from lightrestore.build import build
from lightrestore.callbacks.checkpoint import RunCheckpoint
from lightrestore.callbacks.progress import ThrottledProgressBar
from lightrestore.callbacks.wandb_results import WandbResults
from lightrestore.cli.train import run
from lightrestore.profiler import NoProfiler


class FakeClock:
    """Returns the given times in turn."""

    def __init__(self, times: list[float]) -> None:
        self.times = list(times)

    def __call__(self) -> float:
        return self.times.pop(0)


def test_the_bar_refreshes_by_time_and_always_on_the_last_batch():
    # batches 1..10 of 10, 0.2 s apart: refreshes at t=0 (first), 0.6, 1.2 (0.5 s or more
    # since the last refresh) and on the last batch (t=1.8, 0.6 s later anyway), and 9 and
    # 10 both fall after 1.2 + 0.5 only from t=1.8 on
    bar = ThrottledProgressBar(min_interval=0.5, clock=FakeClock([0.2 * i for i in range(10)]))
    shown = [n for n in range(1, 11) if bar._should_update(n, 10)]
    assert shown == [1, 4, 7, 10]
    # the last batch is drawn even right after a refresh
    bar = ThrottledProgressBar(min_interval=0.5, clock=FakeClock([0.0, 0.1]))
    assert [bar._should_update(n, 2) for n in (1, 2)] == [True, True]
    # 0 s: every batch, as Lightning's own bar with refresh_rate=1
    bar = ThrottledProgressBar(min_interval=0.0, clock=FakeClock([0.0] * 5))
    assert all(bar._should_update(n, 5) for n in range(1, 6))
    with pytest.raises(ValueError, match="min_interval must be >= 0"):
        ThrottledProgressBar(min_interval=-1)


def test_a_run_shows_the_throttled_bar_and_refreshes_it_rarely(tmp_path, monkeypatch):
    metrics_reads: list[int] = []
    get_metrics = TQDMProgressBar.get_metrics

    def count(self, trainer, pl_module):
        metrics_reads.append(trainer.global_step)
        return get_metrics(self, trainer, pl_module)

    monkeypatch.setattr(TQDMProgressBar, "get_metrics", count)
    # 2 epochs x 6 steps, a bar that never refreshes by time (1 h)
    cfg = compose_cfg(tmp_path, "experiment=rigid_joint_inpaint", "trainer.max_epochs=2",
                      "data.train_samples_per_epoch=48", "trainer.enable_progress_bar=true",
                      "callbacks.progress_bar.min_interval=3600")  # fmt: skip
    objs = run(cfg)
    bars = [c for c in objs["trainer"].callbacks if isinstance(c, ProgressBar)]
    assert len(bars) == 1 and isinstance(bars[0], ThrottledProgressBar)
    # per epoch: its first batch (the first refresh ever, then none for 1 h) is only drawn
    # in epoch 0; each epoch's last batch, the epoch end and the validation end: 3 reads
    # per epoch, +1 for the first batch, whatever the number of steps (Lightning's bar: one
    # read per step, 12 more)
    assert len(metrics_reads) == 7, metrics_reads


def test_callbacks_that_do_not_act_are_left_out(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=rigid_joint_inpaint", "logger=csv")
    names = [type(c) for c in build(cfg)["trainer"].callbacks]
    # debug=smoke turns the bar off; csv logging: no wandb results
    assert ThrottledProgressBar not in names and WandbResults not in names
    assert RunCheckpoint in names
    cfg = compose_cfg(tmp_path, "experiment=rigid_joint_inpaint", "logger=csv",
                      "trainer.enable_progress_bar=true")  # fmt: skip
    bars = [c for c in build(cfg)["trainer"].callbacks if isinstance(c, ProgressBar)]
    assert [type(b) for b in bars] == [ThrottledProgressBar]


def test_the_default_profiler_costs_no_context_per_hook(tmp_path):
    trainer = build(compose_cfg(tmp_path, "experiment=rigid_joint_inpaint"))["trainer"]
    assert isinstance(trainer.profiler, NoProfiler)
    assert isinstance(trainer.profiler, PassThroughProfiler)  # Lightning's "no profiling"
    assert trainer.profiler.profile("a") is trainer.profiler.profile("b")  # one shared no-op
    with trainer.profiler.profile("[Callback]X.on_train_batch_end"):
        pass
    cfg = compose_cfg(tmp_path, "experiment=rigid_joint_inpaint", "+trainer.profiler=simple")
    assert isinstance(build(cfg)["trainer"].profiler, SimpleProfiler)  # asked for: as usual


def test_the_checkpoint_state_key_is_lightnings_and_built_once(tmp_path, monkeypatch):
    options = dict(dirpath=tmp_path, monitor="val/psnr/mean", mode="max", save_last=True)
    ours, theirs = RunCheckpoint(**options), ModelCheckpoint(**options)
    expected = theirs.state_key
    assert ours.state_key == expected  # checkpoints resume with either class
    built: list[int] = []
    generate = ModelCheckpoint._generate_state_key

    def count(self, **kwargs):
        built.append(1)
        return generate(self, **kwargs)

    monkeypatch.setattr(ModelCheckpoint, "_generate_state_key", count)
    fresh = RunCheckpoint(**options)
    keys = {fresh.state_key for _ in range(5)}
    assert keys == {expected} and len(built) == 1
