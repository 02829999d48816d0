"""``LiraIncremental``: a new distortion learnt without forgetting the old task
(lira.txt §3.2-3.3, §4.5), and the lifelong baselines of its Table 4.

Networks (:mod:`lightrestore.models.lira`):

* ``base`` — R̃, the base network of the old task, trained on (parameters θ_S, the old
  expert ``base.amalgamator``, and θ_P1, its extractor, Bi-SGUs and decoder);
* ``expanded`` — the new branch H without the old expert it shares (θ_P2: a new
  extractor E2, a new expert, gates, attention, Bi-SGUs and decoder D2); the new task's
  restoration is ``expanded(x, base.amalgamator)``;
* ``teacher`` — R, a frozen copy of the join stage's base network (labels for replay and
  LwF; the old weights θ* for EWC);
* ``generator`` — the frozen replay generator of the ``lira_replay_gan`` stage;
* ``ewc_fisher`` — the old expert's diagonal Fisher from that stage (EWC only).

``init_from=<the replay-GAN run's last.ckpt>`` with ``init_from_networks: {base: base_net,
teacher: base_net, generator: generator, ewc_fisher: ewc_fisher}`` chains the stages.

Training, for ``replay`` (Table 4's rows are configs of this one class):

* the first ``warmup_epochs`` (5) train θ_P2 only on ``L_new`` (the old expert frozen);
* then ``L = L_new(H(x2), y2) + λ2 · L_old + ewc_weight · EWC`` with ``λ2 = old_weight``
  (0.2), both L1 (the configured loss), where ``L_old`` is
  - ``gan`` (LIRA): ``‖R̃(x1') − R(x1')‖`` on pseudo samples ``x1' = G(y2)``;
  - ``lwf``: ``‖R̃(x2) − R(x2)‖`` (Learning without Forgetting: R's responses to the new
    task's inputs);
  - ``real`` (joint learning, Setting B, the upper bound): ``‖R̃(x1) − y1‖`` on real
    old-task samples, which only this mode may receive;
  - ``none`` (fine-tuning, Setting A, PNN, EWC): no old-task term.
* Learning rates come from ``param_groups`` (LIRA: μ = 1e-4 for θ_P2, ρμ with ρ = 1e-3
  for ``base``); the optimiser is Adam (0.9, 0.999) with cosine annealing.

**Old data is never read** outside ``replay=real``: every training batch must carry the new
distortion on every sample (``params["new_task"]`` all 1, from the task's
:class:`~lightrestore.degradations.chain.BlendedDistortions` with ``extra_factors``), or
training stops with a :class:`~lightrestore.errors.DataError`. The old task's test set
(the task's ``old`` test variant) is only evaluated.

Scored outputs: ``restored`` = ``new_task`` = H's restoration, ``old_task`` = R̃'s, and
``input``. The Table-4 cells are ``old_task`` on the ``old`` test set and ``new_task`` on the
default one, per group (level 1 mild, 2 moderate, 3 severe).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError, DataError
from lightrestore.losses.ewc import FisherDiagonal
from lightrestore.methods.base import Method

REPLAYS = ("gan", "lwf", "real", "none")


class LiraIncremental(Method):
    """The incremental network (base + expanded) trained on the new task.

    Args:
        base, expanded, teacher, generator: see the module docstring.
        loss: ``loss(pred, target) -> scalar`` for both terms (L1).
        optimizer: one partial over every trained parameter, with ``param_groups``
            giving ``base`` its lowered rate.
        replay: ``gan`` | ``lwf`` | ``real`` | ``none``.
        old_weight: λ2.
        warmup_epochs: epochs that train the new branch alone first.
        ewc_weight: EWC's λ on the old expert (0: no EWC); needs ``ewc_fisher`` loaded.
        ewc_part: the consolidated part of ``base`` (the old expert).
        frozen: at least ``[teacher, generator]``; PNN adds ``base``.
    """

    method_name = "lira_incremental"
    scored_outputs = ("restored", "input", "old_task", "new_task")
    #: the warm-up and the modes without an old-task term leave parameters without a
    #: gradient (DDP must look for them)
    has_unused_parameters = True

    def __init__(
        self,
        base: nn.Module,
        expanded: nn.Module,
        teacher: nn.Module,
        generator: nn.Module,
        loss: nn.Module,
        optimizer: Any,
        replay: str = "gan",
        old_weight: float = 0.2,
        warmup_epochs: int = 5,
        ewc_weight: float = 0.0,
        ewc_part: str = "amalgamator",
        frozen: Any = None,
        **kwargs: Any,
    ) -> None:
        if replay not in REPLAYS:
            raise ConfigError(f"method.replay must be one of {REPLAYS}, got {replay!r}")
        frozen = [str(n) for n in (frozen or [])]
        missing = [n for n in ("teacher", "generator") if n not in frozen]
        if missing:
            raise ConfigError(
                f"LIRA's teacher R and replay generator stay fixed: add {missing} to method.frozen"
            )
        if int(warmup_epochs) < 0 or float(old_weight) < 0 or float(ewc_weight) < 0:
            raise ConfigError("method.warmup_epochs, old_weight and ewc_weight must be >= 0")
        super().__init__(loss=loss, optimizer=optimizer, frozen=frozen, **kwargs)
        self.base, self.expanded, self.teacher, self.generator = base, expanded, teacher, generator
        self.replay, self.old_weight = replay, float(old_weight)
        self.warmup_epochs, self.ewc_weight = int(warmup_epochs), float(ewc_weight)
        self.ewc_part = str(ewc_part)
        self.ewc_fisher = FisherDiagonal(base, self.ewc_part)

    # ------------------------------------------------------------------ restoring
    def new_task(self, degraded: Tensor) -> Tensor:
        """H's restoration ``(B, C, H, W)``: the new branch around the shared old expert."""
        return self.expanded(degraded, self.base.amalgamator)

    def restore(self, batch: RestorationBatch) -> Tensor:
        return self.new_task(batch.degraded)

    def outputs(self, batch: RestorationBatch) -> dict[str, Tensor]:
        new = self.new_task(batch.degraded)
        return {
            "restored": new,
            "input": self.input_estimate(batch),
            "old_task": self.base(batch.degraded),
            "new_task": new,
        }

    # ------------------------------------------------------------------ phases
    @property
    def warming_up(self) -> bool:
        return self.current_epoch < self.warmup_epochs

    def _set_phase(self) -> None:
        """Warm-up: the base network (old expert included) gets no gradient; afterwards it
        trains unless it is frozen (PNN). Called at every epoch start and at the start of
        a (resumed) fit."""
        trainable = not self.warming_up and "base" not in self.frozen
        self.base.requires_grad_(trainable)

    def on_train_start(self) -> None:
        self._set_phase()
        if self.ewc_weight > 0 and not self.ewc_fisher.ready:
            raise ConfigError(
                "method.ewc_weight > 0 needs the old expert's Fisher, accumulated by the "
                "lira_replay_gan stage: init_from=<its last.ckpt> with ewc_fisher in "
                "init_from_networks (experiments/lira_pipeline.sh does this)"
            )

    def on_train_epoch_start(self) -> None:
        self._set_phase()

    def configure_optimizers(self) -> Any:
        self.base.requires_grad_("base" not in self.frozen)  # every trainable part in the optimiser
        out = super().configure_optimizers()
        self._set_phase()
        return out

    # ------------------------------------------------------------------ training
    def _split(self, batch: RestorationBatch) -> tuple[Tensor, Tensor]:
        """Boolean masks of the batch's new-task and old-task samples; raises when old-task
        samples reach a mode that must not read them."""
        flag = batch.params.get("new_task")
        if flag is None:
            raise DataError(
                "LIRA's incremental stage trains on the new distortion, and this batch says "
                "nothing about it (no params['new_task']): use a task whose degradation is "
                "BlendedDistortions with extra_factors (task=blended_haze or blended_darkness)"
            )
        new = flag > 0.5
        if self.replay != "real" and not bool(new.all()):
            raise DataError(
                f"the incremental stage (replay={self.replay}) must never read the old task's "
                f"training data, but {int((~new).sum())} samples of this batch lack the new "
                "distortion: keep task.degradation.old_fraction=0 and no new_task=0 "
                "curriculum setting (only the joint baseline, replay=real, trains on old data)"
            )
        return new, ~new

    def training_step(self, batch: RestorationBatch, batch_idx: int) -> Tensor:
        new, old = self._split(batch)
        x, y = batch.degraded, batch.clean
        any_new = bool(new.any())
        zero = x.new_zeros(())
        loss_new = self.loss(self.new_task(x[new]), y[new]) if any_new else zero
        loss_old, penalty = zero, zero
        if not self.warming_up:
            loss_old = self._old_term(x, y, new, old)
            if self.ewc_weight > 0:
                penalty = self.ewc_fisher.penalty(
                    self.base.get_submodule(self.ewc_part),
                    self.teacher.get_submodule(self.ewc_part),
                )
        loss = loss_new + self.old_weight * loss_old + self.ewc_weight * penalty
        self.log_train_loss(loss, len(batch))
        self.log_step({"train/loss_new": loss_new, "train/loss_old": loss_old})
        if self.ewc_weight > 0:
            self.log_step({"train/ewc_penalty": penalty})
        return loss

    def _old_term(self, x: Tensor, y: Tensor, new: Tensor, old: Tensor) -> Tensor:
        """``L_old`` of the configured replay (0 for ``none`` or ``old_weight`` 0)."""
        if self.replay == "none" or self.old_weight == 0:
            return x.new_zeros(())
        if self.replay == "real":
            if not bool(old.any()):
                return x.new_zeros(())
            return self.loss(self.base(x[old]), y[old])
        with torch.no_grad():
            inputs = self.generator(y[new]) if self.replay == "gan" else x[new]
            labels = self.teacher(inputs)
        return self.loss(self.base(inputs), labels)
