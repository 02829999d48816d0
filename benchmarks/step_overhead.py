"""P1: steady-state time per training step (and per evaluation step) through lightrestore
against a hand-written loop on the same model, data and on-device corruption.

Two regimes: **short** steps (ODL's autoencoder at smoke size: width 8, batch 8, 32×32
crops; a few ms a step, where per-step host work shows) and the **paper** step (ODL's
autoencoder, batch 100, 64×64). Each repeat times a window of steps inside one epoch
(the loader, transfer, corruption, forward, backward, optimiser and every per-step hook
and log). On the CPU the steps are **paired**: after every Lightning step of the window one
step of the hand-written loop runs (its own loader iterator and optimiser, the same network),
and each Lightning step is divided by the hand step beside it; the repeat's ratio is the
median of those per-step ratios. A machine whose speed drifts by tens of percent over
seconds (a shared 2-core VM) slows both sides of a pair alike, which windows timed one after
the other cannot offer. On a GPU, where a step is asynchronous, each side is timed over its
own window (the mean, one device synchronisation at each end). Trainer construction and
start-up (until the first batch) are timed apart.

The Lightning side runs as a run does: the run's callbacks (checkpointing and the progress
bar included, its output discarded), the run's profiler choice and CSV logging; again
without any callback; and a minimal LightningModule (the same network, loss, optimiser,
loader and corruption in ``training_step``, no callback, no logger) shows the floor
Lightning's own loop sets. Repeats alternate the variants so machine noise hits all
alike; every ratio is printed with its min / median / max over the repeats, and a verdict
only when that spread is within the margin to the target.

    python -m benchmarks.step_overhead [--regime short|paper|both] [--repeats 5] [--threads N]
    python -m benchmarks.step_overhead --profile [--regime short]   # where a step's host time goes
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
        "trainer.enable_progress_bar=true",
        "model.width=8",
        "data.crop_size=32",
        "data.batch_size=8",
        "data.source.load_size=64",
        "data.train_samples_per_epoch=4000",
    ),  # fmt: skip
    "paper": ("experiment=rigid_joint_inpaint", "trainer.enable_progress_bar=true"),
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


class HandStep:
    """One step of the hand-written loop: the next clean batch of its own loader iterator,
    transfer, corruption, forward, loss, backward and the method's own optimiser (the same
    class, options and groups, a state of its own) on the method's network."""

    def __init__(self, objs: dict) -> None:
        self.dm, method = objs["datamodule"], objs["method"]
        self.model, self.loss, self.device = method.model, method.loss, method.device
        self.optimizer = method.optimizer_factory(params=method.parameter_groups())
        self.batches = iter(self.dm.train_dataloader())

    def __call__(self) -> None:
        clean = next(self.batches, None)
        if clean is None:
            self.batches = iter(self.dm.train_dataloader())
            clean = next(self.batches)
        with torch.enable_grad():
            self.model.train()
            batch = self.dm.corrupt(clean.to(self.device, non_blocking=True), epoch=0)
            loss = self.loss(self.model(batch.degraded), batch.clean)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()


class WindowClock:
    """A Lightning callback timing steps ``first``..``last`` of the first epoch and the
    start-up until the first batch. With ``hand``, paired: after each step of the window
    it runs one hand step and times both (CPU only: no device synchronisation); without,
    it marks each step's end (one sync at each end of the window)."""

    def __init__(self, first: int, last: int, hand: HandStep | None = None) -> None:
        from lightning.pytorch import Callback

        clock = self

        class _Clock(Callback):
            def on_train_start(self, trainer, pl_module) -> None:
                clock.started = time.perf_counter()

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
                n = batch_idx + 1
                if first <= n <= last:
                    clock.tick(n)
                if n == last:
                    trainer.should_stop = True

        self.callback = _Clock()
        self.first, self.last, self.hand = first, last, hand
        self.marks: list[float] = []
        self.light: list[float] = []  # paired: each Lightning step ...
        self.hand_steps: list[float] = []  # ... and the hand step after it (s)
        self._after_hand = 0.0
        self.started = 0.0

    def tick(self, n: int) -> None:
        if self.hand is None:
            if n in (self.first, self.last):
                sync()
            self.marks.append(step_mark())
            return
        end = time.perf_counter()  # this Lightning step ends (it began after the last hand step)
        self.hand()
        after = time.perf_counter()
        if n > self.first:
            self.light.append(end - self._after_hand)
            self.hand_steps.append(after - end)
        self._after_hand = after

    def per_step(self) -> float:
        """Seconds per Lightning step (paired: the median step)."""
        return statistics.median(self.light) if self.hand is not None else per_step(self.marks)

    def ratio(self) -> float:
        """Paired: the median over the window of each step's ratio to its hand step."""
        return statistics.median(a / b for a, b in zip(self.light, self.hand_steps))


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


def lightning_window(
    objs: dict, first: int, last: int, project: bool, hand: HandStep | None = None
) -> tuple[WindowClock, float]:
    """(the window's clock, seconds from constructing the Trainer to its first batch)
    through ``trainer.fit``, with the run's callbacks (``project``) or none; paired with
    ``hand`` steps when given."""
    import contextlib
    import os

    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ProgressBar

    callbacks = list(objs["callbacks"]) if project else []
    bar = any(isinstance(c, ProgressBar) for c in callbacks)
    clock = WindowClock(first, last, hand)
    t0 = time.perf_counter()
    trainer = pl.Trainer(
        max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0,
        logger=pl.loggers.CSVLogger(objs["trainer"].default_root_dir),
        callbacks=[*callbacks, clock.callback], enable_checkpointing=project,
        enable_progress_bar=bar, enable_model_summary=False, accelerator="auto", devices=1,
        log_every_n_steps=50, profiler=objs["trainer"].profiler,
    )  # fmt: skip
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):  # the bar's output
        trainer.fit(objs["method"], datamodule=objs["datamodule"])
    return clock, clock.started - t0


def floor_window(objs: dict, first: int, last: int, hand: HandStep | None = None) -> WindowClock:
    """Seconds per step of a minimal LightningModule: the method's network, loss and
    optimiser, the DataModule's loader, the corruption inside ``training_step``; no
    callback, logger or profiler: what Lightning's own loop costs over the hand loop."""
    import lightning.pytorch as pl

    dm, method = objs["datamodule"], objs["method"]

    class Minimal(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model, self.loss = method.model, method.loss

        def training_step(self, clean: torch.Tensor, batch_idx: int) -> torch.Tensor:
            batch = dm.corrupt(clean, epoch=0)
            return self.loss(self.model(batch.degraded), batch.clean)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return method.optimizer_factory(params=method.parameter_groups())

    clock = WindowClock(first, last, hand)
    trainer = pl.Trainer(
        max_epochs=1, limit_val_batches=0, num_sanity_val_steps=0, logger=False,
        callbacks=[clock.callback], enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, accelerator="auto", devices=1,
    )  # fmt: skip
    trainer.fit(Minimal(), train_dataloaders=dm.train_dataloader())
    return clock


def hand_window(objs: dict, first: int, last: int) -> float:
    """Seconds per step of the hand-written loop (:class:`HandStep`) over its own window."""
    step = HandStep(objs)
    marks: list[float] = []
    for i in range(last):
        step()
        if i + 1 in (first, last):
            sync()
        if first <= i + 1:
            marks.append(step_mark())
    return per_step(marks)


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
    paired = not torch.cuda.is_available()
    hand = HandStep(objs) if paired else None
    variants: dict[str, Callable[[], tuple[WindowClock, float | None]]] = {
        "lightning": lambda: lightning_window(objs, first, last, True, hand),
        "no_callbacks": lambda: lightning_window(objs, first, last, False, hand),
        "floor": lambda: (floor_window(objs, first, last, hand), None),
    }
    for fn in variants.values():  # warm-up: first-call costs
        fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    ratios: dict[str, list[float]] = {k: [] for k in variants}
    hand_times: list[float] = []
    startup: list[float] = []
    for _ in range(repeats):
        if not paired:
            hand_times.append(hand_window(objs, first, last))
        for name, fn in variants.items():
            clock, start = fn()
            times[name].append(clock.per_step())
            if paired:
                ratios[name].append(clock.ratio())
                hand_times.append(statistics.median(clock.hand_steps))
            else:
                ratios[name].append(clock.per_step() / hand_times[-1])
            if name == "lightning" and start is not None:
                startup.append(start)
    rows = []
    hand_spread = Spread.of(hand_times)
    target = TARGETS[regime]
    bs = objs["datamodule"].batch_size
    how = "paired steps" if paired else "windows"
    for name, label in (("lightning", "run's callbacks"), ("no_callbacks", "no callbacks")):
        spread = Spread.of(ratios[name])
        met, why = _verdict(spread, target)
        note = (f"steps {first}-{last}, batch {bs}, {how}: {Spread.of(times[name]).text(1e3)} ms "
                f"vs hand {hand_spread.text(1e3)} ms; ratio min/median/max {spread.lo:.3f}/"
                f"{spread.mid:.3f}/{spread.hi:.3f} over {repeats} repeats"
                f"{'; ' + why if why else ''}")  # fmt: skip
        rows.append(Row(f"P1-{regime}" + ("" if name == "lightning" else "-bare"),
                        f"{regime} training step, {label} (ratio to hand loop)", spread.mid,
                        f"<= {target:.2f}x", met, note))  # fmt: skip
    spread = Spread.of(ratios["floor"])
    rows.append(Row(f"P1-{regime}-floor", f"{regime}: minimal LightningModule (ratio to hand loop)",
                    spread.mid, "report", None,
                    f"{Spread.of(times['floor']).text(1e3)} ms, {how}; ratio min/median/max "
                    f"{spread.lo:.3f}/{spread.mid:.3f}/{spread.hi:.3f}: Lightning's own loop"))  # fmt: skip
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


#: per-step host work the profile reports: (label, file part, function name)
PROFILED = (
    ("callback hook dispatch (cumulative)", "trainer/call.py", "_call_callback_hooks"),
    ("Lightning profiler contexts (generator per hook call)", "contextlib.py", "helper"),
    ("progress bar on_train_batch_end", "tqdm_progress.py", "on_train_batch_end"),
    ("progress bar get_metrics", "progress_bar.py", "get_metrics"),
    ("Method.log_train_loss", "methods/base.py", "log_train_loss"),
    ("torchmetrics update (host NaN check)", "torchmetrics/metric.py", "wrapped_func"),
    ("Method.on_train_batch_start", "methods/base.py", "on_train_batch_start"),
    ("NonFiniteLossGuard.on_before_backward", "reliability.py", "on_before_backward"),
    ("ModelCheckpoint.state_key", "model_checkpoint.py", "state_key"),
    ("ModelCheckpoint.on_train_batch_end", "model_checkpoint.py", "on_train_batch_end"),
    ("fetch the next batch (Lightning's fetcher)", "loops/fetchers.py", "__next__"),
    ("DataModule.on_after_batch_transfer (corruption)", "data/datamodule.py", "on_after_batch_transfer"),
)  # fmt: skip


def profile_steps(regime: str = "short") -> list[str]:
    """cProfile of one window of the regime's steps, the run's callbacks, against the hand
    loop: Python calls and time per step under the profiler, and the per-step calls and
    cumulative time of each entry of :data:`PROFILED` (the profiler inflates Python work:
    read the figures side by side, not as wall times)."""
    import cProfile
    import pstats

    first, last = WINDOWS[regime]
    objs = build(*REGIMES[regime])
    objs["datamodule"].setup("fit")
    lightning_window(objs, first, last, True)  # warm-up
    hand_window(objs, first, last)

    def profiled(fn: Callable[[], object]) -> pstats.Stats:
        prof = cProfile.Profile()
        prof.enable()
        fn()
        prof.disable()
        return pstats.Stats(prof)

    ours = profiled(lambda: lightning_window(objs, first, last, True))
    hand = profiled(lambda: hand_window(objs, first, last))
    n = last  # both profiles cover ``last`` steps (and the Trainer's start, for ours)
    calls = [sum(v[1] for v in st.stats.values()) / n for st in (ours, hand)]  # type: ignore[attr-defined]
    lines = [
        f"{regime} steps 1-{last}, run's callbacks, under cProfile:",
        f"Python calls per step: lightrestore {calls[0]:.0f}, hand loop {calls[1]:.0f}",
        f"time per step: lightrestore {ours.total_tt / n * 1e3:.2f} ms, "  # type: ignore[attr-defined]
        f"hand loop {hand.total_tt / n * 1e3:.2f} ms",  # type: ignore[attr-defined]
        "| per step | calls | cumulative (us) |",
        "|---|---|---|",
    ]
    for label, part, name in PROFILED:
        count = cum = 0.0
        for (path, _, func), (_, ncalls, _, cumtime, _) in ours.stats.items():  # type: ignore[attr-defined]
            if part in path and func == name:
                count, cum = count + ncalls, cum + cumtime
        lines.append(f"| {label} | {count / n:.2f} | {cum / n * 1e6:.0f} |")
    return lines


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
    p.add_argument("--profile", action="store_true", help="where a step's host time goes")
    a = p.parse_args(argv)
    if a.threads > 0:  # one thread: steadier figures on a small shared machine
        torch.set_num_threads(a.threads)
    if a.profile:
        print("\n".join(profile_steps("short" if a.regime == "both" else a.regime)))
        return []
    rows = run(a.regime, a.repeats)
    for r in rows:
        print(" | ".join(r.cells()))
    return rows


if __name__ == "__main__":
    main()
