"""``last.ckpt`` holds the last state, also when the monitored value got worse (Lightning 2.6
writes it only beside a new top-k checkpoint, making it a copy of the best one)."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DataLoader

from lightrestore.callbacks.checkpoint import RunCheckpoint

pytestmark = pytest.mark.usefixtures("one_thread")


class Worsening(LightningModule):
    """Its validation PSNR falls every epoch: the best checkpoint is the first."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - batch.mean()).square().sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/psnr/mean", 30.0 - self.current_epoch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_last_checkpoint_is_the_last_epoch_not_the_best(tmp_path):
    data = DataLoader(torch.ones(4, 1), batch_size=2)
    ckpt = RunCheckpoint(dirpath=tmp_path, filename="epoch_{epoch:03d}", monitor="val/psnr/mean",
                         mode="max", save_top_k=1, save_last=True, auto_insert_metric_name=False)  # fmt: skip
    trainer = Trainer(max_epochs=3, callbacks=[ckpt], logger=False, enable_progress_bar=False,
                      enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0)  # fmt: skip
    model = Worsening()
    trainer.fit(model, train_dataloaders=data, val_dataloaders=data)
    last = torch.load(tmp_path / "last.ckpt", weights_only=True)
    best = torch.load(tmp_path / "epoch_000.ckpt", weights_only=True)
    assert best["epoch"] == 0 and last["epoch"] == 2 and last["global_step"] == 6
    assert torch.equal(last["state_dict"]["w"], model.w.detach())  # the final weights
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_000.ckpt", "last.ckpt"]
