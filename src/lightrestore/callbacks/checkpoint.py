"""Lightning's ``ModelCheckpoint`` for runs that resume into a new folder, whose
``last.ckpt`` is the last state (not the last best)."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint

log = logging.getLogger(__name__)


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that resumes quietly into a new run folder.

    A resumed run always gets a folder of its own (runs never share one), so the saved
    checkpoint folder differs by design; Lightning then keeps only ``best_model_path``
    and warns on every resume. This class does exactly what Lightning does in that case,
    minus the warning (the ranking of best checkpoints restarts in the new folder, and
    no file of the earlier run is ever deleted). Its state key is Lightning's, so
    checkpoints written with either class resume with the other.
    """

    @property
    def state_key(self) -> str:
        """Lightning's key (built from the constructor's options, fixed after it), built
        once: Lightning reads it on every hook call, ~70 times a training step."""
        key = self.__dict__.get("_state_key")
        if key is None:
            key = "ModelCheckpoint" + super().state_key[len(type(self).__qualname__) :]
            self._state_key = key
        return key

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_now(trainer)

    def _save_last_now(self, trainer: Any) -> None:
        """``last.ckpt`` at this step, unless Lightning saved a checkpoint at it already
        (a new best: it then wrote ``last.ckpt`` too) or this is no time to save."""
        if not self.save_last or self._should_skip_saving_checkpoint(trainer):
            return
        self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:
            super().load_state_dict(state_dict)
            return
        self.best_model_path = state_dict["best_model_path"]
        log.debug("resumed into %s: the best-checkpoint ranking restarts here", self.dirpath)
