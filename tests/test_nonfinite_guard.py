"""NonFiniteLossGuard: no host sync inside an unchecked step, and nothing lost: a NaN loss
on an unchecked step is reported at the next check (naming its step), and no checkpoint
is written after it. A one-parameter module on the CPU, a few SGD steps each."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from lightrestore.callbacks.reliability import NonFiniteLossError, NonFiniteLossGuard


class Tiny(LightningModule):
    """``loss = mean((w x)^2)``; at global step ``nan_at`` the loss is NaN, so SGD's
    update makes ``w`` NaN and every later loss is NaN too (a diverged run)."""

    def __init__(self, nan_at: int | None = None, per_epoch: int = 20, val: bool = False):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))
        self.nan_at, self.per_epoch, self.val = nan_at, per_epoch, val
        self.w_before_backward: dict[int, float] = {}

    def training_step(self, batch, batch_idx):
        loss = (self.w * batch[0]).pow(2).mean()
        if self.global_step == self.nan_at:
            loss = loss * float("nan")
        self.w_before_backward[self.global_step] = float(self.w.detach())
        return loss

    def validation_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(self.per_epoch, 1)), batch_size=1)

    def val_dataloader(self):
        return DataLoader(TensorDataset(torch.ones(1, 1)), batch_size=1)


def make_trainer(tmp_path: Path, guard: NonFiniteLossGuard, *callbacks: Callback, **kw) -> Trainer:
    opts = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
                num_sanity_val_steps=0, log_every_n_steps=1, default_root_dir=tmp_path)  # fmt: skip
    opts.update(kw)
    if any(isinstance(c, ModelCheckpoint) for c in callbacks):
        opts["enable_checkpointing"] = True
    return Trainer(callbacks=[guard, *callbacks], **opts)


def count_reads(monkeypatch, guard: NonFiniteLossGuard, trainer: Trainer) -> list[int]:
    """The global steps at which the guard read its record on the host (its only sync)."""
    reads: list[int] = []
    read = guard._read_first

    def counted() -> int:
        reads.append(trainer.global_step)
        return read()

    monkeypatch.setattr(guard, "_read_first", counted)
    return reads


def test_unchecked_nan_is_reported_at_the_next_check_naming_its_step(tmp_path, monkeypatch):
    # every 3 steps: checks at global steps 0, 3, 6; the loss is NaN first at step 4, so
    # steps 4 and 5 are recorded on the device unread and the check at step 6 raises
    guard = NonFiniteLossGuard(every_n_steps=3)
    trainer = make_trainer(tmp_path, guard, max_steps=20)
    reads = count_reads(monkeypatch, guard, trainer)
    model = Tiny(nan_at=4)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit(model)
    msg = str(err.value)
    assert reads == [0, 3, 6]  # nothing read on steps 1, 2, 4, 5
    assert trainer.global_step == 6 and max(model.w_before_backward) == 6
    assert msg.startswith(
        "the training loss became nan at epoch 0, step 4, found at the check at step 6"
    )
    assert "every 3 steps on this device (cpu)" in msg
    assert "may have made the weights non-finite" in msg and "no checkpoint was saved yet" in msg
    assert "ckpt_path=<file>" in msg and "callbacks.nonfinite_guard.every_n_steps=1" in msg
    assert "lower the learning rate" in msg
    # the update at step 4 used the NaN loss: the weights were NaN by steps 5 and 6
    assert math.isfinite(model.w_before_backward[4]) and math.isnan(model.w_before_backward[5])


class SaveAt(Callback):
    """Calls ``trainer.save_checkpoint`` at the end of the given global steps' batches."""

    def __init__(self, path: Path, after_steps: set[int]) -> None:
        self.path, self.after_steps = path, after_steps

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        if trainer.global_step in self.after_steps:  # global_step: steps done so far
            trainer.save_checkpoint(self.path)


def test_no_checkpoint_is_written_after_an_unchecked_nan(tmp_path, monkeypatch):
    # every 3 steps, checks at 0, 3, 6; ModelCheckpoint saves after every 2nd step (at
    # global_step 2, 4, 6: the batch ends of steps 1, 3, 5), last.ckpt too. NaN at step 4
    # (unchecked): the save at the end of step 5 comes before the check at step 6; it
    # must raise, leaving last.ckpt as written at global_step 4 (finite weights)
    ckpt_dir = tmp_path / "ckpt"
    mc = ModelCheckpoint(dirpath=ckpt_dir, every_n_train_steps=2, save_last=True, save_top_k=-1)
    guard = NonFiniteLossGuard(every_n_steps=3)
    trainer = make_trainer(tmp_path, guard, mc, max_steps=20)
    reads = count_reads(monkeypatch, guard, trainer)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit(Tiny(nan_at=4))
    msg = str(err.value)
    # reads: the checks at steps 0 and 3, the saves at global_step 2 (step 1 unread) and 6
    # (steps 4, 5 unread: raises); not the save at 4 (step 3 was checked, nothing pending)
    assert reads == [0, 2, 3, 6]
    assert "step 4, found before saving a checkpoint, at step 6" in msg
    assert "every 3 steps" in msg and f"the last good checkpoint is {ckpt_dir / 'last.ckpt'}" in msg
    names = sorted(p.name for p in ckpt_dir.iterdir())
    assert names == ["epoch=0-step=2.ckpt", "epoch=0-step=4.ckpt", "last.ckpt"]  # no step=6
    last = torch.load(ckpt_dir / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and torch.isfinite(last["state_dict"]["w"]).all()


@pytest.mark.parametrize(
    ("how", "found"),
    [
        ("epoch_end", "found at the end of the epoch, at step 5"),
        ("save_checkpoint", "found before saving a checkpoint, at step 5"),
        ("validation", "found before validation, at step 5"),
    ],
)
def test_nan_on_the_last_unchecked_step_before_a_save(tmp_path, how, found):
    # 5 steps per epoch (not a multiple of 3): checks at 0, 3; NaN at step 4, the epoch's
    # last, unchecked; the epoch-end save (or an explicit trainer.save_checkpoint after
    # step 4, or the validation before the epoch-end save) comes before the check at 6
    ckpt_dir = tmp_path / "ckpt"
    kw: dict = {"max_epochs": 3}
    if how == "epoch_end":
        cbs = [ModelCheckpoint(dirpath=ckpt_dir, save_last=True, save_on_train_epoch_end=True)]
    elif how == "save_checkpoint":
        cbs = [SaveAt(ckpt_dir / "manual.ckpt", after_steps={5})]
    else:
        cbs = [ModelCheckpoint(dirpath=ckpt_dir, save_last=True)]  # saves after validation
        kw.update(limit_val_batches=1)
    guard = NonFiniteLossGuard(every_n_steps=3)
    trainer = make_trainer(tmp_path, guard, *cbs, **kw)
    with pytest.raises(
        NonFiniteLossError, match=rf"became nan at epoch 0, step 4, {found}.*every 3 steps"
    ):
        trainer.fit(Tiny(nan_at=4, per_epoch=5, val=how == "validation"))
    assert not ckpt_dir.exists() or not list(ckpt_dir.iterdir())


def test_explicit_save_checkpoint_after_an_unchecked_nan_leaves_the_old_file(tmp_path):
    # trainer.save_checkpoint after step 1 (finite: written) and after step 4 (NaN at step
    # 4, unchecked with every 3: refused, the file written at global_step 2 unchanged)
    path = tmp_path / "manual.ckpt"
    guard = NonFiniteLossGuard(every_n_steps=3)
    trainer = make_trainer(tmp_path, guard, SaveAt(path, after_steps={2, 5}), max_steps=20)
    with pytest.raises(
        NonFiniteLossError, match="step 4, found before saving a checkpoint, at step 5"
    ):
        trainer.fit(Tiny(nan_at=4))
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["global_step"] == 2 and torch.isfinite(ckpt["state_dict"]["w"]).all()


def test_auto_on_the_cpu_checks_every_step_before_the_update(tmp_path, monkeypatch):
    # auto (the default) resolves to 1 on the CPU: the NaN of step 2 stops step 2 before
    # its backward pass, with today's message, and the weights stay finite
    guard = NonFiniteLossGuard()
    assert guard.every_n_steps is None and guard.every is None
    trainer = make_trainer(tmp_path, guard, max_steps=20)
    reads = count_reads(monkeypatch, guard, trainer)
    model = Tiny(nan_at=2)
    with pytest.raises(NonFiniteLossError) as err:
        trainer.fit(model)
    assert guard.every == 1 and reads == []  # every=1: the loss itself is read, no record
    assert str(err.value) == (
        "the training loss became nan at epoch 0, step 2; training stopped before the update, "
        "and no checkpoint was saved yet. Lower the learning rate (optimizer.lr=...), check "
        "the data, or resume from that checkpoint with ckpt_path=<file>"
    )
    assert torch.isfinite(model.w).all() and trainer.global_step == 2


def test_auto_off_the_cpu_resolves_to_log_every_n_steps_without_reading():
    # a loss on another device (meta: no data, so any host read would fail) resolves to
    # trainer.log_every_n_steps and records unchecked steps on that device
    guard = NonFiniteLossGuard()
    trainer = SimpleNamespace(global_step=1, current_epoch=0, log_every_n_steps=50)
    guard.on_train_start(trainer, None)  # type: ignore[arg-type]
    for step in (1, 2, 49):
        trainer.global_step = step
        guard.on_before_backward(trainer, None, torch.zeros((), device="meta"))  # type: ignore[arg-type]
    assert guard.every == 50 and guard._pending
    assert guard._first is not None and guard._first.device.type == "meta"
    assert guard._first.dtype == torch.int64 and guard._first.shape == ()


@pytest.mark.parametrize("n", [0, -2])
def test_every_n_steps_below_one_counts_as_one(tmp_path, n):
    guard = NonFiniteLossGuard(every_n_steps=n)
    assert guard.every_n_steps == 1  # max(1, n), as before
    model = Tiny(nan_at=1)
    with pytest.raises(
        NonFiniteLossError, match=r"became nan at epoch 0, step 1; training stopped before"
    ):
        make_trainer(tmp_path, guard, max_steps=20).fit(model)
    assert torch.isfinite(model.w).all()


def test_nan_on_a_checked_step_stops_before_the_update(tmp_path):
    # every 3, NaN at step 3 (checked): the message and behaviour of every=1
    guard = NonFiniteLossGuard(every_n_steps=3)
    model = Tiny(nan_at=3)
    with pytest.raises(
        NonFiniteLossError,
        match=r"became nan at epoch 0, step 3; training stopped before the update",
    ):
        make_trainer(tmp_path, guard, max_steps=20).fit(model)
    assert torch.isfinite(model.w).all()


def test_a_finite_run_reads_once_per_three_steps(tmp_path, monkeypatch):
    # 9 steps (0..8), one epoch, every 3: reads at the checks 0, 3, 6, then once at the
    # epoch end (steps 7, 8 went unchecked); on_train_end finds nothing pending
    guard = NonFiniteLossGuard(every_n_steps=3)
    trainer = make_trainer(tmp_path, guard, max_epochs=1)
    reads = count_reads(monkeypatch, guard, trainer)
    trainer.fit(Tiny(per_epoch=9))
    assert trainer.global_step == 9
    assert [s for s in reads if s < 9] == [0, 3, 6]  # 3 reads inside the 9 steps
    assert reads == [0, 3, 6, 9]
    assert int(guard._first) == -1 and not guard._pending


def test_the_record_is_per_fit(tmp_path):
    # a guard that stopped one fit starts the next one clean
    guard = NonFiniteLossGuard(every_n_steps=3)
    with pytest.raises(NonFiniteLossError):
        make_trainer(tmp_path / "a", guard, max_steps=20).fit(Tiny(nan_at=4))
    make_trainer(tmp_path / "b", guard, max_steps=7, limit_val_batches=1).fit(Tiny(val=True))
    assert int(guard._first) == -1
