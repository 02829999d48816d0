"""P1: steady-state time per training step (and per evaluation step) through lightrestore
against a hand-written loop on the same model, data and on-device corruption.

Two regimes: **short** steps (ODL's autoencoder at smoke size: width 8, batch 8, 32×32
crops; a few ms a step, where per-step host work shows) and the **paper** step (ODL's
autoencoder, batch 100, 64×64). Each repeat times a window of steps inside one epoch
(the loader, transfer, corruption, forward, backward, optimiser and every per-step hook
and log): on the CPU the median step of the window, on a GPU the window's mean (one device
synchronisation at each end); Trainer construction and start-up (until the first batch) are timed apart. The
Lightning side runs with the run's callbacks (checkpointing aside: it is not per step) and
CSV logging, and again without any callback. Repeats alternate Lightning / hand loop so
machine noise hits both alike; every ratio is printed with its min / median / max over the
repeats, and a verdict only when that spread is within the margin to the target.

    python -m benchmarks.step_overhead [--regime short|paper|both] [--repeats 5] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks.common import Row, sync
from benchmarks.harness import build

#: overrides of the two regimes (rigid joint: no validation feedback needed to train)
REGIMES = {
    "short": (
        "experiment=rigid_joint_inpaint",
        "model.width=8",
        "data.crop_size=32",
        "data.batch_size=8",
        "data.source.load_size=64",
        "data.train_samples_per_epoch=4000",
    ),  # fmt: skip
    "paper": ("experiment=rigid_joint_inpaint",),
}
#: the steps timed per repeat (inside the first epoch) and the targets
WINDOWS = {"short": (50, 400), "paper": (5, 25)}
TARGETS = {"short": 1.10, "paper": 1.02}


@dataclass
class Spread:
    """min / median / max of a list of values."""

    lo: float
    mid: float
    hi: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(min(values), statistics.median(values), max(values))

    def text(self, scale: float = 1.0, fmt: str = ".2f") -> str:
        return f"{self.mid * scale:{fmt}} [{self.lo * scale:{fmt}}-{self.hi * scale:{fmt}}]"


class WindowClock:
    """A Lightning callback timing steps ``first``..``last`` of the first epoch (one sync
    at each end) and the start-up until the first batch."""

    def __init__(self, first: int, last: int) -> None:
        from lightning.pytorch import Callback

        clock = self

        class _Clock(Callback):
            def on_train_start(self, trainer, pl_module) -> None:
                clock.started = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                if batch_idx + 1 in (first, last):
                    sync()
                if first <= batch_idx + 1 <= last:
                    clock.mark()
                if batch_idx + 1 == last:
                    trainer.should_stop = True

        self.callback = _Clock()
        self.first, self.last = first, last
        self.marks: list[float] = []
        self.started = 0.0

    def mark(self) -> None:
        self.marks.append(step_mark())

    def per_step(self) -> float:
        return per_step(self.marks)


def step_mark() -> float:
    """The time at a step's end; on a GPU only where it matters (no sync inside a window)."""
    return time.perf_counter()


def per_step(marks: list[float]) -> float:
    """Seconds per step from the step-end times of a window: on the CPU the median step
    (robust to the odd scheduling hiccup of a 2-core machine), on a GPU the window's mean
    (steps are asynchronous: only the window's ends are synchronised)."""
    if torch.cuda.is_available():
        return (marks[-1] - marks[0]) / (len(marks) - 1)
    return statistics.median(b - a for a, b in zip(marks, marks[1:]))


def _callbacks(objs: dict, project: bool) -> list:
    from lightning.pytorch.callbacks import ModelCheckpoint

    if not project:
        return []
    return [c for c in objs["callbacks"] if not isinstance(c, ModelCheckpoint)]


def lightning_window(objs: dict, first: int, last: int, project: bool) -> tuple[float, float]:
    """(seconds per step in the window, seconds from constructing the Trainer to its first
    batch) through ``trainer.fit``."""
    import lightning.pytorch as pl

    clock = WindowClock(first, last)
    t0 = time.perf_counter()
    trainer = pl.Trainer(
        max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
        logger=pl.loggers.CSVLogger(objs["trainer"].default_root_dir),
        callbacks=[*_callbacks(objs, project), clock.callback], enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, accelerator="auto", devices=1,
        log_every_n_steps=50,
    )  # fmt: skip
    trainer.fit(objs["method"], datamodule=objs["datamodule"])
    return clock.per_step(), clock.started - t0


def hand_window(objs: dict, first: int, last: int) -> float:
    """Seconds per step of a hand-written loop: loader, transfer, corruption, forward,
    loss, backward, and the method's own optimiser (the same class, options and groups)."""
    dm, method = objs["datamodule"], objs["method"]
    model, loss_fn, device = method.model, method.loss, method.device
    optimizer = method.optimizer_factory(params=method.parameter_groups())
    model.train()
    marks: list[float] = []
    for i, clean in enumerate(dm.train_dataloader()):
        batch = dm.corrupt(clean.to(device, non_blocking=True), epoch=0)
        loss = loss_fn(model(batch.degraded), batch.clean)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if i + 1 in (first, last):
            sync()
        if first <= i + 1 <= last:
            marks.append(step_mark())
        if i + 1 == last:
            return per_step(marks)
    raise RuntimeError(f"the epoch has fewer than {last} batches: raise train_samples_per_epoch")


def eval_times(objs: dict) -> tuple[float, float]:
    """(Lightning, hand loop) seconds per validation step over the whole validation set."""
    import lightning.pytorch as pl

    dm, method = objs["datamodule"], objs["method"]
    n = len(dm.val_dataloader())
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="auto", devices=1)  # fmt: skip
    trainer.validate(method, datamodule=dm, verbose=False)  # warm-up
    sync()
    t = time.perf_counter()
    trainer.validate(method, datamodule=dm, verbose=False)
    sync()
    light = (time.perf_counter() - t) / n
    metrics = method._level_metrics(method.val_metrics.n_levels).to(method.device)
    method.eval()
    sync()
    t = time.perf_counter()
    with torch.inference_mode():
        for raw in dm.val_dataloader():
            batch = dm.on_after_batch_transfer(
                dm.transfer_batch_to_device(raw, method.device, 0), 0
            )
            metrics.update(method.restore(batch), batch.clean, batch.level)
        metrics.compute()
    sync()
    return light, (time.perf_counter() - t) / n


def _verdict(ratios: Spread, target: float) -> tuple[bool | None, str]:
    """A verdict only when the whole spread is on one side of the target."""
    if ratios.hi <= target:
        return True, ""
    if ratios.lo > target:
        return False, ""
    return None, "spread straddles the target: no verdict"


def run_regime(regime: str, repeats: int, extra: tuple[str, ...] = ()) -> list[Row]:
    first, last = WINDOWS[regime]
    objs = build(*REGIMES[regime], *extra)
    objs["datamodule"].setup("fit")
    fns: dict[str, Callable[[], float]] = {
        "lightning": lambda: lightning_window(objs, first, last, project=True),
        "no_callbacks": lambda: lightning_window(objs, first, last, project=False),
        "hand": lambda: hand_window(objs, first, last),
    }
    for fn in fns.values():  # warm-up: first-call costs
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    startup: list[float] = []
    for _ in range(repeats):
        for name, fn in fns.items():
            out = fn()
            if isinstance(out, tuple):
                out, start = out
                if name == "lightning":
                    startup.append(start)
            times[name].append(out)
    rows = []
    hand = Spread.of(times["hand"])
    target = TARGETS[regime]
    bs = objs["datamodule"].batch_size
    for name, label in (("lightning", "run's callbacks"), ("no_callbacks", "no callbacks")):
        ratios = Spread.of([a / b for a, b in zip(times[name], times["hand"])])
        met, why = _verdict(ratios, target)
        note = (f"steps {first}-{last}, batch {bs}: {Spread.of(times[name]).text(1e3)} ms vs hand "
                f"{hand.text(1e3)} ms; ratio min/median/max {ratios.lo:.3f}/{ratios.mid:.3f}/"
                f"{ratios.hi:.3f} over {repeats} repeats{'; ' + why if why else ''}")  # fmt: skip
        rows.append(Row(f"P1-{regime}" + ("" if name == "lightning" else "-bare"),
                        f"{regime} training step, {label} (ratio to hand loop)", ratios.mid,
                        f"<= {target:.2f}x", met, note))  # fmt: skip
    start = Spread.of(startup)
    rows.append(Row(f"P1-{regime}-start", f"{regime}: Trainer construction + start-up (s)",
                    start.mid, "report", None, f"min/median/max {start.text()} s"))  # fmt: skip
    light_eval, hand_eval = [], []
    for _ in range(max(1, repeats // 2)):
        a, b = eval_times(objs)
        light_eval.append(a)
        hand_eval.append(b)
    ratios = Spread.of([a / b for a, b in zip(light_eval, hand_eval)])
    rows.append(Row(f"P1-{regime}-eval", f"{regime} validation step (ratio to hand loop)",
                    ratios.mid, "report", None,
                    f"{Spread.of(light_eval).text(1e3)} ms vs {Spread.of(hand_eval).text(1e3)} ms; "
                    f"ratio min/median/max {ratios.lo:.3f}/{ratios.mid:.3f}/{ratios.hi:.3f}"))  # fmt: skip
    return rows


def run(regime: str = "both", repeats: int = 5) -> list[Row]:
    regimes = ("short", "paper") if regime == "both" else (regime,)
    rows: list[Row] = []
    for r in regimes:
        rows += run_regime(r, repeats if r == "short" else max(3, repeats // 2))
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--regime", choices=("short", "paper", "both"), default="both")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = p.parse_args(argv)
    if a.threads > 0:  # one thread: steadier figures on a small shared machine
        torch.set_num_threads(a.threads)
    rows = run(a.regime, a.repeats)
    for r in rows:
        print(" | ".join(r.cells()))
    return rows


if __name__ == "__main__":
    main()
