"""``LiraReplayGAN``: LIRA's memory replay generator (lira.txt §3.3, Eqs. 15-17).

A CycleGAN-style generator ``G`` (ResNet, 9 blocks) learns to turn clean images into the old
task's blended distortions; its cycle goes through the frozen base network ``R`` of the join
stage instead of a second generator:

    L = L_GAN(G, D) + λ1 · ‖R(G(y1)) − y1‖₁,   λ1 = 10,

with a PatchGAN discriminator ``D`` telling real distorted images ``x1`` from ``G(y1)``. This
stage still reads the old task's data (it models it); the incremental stage then replays
``G``'s pseudo samples instead.

Networks: ``generator``, ``discriminator`` (trained, one Adam each, Lightning's manual
optimisation), ``base_net`` (R, frozen, loaded from the join stage with
``init_from_networks: {base_net: model}``), ``ewc_fisher`` (the old expert's diagonal Fisher,
accumulated on the first ``fisher_samples`` training images for the EWC baseline: see
:mod:`lightrestore.losses.ewc`).

Logged: ``train/loss`` (generator objective), ``train/loss_D``, ``train/loss_adv``,
``train/loss_cyc``. Scored outputs: ``restored`` (R's restoration of the degraded input, the
old task), ``input``, ``pseudo_input`` (``G(clean)``: compare its PSNR with ``input``'s to see
whether G's distortions are as strong as the real ones) and ``pseudo_restored``
(``R(G(clean))``, the cycle).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.errors import ConfigError
from lightrestore.losses.ewc import FisherDiagonal
from lightrestore.losses.gan import GAN_MODES, adversarial_loss
from lightrestore.methods.base import Method


class LiraReplayGAN(Method):
    """Train the replay generator against a PatchGAN, its cycle through the frozen base.

    Args:
        generator: clean ``(B, C, H, W)`` in [0, 1] -> a distorted image, same shape.
        discriminator: ``(B, C, H, W)`` -> a map of logits ``(B, 1, h, w)``.
        base_net: the join stage's base network R (frozen: list it in ``frozen``).
        optimizer: ``{generator: partial, discriminator: partial}``.
        cycle_weight: λ1 (10).
        gan_mode: ``least_squares`` (CycleGAN's code) or ``vanilla`` (Eq. 15's log form).
        fisher_samples: training images on which the old expert's Fisher is accumulated
            (0: none); the old expert is ``fisher_part`` of ``base_net``.
    """

    method_name = "lira_replay_gan"
    scored_outputs = ("restored", "input", "pseudo_input", "pseudo_restored")

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        base_net: nn.Module,
        optimizer: Any,
        cycle_weight: float = 10.0,
        gan_mode: str = "least_squares",
        fisher_samples: int = 64,
        fisher_part: str = "amalgamator",
        frozen: Any = None,
        **kwargs: Any,
    ) -> None:
        if gan_mode not in GAN_MODES:
            raise ConfigError(f"method.gan_mode must be one of {GAN_MODES}, got {gan_mode!r}")
        frozen = [str(n) for n in (frozen or [])]
        if "base_net" not in frozen:
            raise ConfigError(
                "LIRA's replay GAN cycles through the trained base network, which stays "
                "fixed: set method.frozen=[base_net]"
            )
        super().__init__(optimizer=optimizer, frozen=frozen, **kwargs)
        self.automatic_optimization = False
        self.generator, self.discriminator, self.base_net = generator, discriminator, base_net
        self.cycle_weight, self.gan_mode = float(cycle_weight), str(gan_mode)
        self.fisher_samples = int(fisher_samples)
        self.ewc_fisher = FisherDiagonal(base_net, fisher_part)

    # ------------------------------------------------------------------ restoring
    def restore(self, batch: RestorationBatch) -> Tensor:
        """R's restoration of ``batch.degraded`` (the old task's network)."""
        return self.base_net(batch.degraded)

    def outputs(self, batch: RestorationBatch) -> dict[str, Tensor]:
        out = super().outputs(batch)
        fake = self.generator(batch.clean)
        out["pseudo_input"] = fake
        out["pseudo_restored"] = self.base_net(fake)
        return out

    # ------------------------------------------------------------------ training
    def training_step(self, batch: RestorationBatch, batch_idx: int) -> None:
        opts = self.named_optimizers()
        opt_g, opt_d = opts["generator"], opts["discriminator"]
        y1, x1 = batch.clean, batch.degraded
        self._accumulate_fisher(x1, y1)

        # generator: fool D, and let R restore what G distorted (the cycle, Eq. 16)
        fake = self.generator(y1)
        loss_adv = adversarial_loss(self.discriminator(fake), True, self.gan_mode)
        loss_cyc = (self.base_net(fake) - y1).abs().mean()
        loss_g = loss_adv + self.cycle_weight * loss_cyc
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()

        # discriminator: real distorted images against G's
        loss_d = 0.5 * (
            adversarial_loss(self.discriminator(x1), True, self.gan_mode)
            + adversarial_loss(self.discriminator(fake.detach()), False, self.gan_mode)
        )
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()

        self.log_train_loss(loss_g, len(batch))
        self.log_step(
            {"train/loss_D": loss_d, "train/loss_adv": loss_adv, "train/loss_cyc": loss_cyc}
        )

    def _accumulate_fisher(self, x: Tensor, y: Tensor) -> None:
        """The old expert's Fisher on the first ``fisher_samples`` training images (R is
        frozen, so it is the same whenever it is taken; the sums are checkpointed)."""
        seen = int(self.ewc_fisher.samples.item())
        if seen >= self.fisher_samples:
            return
        take = min(self.fisher_samples - seen, x.shape[0])
        self.ewc_fisher.accumulate(self.base_net, x[:take].detach(), y[:take].detach())

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()
        self.step_schedulers()

    def apply_frozen(self) -> None:
        super().apply_frozen()
        self.ewc_fisher.requires_grad_(False)
