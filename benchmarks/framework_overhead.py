"""P1: an epoch through lightrestore (Lightning trainer, on-device corruption, sampler,
policy callback, CSV logging) against a hand-written PyTorch loop doing the same work on
the same model and data. Target <= 1.03x.

    python -m benchmarks.framework_overhead [--steps 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import Row, median_ratio
from benchmarks.harness import build


def run(steps: int = 10, repeats: int = 3, overrides: tuple[str, ...] = ()) -> list[Row]:
    import lightning.pytorch as pl

    objs = build("experiment=rigid_joint_inpaint", *overrides)
    dm, method = objs["datamodule"], objs["method"]
    dm.setup("fit")
    policy = [c for c in objs["callbacks"] if type(c).__name__ == "FixedWeightsPolicy"]

    def lightning_epoch() -> None:
        trainer = pl.Trainer(
            max_epochs=1, limit_train_batches=steps, limit_val_batches=0, num_sanity_val_steps=0,
            logger=pl.loggers.CSVLogger(objs["trainer"].default_root_dir), callbacks=list(policy),
            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            accelerator="auto", devices=1,
        )  # fmt: skip
        trainer.fit(method, datamodule=dm)

    model, loss_fn = method.model, method.loss
    device = method.device
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def hand_epoch() -> None:
        model.train()
        for i, clean in enumerate(dm.train_dataloader()):
            if i == steps:
                break
            batch = dm.corrupt(clean.to(device, non_blocking=True), epoch=0)
            loss = loss_fn(model(batch.degraded), batch.clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    lightning_epoch()  # warm-up (first-call costs)
    hand_epoch()
    t_light, t_hand = [], []
    for _ in range(repeats):
        for fn, out in ((lightning_epoch, t_light), (hand_epoch, t_hand)):
            t = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            out.append(time.perf_counter() - t)
    ratio = median_ratio(t_light, t_hand)
    note = f"{steps} steps of batch {dm.batch_size}: lightrestore {min(t_light):.2f} s, hand loop {min(t_hand):.2f} s"
    return [
        Row("P1", "framework overhead (epoch time ratio)", ratio, "<= 1.03x", ratio <= 1.03, note)
    ]


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("overrides", nargs="*")
    a = p.parse_args(argv)
    rows = run(a.steps, a.repeats, tuple(a.overrides))
    for r in rows:
        print(" | ".join(r.cells()))
    return rows


if __name__ == "__main__":
    main()
