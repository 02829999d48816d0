"""Adversarial losses for the replay generator (LIRA's memory replay, lira.txt Eq. 15).

``least_squares`` (LSGAN, Mao et al. 2017) is what CycleGAN's code trains with by default,
which LIRA builds on; ``vanilla`` is the log form Eq. 15 writes (binary cross-entropy on
logits). Targets are 1 for real and 0 for fake.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lightrestore.errors import ConfigError

GAN_MODES = ("least_squares", "vanilla")


def adversarial_loss(logits: Tensor, real: bool, mode: str = "least_squares") -> Tensor:
    """The discriminator's (or, with ``real=True`` on fakes, the generator's) loss for a
    map of logits ``(B, 1, h, w)``: mean over the map and the batch."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    if mode == "least_squares":
        return F.mse_loss(logits, target)
    if mode == "vanilla":
        return F.binary_cross_entropy_with_logits(logits, target)
    raise ConfigError(f"gan mode must be one of {GAN_MODES}, got {mode!r}")
