"""Nothing lost: checkpoints on interruption, a stop on non-finite losses, RNG state."""

from __future__ import annotations

import logging
import random
import signal
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lightrestore.errors import UserError

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError):
    """The training loss became NaN or infinite."""


#: the signal that last stopped (or aborted) training in this process: ``"SIGINT"``,
#: ``"SIGTERM"`` or ``"SIGINT-abort"`` (a second Ctrl-C); the CLI turns it into an exit code
received: dict[str, str | None] = {"signal": None}


class SaveOnInterrupt(Callback):
    """Stops training at a step boundary and saves ``last.ckpt`` on SIGTERM (a cluster
    pre-emption) or Ctrl-C (SIGINT): the current step finishes, then Lightning stops with
    its ``SIGTERMException`` and this callback saves, so the resumed run continues exactly
    (a checkpoint taken mid-step would count a BatchNorm batch twice). A second Ctrl-C
    aborts at once and saves nothing (the last checkpoint stays). Resume with
    ``ckpt_path=<run>/checkpoints/last.ckpt`` (or ``ckpt_path=last``). Other exceptions
    (a NaN loss, a bug) save nothing, so the last good checkpoint stays.

    Args:
        dirpath: the run's checkpoint folder.
    """

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self._previous: Any = None

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Ctrl-C marks the stop, as SIGTERM does in Lightning (main thread only)."""
        received["signal"] = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.getsignal(signal.SIGINT)

            def on_sigint(signum: int, frame: Any) -> None:
                if trainer.received_sigterm:  # the second Ctrl-C: abort now
                    received["signal"] = "SIGINT-abort"
                    signal.signal(signal.SIGINT, signal.default_int_handler)
                    raise KeyboardInterrupt
                received["signal"] = "SIGINT"
                trainer._signal_connector.received_sigterm = True
                log.warning("Ctrl-C: finishing the current step, then saving a checkpoint "
                            "(press Ctrl-C again to abort at once without saving)")  # fmt: skip

            signal.signal(signal.SIGINT, on_sigint)

    def _restore_handler(self) -> None:
        if self._previous is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restore_handler()

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        self._restore_handler()
        if not isinstance(exception, SIGTERMException) or not trainer.training:
            return
        received["signal"] = received["signal"] or "SIGTERM"
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path, weights_only=False)  # every rank takes part; rank 0 writes
        log.warning(
            "training interrupted (%s) at epoch %d, step %d: saved %s; resume with ckpt_path=%s",
            received["signal"], trainer.current_epoch, trainer.global_step, path, path,
        )  # fmt: skip


class NonFiniteLossGuard(Callback):
    """Stops training with a clear message when the training loss is NaN or infinite.

    Every step, in ``on_before_backward``, the guard records on the loss's device, without
    a host synchronisation, the first global step whose loss is not finite: ``_first``, a
    0-dim int64 tensor (-1 while every loss was finite), with that step's epoch
    (``_first_epoch``, int64) and loss (``_first_loss``, float32), updated with
    ``torch.where``. It reads this record on the host (one device sync) only on the
    checked steps, those whose ``trainer.global_step`` is a multiple of ``every_n_steps``,
    and raises :class:`NonFiniteLossError` when a non-finite loss was recorded.

    - On a checked step a NaN loss of *that* step stops training before the backward
      pass and the optimiser step, so the weights (and the last checkpoint) stay finite.
    - A NaN loss on an unchecked step is found at the next check, ``every_n_steps - 1``
      steps later at most, when the updates since may already have made the weights
      non-finite; the message names the first bad step and its loss.
    - No checkpoint is ever written after an unchecked NaN loss: the record is also read
      (when steps went unchecked since the last read) in ``on_save_checkpoint``, which
      Lightning calls while building the checkpoint, before the file is written (for
      ``ModelCheckpoint``, ``trainer.save_checkpoint``, :class:`SaveOnInterrupt`, SLURM
      requeue), and at the end of each training epoch, before validation and at the end
      of training. Every checkpoint written is thus from before the first bad update.

    The trade-off: checking every step costs one device sync per step (a stall of the
    GPU's queue), nothing on the CPU. The default, ``every_n_steps=None``, checks every
    step when the loss lives on the CPU and every ``trainer.log_every_n_steps`` steps
    otherwise (resolved at the first step). ``every_n_steps=1`` stops before the first
    bad update on any device; values below 1 count as 1.

    The record is per fit (reset at the start of each fit), not checkpoint state; it is
    per process (under DDP each rank checks its own loss).

    Args:
        every_n_steps: check every this many steps; ``None``: 1 on the CPU,
            ``trainer.log_every_n_steps`` on a GPU.
    """

    def __init__(self, every_n_steps: int | None = None) -> None:
        self.every_n_steps = None if every_n_steps is None else max(1, int(every_n_steps))
        #: the resolved check interval (``None`` until the first step of a fit in auto mode)
        self.every: int | None = self.every_n_steps
        self._reset()

    def _reset(self) -> None:
        self._first: torch.Tensor | None = None  # int64, 0-dim: first bad global step or -1
        self._first_epoch: torch.Tensor | None = None  # int64, 0-dim: its epoch
        self._first_loss: torch.Tensor | None = None  # float32, 0-dim: its loss
        self._pending = False  # losses were recorded since the last host read

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset()  # before the sanity check, so a reused guard starts clean
        self.every = self.every_n_steps

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset()
        self.every = self.every_n_steps

    def on_before_backward(
        self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor
    ) -> None:
        loss = loss.detach()
        if self.every is None:
            cpu = loss.device.type == "cpu"
            self.every = 1 if cpu else max(1, int(trainer.log_every_n_steps))
        step = trainer.global_step
        checked = step % self.every == 0
        if self.every == 1:  # every step is checked: read the loss directly (as cheap)
            if not bool(torch.isfinite(loss).all()):
                raise NonFiniteLossError(self._message_now(trainer, float(loss)))
            return
        self._record(trainer, loss)
        if checked:
            self._check(trainer, "at the check at", before_update=True)

    def _record(self, trainer: Trainer, loss: torch.Tensor) -> None:
        """Records the loss if it is the first non-finite one: device ops only, no sync."""
        if self._first is None or self._first.device != loss.device:
            self._first = torch.full((), -1, dtype=torch.int64, device=loss.device)
            self._first_epoch = torch.full((), -1, dtype=torch.int64, device=loss.device)
            self._first_loss = torch.zeros((), dtype=torch.float32, device=loss.device)
        assert self._first_epoch is not None and self._first_loss is not None
        new = ~torch.isfinite(loss).all() & (self._first < 0)
        value = loss.float().reshape(()) if loss.numel() == 1 else loss.float().sum()
        self._first = torch.where(new, trainer.global_step, self._first)
        self._first_epoch = torch.where(new, trainer.current_epoch, self._first_epoch)
        self._first_loss = torch.where(new, value, self._first_loss)
        self._pending = True

    def _read_first(self) -> int:
        """The first non-finite step recorded, -1 if none: the guard's one host read."""
        assert self._first is not None
        return int(self._first)

    def _check(self, trainer: Trainer, when: str, before_update: bool = False) -> None:
        """Reads the record (one sync) and raises if a non-finite loss was recorded; the
        record then stays pending, so no later checkpoint is written either."""
        first = self._read_first()
        if first < 0:
            self._pending = False
            return
        assert self._first is not None
        assert self._first_epoch is not None and self._first_loss is not None
        value = float(self._first_loss)
        if before_update and first == trainer.global_step:  # this step's loss: as every=1
            raise NonFiniteLossError(self._message_now(trainer, value))
        raise NonFiniteLossError(
            f"the training loss became {value} at epoch {int(self._first_epoch)}, step {first}, "
            f"found {when} step {trainer.global_step}: the guard checks the loss every "
            f"{self.every} steps on this device ({self._first.device}), so the updates since "
            f"step {first} may have made the weights non-finite; no checkpoint was written "
            f"since, and {_last_good(trainer)}. Resume from that checkpoint with "
            "ckpt_path=<file> and lower the learning rate (optimizer.lr=...) or check the "
            "data; set callbacks.nonfinite_guard.every_n_steps=1 to stop before the first "
            "bad update (at one device sync per step)"
        )

    @staticmethod
    def _message_now(trainer: Trainer, value: float) -> str:
        """The message for a non-finite loss of the current step, found before its update."""
        return (
            f"the training loss became {value} at epoch {trainer.current_epoch}, "
            f"step {trainer.global_step}; training stopped before the update, and "
            f"{_last_good(trainer)}. Lower the learning rate (optimizer.lr=...), check the "
            "data, or resume from that checkpoint with ckpt_path=<file>"
        )

    def _check_pending(self, trainer: Trainer, when: str) -> None:
        if self._pending:  # steps went unchecked since the last read
            self._check(trainer, when)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check_pending(trainer, "at the end of the epoch, at")

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check_pending(trainer, "before validation, at")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._check_pending(trainer, "at the end of training, at")

    def on_save_checkpoint(
        self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # Lightning calls this while it builds the checkpoint, before the file is written
        # (CheckpointConnector.dump_checkpoint, then strategy.save_checkpoint)
        self._check_pending(trainer, "before saving a checkpoint, at")


def _last_good(trainer: Trainer) -> str:
    last = [str(p) for p in _checkpoints(trainer)]
    return f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was saved yet"


def _checkpoints(trainer: Trainer) -> list[Path]:
    cb = trainer.checkpoint_callback
    paths = []
    for p in (getattr(cb, "best_model_path", ""), getattr(cb, "last_model_path", "")):
        if p and Path(p).is_file():
            paths.append(Path(p))
    return paths


class RNGState(Callback):
    """Saves and restores the global random number generators (Python, NumPy, torch CPU
    and CUDA) with every checkpoint, as tensors and plain values (``weights_only`` safe),
    so a resumed run continues their streams (dropout, random augmentations...)."""

    def state_dict(self) -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached = np.random.get_state()
        state: dict[str, Any] = {
            "python": _to_plain(random.getstate()),
            "numpy": {
                "kind": kind,
                "keys": torch.from_numpy(keys.astype(np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached": float(cached),
            },  # fmt: skip
            "torch": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "python" in state:
            random.setstate(_from_plain(state["python"]))
        if "numpy" in state:
            n = state["numpy"]
            keys = n["keys"].numpy().astype(np.uint32)
            np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))
        if "torch" in state:
            torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def _to_plain(obj: Any) -> Any:
    return [_to_plain(o) for o in obj] if isinstance(obj, (tuple, list)) else obj


def _from_plain(obj: Any) -> Any:
    return tuple(_from_plain(o) for o in obj) if isinstance(obj, list) else obj


class SlurmRequeueAtStepEnd(Callback):
    """Makes Lightning's SLURM auto-requeue save its checkpoint at a step boundary.

    Lightning saves ``hpc_ckpt_N.ckpt`` from the requeue signal's handler, i.e. wherever
    the step happens to be (BatchNorm statistics already updated by the forward pass,
    the optimiser not yet stepped), so the requeued job cannot continue exactly. This
    callback replaces the handler with one that only marks the signal, and runs
    Lightning's save-and-requeue at the end of the current training step (or
    validation). Active only when Lightning detected SLURM with auto-requeue.
    """

    def __init__(self) -> None:
        self._signum: int | None = None
        self._pending = False

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        from lightning.fabric.plugins.environments import SLURMEnvironment

        env = trainer._accelerator_connector.cluster_environment
        if (
            not isinstance(env, SLURMEnvironment)
            or not env.auto_requeue
            or env.requeue_signal is None
        ):
            return
        import signal

        self._signum = int(env.requeue_signal)
        signal.signal(self._signum, self._mark)

    def _mark(self, signum: int, frame: Any) -> None:
        self._pending = True

    def _requeue_if_pending(self, trainer: Trainer) -> None:
        if self._pending and self._signum is not None:
            self._pending = False
            trainer._signal_connector._slurm_sigusr_handler_fn(self._signum, None)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._requeue_if_pending(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._requeue_if_pending(trainer)
