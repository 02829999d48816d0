"""Per-step host work kept off the steps that do not log: per-step values are logged only on
the steps that reach the loggers (every ``trainer.log_every_n_steps``), the epoch's mean
loss once per epoch, and both still equal what was trained."""

from __future__ import annotations

import csv

import pytest
from helpers import compose_cfg
from lightning.pytorch import Callback
from torchmetrics import MeanMetric

from lightrestore.cli.train import run
from lightrestore.methods.base import Method


class RecordLosses(Callback):
    """Test callback: every training step's loss, by epoch."""

    losses: dict[int, list[float]] = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        RecordLosses.losses.setdefault(trainer.current_epoch, []).append(float(outputs["loss"]))


def test_step_values_are_logged_only_on_logging_steps_and_the_epoch_mean_is_exact(
    tmp_path, monkeypatch
):
    calls: list[tuple[str, bool]] = []
    log = Method.log

    def spy(self, name, value, *args, **kwargs):
        calls.append((name, bool(kwargs.get("on_step"))))
        return log(self, name, value, *args, **kwargs)

    monkeypatch.setattr(Method, "log", spy)
    # the epoch mean is accumulated on the device: one torchmetrics update per epoch (an
    # update checks its input for NaN on the host: a device sync per step on a GPU)
    updates: list[int] = []
    update = MeanMetric.update

    def count(self, *args, **kwargs):
        updates.append(1)
        return update(self, *args, **kwargs)

    monkeypatch.setattr(MeanMetric, "update", count)
    RecordLosses.losses = {}
    # 3 epochs x 3 steps, loggers written every 2nd step: steps 2, 4, 6, 8
    cfg = compose_cfg(tmp_path, "experiment=ondemand_inpaint", "trainer.max_epochs=3",
                      "data.train_samples_per_epoch=24", "trainer.log_every_n_steps=2",
                      "+callbacks.record._target_=test_step_logging.RecordLosses")  # fmt: skip
    run(cfg)
    per_step = [n for n, on_step in calls if n == "train/loss_step" and on_step]
    assert len(per_step) == 4  # 9 steps, logged at 2, 4, 6, 8 (the old code: 9)
    assert [n for n, _ in calls].count("train/loss") == 3  # once per epoch
    assert len(updates) == 3  # the old code: 9, one per step
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows if r.get("train/loss_step")]
    assert steps == [1, 3, 5, 7]  # Lightning's 0-based step of steps 2, 4, 6, 8
    epoch_means = {int(r["epoch"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}
    assert sorted(epoch_means) == [0, 1, 2]
    for epoch, losses in RecordLosses.losses.items():
        assert len(losses) == 3
        assert epoch_means[epoch] == pytest.approx(sum(losses) / len(losses), rel=1e-5)
