"""``Golf``: the Golf Optimizer for blind deblurring (golf-optimizer.txt §3, §5-6).

Two networks (:class:`lightrestore.models.golf.GolfNet` in ``conf/method/golf.yaml``):

* ``f_net`` (F, width 32) makes one aggressive step: ``x_0 = F(y)``;
* ``g_net`` (G, width 16) is one residual unit applied ``T`` times,
  ``x_{k+1} = x_k + G(x_k)`` (it learns the negative gradient of the prior).

Training runs in two phases, one run each (the paper: "first train F alone; then freeze F
and train G"):

* ``phase: f`` (``frozen: [g_net]``): ``loss(F(y), clean)`` (Eq. 6).
* ``phase: g`` (``frozen: [f_net]``, F loaded from the phase-f run with
  ``init_from=<its last.ckpt> init_from_networks=[f_net]``): ``x_0 = F(y)`` without
  gradient, ``T`` unrolled steps of G, and every step's output supervised like F's:
  ``loss = (1/T) Σ_{k=1..T} loss(x_k, clean)`` (Eq. 4), the gradient flowing through
  all the steps. F's weights and BatchNorm statistics stay as they are (frozen networks
  are out of the optimiser and in eval mode: :class:`~lightrestore.methods.base.Method`).

The configured loss is called once per step, so loss wrappers (hard mining, PSPL) apply to
every step. The paper's loss is MSE + λ·a VGG-11-BN perceptual term; here it is whatever
``loss`` the run configures. ``T = 3`` at test as in the paper (§6.1), and in training.

Logged: ``train/loss`` (the mean over steps), ``train/loss_step_k`` (step ``k``'s loss,
phase g) besides the base's. Scored outputs: ``restored`` (the last step), ``input``,
``after_F`` (``x_0``), and ``G_1``..``G_T`` (``x_1``..``x_T``) in phase g.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.methods.base import Method

PHASES = ("f", "g")


class Golf(Method):
    """The Golf Optimizer: ``x_0 = F(y)``, then ``x_{k+1} = x_k + G(x_k)``, ``k < T``.

    Args:
        f_net: F, ``(B, C, H, W)`` in [0, 1] -> the restored image, same shape.
        g_net: G, ``(B, C, H, W)`` -> a correction of the same shape (added to its input).
        loss: ``loss(pred, target) -> scalar``, applied to F's output (phase f) or to every
            step of G (phase g).
        optimizer: one partial ``optimizer(params=...)`` (the trainable network's
            parameters; the frozen one is left out by the base).
        phase: ``"f"`` (train F; needs ``frozen: [g_net]``) or ``"g"`` (train G with F
            fixed; needs ``frozen: [f_net]``).
        steps: ``T``, the number of G steps, unrolled in training (phase g) and at test.
        frozen, scheduler, param_groups, and the task settings: see
            :class:`~lightrestore.methods.base.Method`.
    """

    method_name = "golf"

    def __init__(
        self,
        f_net: nn.Module,
        g_net: nn.Module,
        loss: nn.Module,
        optimizer: Any,
        phase: str = "f",
        steps: int = 3,
        frozen: Any = None,
        **kwargs: Any,
    ) -> None:
        phase = str(phase)
        if phase not in PHASES:
            raise ConfigError(f"method.phase must be 'f' or 'g', got {phase!r}")
        if isinstance(steps, bool) or int(steps) != steps or int(steps) < 1:
            raise ConfigError(f"method.steps (T, G's steps) must be an integer >= 1, got {steps!r}")
        frozen_names = sorted(str(n) for n in (frozen or []))
        trained, fixed = ("f_net", "g_net") if phase == "f" else ("g_net", "f_net")
        if frozen_names != [fixed]:
            hint = " (and init_from=<the phase-f run's last.ckpt> init_from_networks=[f_net])"
            raise ConfigError(
                f"method.phase={phase} trains {trained} with {fixed} frozen, but method.frozen is "
                f"{frozen_names}: set 'method.frozen=[{fixed}]'" + (hint if phase == "g" else "")
            )
        self.phase, self.steps = phase, int(steps)
        # per instance (the number of G steps is configured); read by Method.__init__
        outputs = ("restored", "input", "after_F")
        if phase == "g":
            outputs += tuple(f"G_{k}" for k in range(1, self.steps + 1))
        self.scored_outputs = outputs
        super().__init__(loss=loss, optimizer=optimizer, frozen=frozen_names, **kwargs)
        self.f_net, self.g_net = f_net, g_net

    # ------------------------------------------------------------------ restoring
    def unroll(self, x0: Tensor) -> list[Tensor]:
        """``[x_1, ..., x_T]`` with ``x_{k+1} = x_k + G(x_k)``: each ``(B, C, H, W)``,
        roughly in [0, 1] (unclamped); differentiable through every step."""
        xs, x = [], x0
        for _ in range(self.steps):
            x = x + self.g_net(x)
            xs.append(x)
        return xs

    def forward(self, degraded: Tensor) -> Tensor:
        """``(B, C, H, W)`` in [0, 1] -> the restoration: ``F(y)`` (phase f) or ``x_T``
        (phase g), same shape, roughly in [0, 1]."""
        x = self.f_net(degraded)
        return self.unroll(x)[-1] if self.phase == "g" else x

    def restore(self, batch: RestorationBatch) -> Tensor:
        """F, then ``T`` steps of G (phase g) or F alone (phase f): ``(B, C, H, W)``."""
        return self(batch.degraded)

    def outputs(self, batch: RestorationBatch) -> dict[str, Tensor]:
        """``restored``, ``input``, ``after_F`` and (phase g) ``G_1``..``G_T``, each
        ``(B, C, H, W)``; ``restored`` is the last of them."""
        x0 = self.f_net(batch.degraded)
        out = {"restored": x0, "input": self.input_estimate(batch), "after_F": x0}
        if self.phase == "g":
            xs = self.unroll(x0)
            out.update({f"G_{k}": x for k, x in enumerate(xs, start=1)})
            out["restored"] = xs[-1]
        return out

    # ------------------------------------------------------------------ training
    def step_losses(self, batch: RestorationBatch) -> list[Tensor]:
        """Phase f: ``[loss(F(y), clean)]``. Phase g: ``[loss(x_k, clean) for k = 1..T]``,
        ``x_0 = F(y)`` computed without gradient."""
        if self.phase == "f":
            return [self.loss(self.f_net(batch.degraded), batch.clean)]
        with torch.no_grad():
            x0 = self.f_net(batch.degraded)
        return [self.loss(x, batch.clean) for x in self.unroll(x0)]

    def training_step(self, batch: RestorationBatch, batch_idx: int) -> Tensor:
        losses = self.step_losses(batch)
        loss = torch.stack(losses).mean()
        self.log_train_loss(loss, len(batch))
        if self.phase == "g":
            self.log_step({f"train/loss_step_{k}": v for k, v in enumerate(losses, start=1)})
        return loss
