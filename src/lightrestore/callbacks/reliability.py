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
    """Stops training with a clear message when the loss is NaN or infinite, *before*
    the backward pass and the optimiser step, so the weights (and the last checkpoint)
    stay finite. Checking reads the loss on the host (one device sync per checked step);
    ``every_n_steps`` checks less often on a GPU.
    """

    def __init__(self, every_n_steps: int = 1) -> None:
        self.every = max(1, int(every_n_steps))

    def on_before_backward(
        self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor
    ) -> None:
        if trainer.global_step % self.every or bool(torch.isfinite(loss.detach()).all()):
            return
        last = [str(p) for p in _checkpoints(trainer)]
        where = f"the last good checkpoint is {last[-1]}" if last else "no checkpoint was saved yet"
        raise NonFiniteLossError(
            f"the training loss became {float(loss.detach())} at epoch {trainer.current_epoch}, "
            f"step {trainer.global_step}; training stopped before the update, and {where}. "
            "Lower the learning rate (optimizer.lr=...), check the data, or resume from that "
            "checkpoint with ckpt_path=<file>"
        )


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
