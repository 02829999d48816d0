"""P4: the on-demand validation cost per epoch as a fraction of the epoch's wall time.

Runs ``experiment=ondemand_<task>`` for a few epochs with a timing callback that splits
each epoch into training and validation (the per-level validation that on-demand
learning needs, N = 5 levels, plus the policy update) and prints a table.

    python -m benchmarks.ondemand_validation [--task inpaint] [--epochs 3] [overrides...]

Target: validation <= 5 % of the epoch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from lightning.pytorch import Callback


class EpochTimer(Callback):
    """Wall time of each training epoch and of its validation (which runs inside it)."""

    def __init__(self) -> None:
        self.epoch: list[float] = []
        self.val: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._t_epoch = time.perf_counter()
        self._val = 0.0

    def on_validation_start(self, trainer, pl_module) -> None:
        self._t_val = time.perf_counter()

    def on_validation_end(self, trainer, pl_module) -> None:
        self._val += time.perf_counter() - self._t_val

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch.append(time.perf_counter() - self._t_epoch)
        self.val.append(self._val)


def measure(task: str, epochs: int, overrides: list[str]) -> EpochTimer:
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from lightrestore.cli.train import build
    from lightrestore.config import config_dir, register_resolvers

    register_resolvers()
    tmp = tempfile.mkdtemp(prefix="bench_ondemand_")
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=[f"experiment=ondemand_{task}", "logger=csv",
                                          f"trainer.max_epochs={epochs}", "trainer.enable_progress_bar=false",
                                          "test=false", *overrides], return_hydra_config=True)  # fmt: skip
    with open_dict(cfg):
        cfg.paths.output_dir = tmp
        cfg.hydra.runtime.output_dir = tmp
    HydraConfig.instance().set_config(cfg)
    objs = build(cfg)
    timer = EpochTimer()
    objs["trainer"].callbacks.append(timer)
    objs["trainer"].fit(objs["method"], datamodule=objs["datamodule"])
    return timer


def run(task: str = "inpaint", epochs: int = 2, overrides: tuple[str, ...] = ()) -> list:
    from benchmarks.common import Row

    t = measure(task, epochs, list(overrides))
    fractions = [v / e for v, e in zip(t.val, t.epoch)]
    med = statistics.median(fractions)
    note = f"{task}, N = 5: epoch {statistics.median(t.epoch):.1f} s, validation {statistics.median(t.val):.2f} s"
    return [Row("P4", "on-demand validation / epoch time", med, "<= 5 %", med <= 0.05, note)]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="inpaint")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. data.train_samples_per_epoch=1000"
    )
    args = p.parse_args(argv)
    t = measure(args.task, args.epochs, args.overrides)
    fractions = [v / e for v, e in zip(t.val, t.epoch)]
    print("\nP4 on-demand validation cost (N = 5 levels)")
    print("| epoch | epoch wall (s) | validation (s) | fraction |")
    print("|---|---|---|---|")
    for i, (e, v, f) in enumerate(zip(t.epoch, t.val, fractions)):
        print(f"| {i} | {e:.2f} | {v:.2f} | {100 * f:.2f} % |")
    med = statistics.median(fractions)
    verdict = "met" if med <= 0.05 else "NOT met"
    print(f"\nmedian fraction {100 * med:.2f} % (target <= 5 %: {verdict})")
    return {"median_fraction": med, "epochs": t.epoch, "validation": t.val}


if __name__ == "__main__":
    main()
