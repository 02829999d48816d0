"""A toy two-network method for the core's tests (Golf / LIRA-shaped, tiny).

``f_net`` (an "aggressive" first pass, usually frozen after its own stage), then ``g_net``
(a residual refinement) trained with its own optimiser, and ``d_net`` (a one-layer critic
of the refinement, trained with a second optimiser): Lightning's manual optimisation
with two optimisers, as in Lightning's GAN example. It calls the configured loss twice per
batch, and scores ``after_F`` and ``G_1`` besides ``restored`` and ``input``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback
from torch import Tensor, nn

from lightrestore.data.batch import RestorationBatch
from lightrestore.methods.base import Method


class SmallNet(nn.Module):
    """``(B, C, H, W) -> (B, C, H, W)``: two 3×3 convs, a residual, clamped to [0, 1]."""

    def __init__(self, channels: int = 3, width: int = 8) -> None:
        super().__init__()
        self.channels = channels
        self.body = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU())
        self.tail = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return (x + self.tail(self.body(x))).clamp(0, 1)


class Critic(nn.Module):
    """``(B, C, H, W) -> (B,)``: a 1×1 conv, averaged."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x).mean(dim=(1, 2, 3))


class TwoNetMethod(Method):
    """``restored = g_net(f_net(x))``; ``d_net`` learns to tell ``g_net``'s output from clean."""

    method_name = "toy_two_net"
    scored_outputs = ("restored", "input", "after_F", "G_1")

    def __init__(self, f_net: nn.Module, g_net: nn.Module, d_net: nn.Module, adv_weight: float = 0.01,
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.automatic_optimization = False
        self.f_net, self.g_net, self.d_net = f_net, g_net, d_net
        self.adv_weight = float(adv_weight)

    def restore(self, batch: RestorationBatch) -> Tensor:
        return self.g_net(self.f_net(batch.degraded))

    def outputs(self, batch: RestorationBatch) -> dict[str, Tensor]:
        after_f = self.f_net(batch.degraded)
        g1 = self.g_net(after_f)
        return {"restored": g1, "input": self.input_estimate(batch), "after_F": after_f, "G_1": g1}

    def training_step(self, batch: RestorationBatch, batch_idx: int) -> None:
        opts = self.named_optimizers()
        with torch.no_grad() if "f_net" in self.frozen else torch.enable_grad():
            after_f = self.f_net(batch.degraded)
        restored = self.g_net(after_f)
        # the refinement: the configured loss (PSPL or hard mining apply) + an adversarial term
        loss_g = self.loss(restored, batch.clean) - self.adv_weight * self.d_net(restored).mean()
        opts["g_net"].zero_grad()
        self.manual_backward(loss_g)
        opts["g_net"].step()
        # the critic, on detached images; the configured loss called a second time
        loss_d = self.d_net(restored.detach()).mean() - self.d_net(batch.clean).mean()
        loss_d = loss_d + 0.0 * self.loss(restored.detach(), batch.clean)
        opts["d_net"].zero_grad()
        self.manual_backward(loss_d)
        opts["d_net"].step()
        self.log_train_loss(loss_g.detach(), len(batch))

    def on_train_epoch_end(self) -> None:
        super().on_train_epoch_end()  # train/loss, the epoch mean
        self.step_schedulers()


class Watch(Callback):
    """Test callback: the method's weights at fit start, and the train/eval modes of
    ``(f_net, g_net, d_net)`` at every training batch."""

    def __init__(self) -> None:
        self.start: dict[str, Tensor] = {}
        self.modes: list[tuple[bool, bool, bool]] = []

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.start = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        nets = (pl_module.f_net, pl_module.g_net, pl_module.d_net)
        self.modes.append(tuple(n.training for n in nets))


def toy_method_config(**overrides: Any) -> dict[str, Any]:
    """The method node of a run config (``tests/conf/method/toy_two_net.yaml``, the file the
    CLI tests select with ``method=toy_two_net``), with ``overrides`` replacing top-level
    entries: ``cfg.method = OmegaConf.create(toy_method_config(frozen=[]))``."""
    from omegaconf import OmegaConf

    path = Path(__file__).parent / "conf" / "method" / "toy_two_net.yaml"
    cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    cfg.update(overrides)
    return cfg
