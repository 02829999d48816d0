"""Hard mining (ODL's baseline) as a wrapper around any loss with a per-sample form.

The hard-mining policy (``curriculum=hard_mining``) wraps the method's configured loss
once (:func:`set_hard_mining`) and switches the top-k on after its warm-up, so every
method that calls its configured loss trains on the hardest samples, whatever its
networks. The wrapper is invisible in checkpoints: its state dict is the wrapped loss's.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor, nn

from lightrestore.errors import ConfigError


def topk_mean(per_sample: Tensor, fraction: float) -> Tensor:
    """Mean of the ``ceil(fraction·B)`` largest of the ``(B,)`` values (at least one)."""
    k = max(1, math.ceil(fraction * per_sample.shape[0]))
    return per_sample.topk(min(k, per_sample.shape[0])).values.mean()


class HardMiningLoss(nn.Module):
    """``loss(pred, target)``; with ``fraction`` set, the mean over the ``ceil(fraction·B)``
    samples with the highest per-sample loss (ODL: 10 of 100), the others get no gradient.

    Args:
        base: a loss with ``per_sample(pred, target) -> (B,)`` (``loss=mse``, ``l1``, ``pspl``).
        fraction: ``None`` (plain ``base``) or the share of each batch kept, in (0, 1].
    """

    def __init__(self, base: nn.Module, fraction: float | None = None) -> None:
        super().__init__()
        if not callable(getattr(base, "per_sample", None)):
            raise ConfigError(
                f"hard mining needs a loss with a per-sample form (`per_sample`), and "
                f"{type(base).__name__} has none: use loss=mse, loss=l1 or loss=pspl"
            )
        self.base = base
        self.fraction = fraction
        self.log_name = getattr(base, "log_name", type(base).__name__)
        # state dicts hold the wrapped loss's keys, as if it were not wrapped
        self.register_state_dict_post_hook(_unwrap_keys)
        self.register_load_state_dict_pre_hook(_wrap_keys)

    def per_sample(self, pred: Tensor, target: Tensor) -> Tensor:
        return self.base.per_sample(pred, target)

    def forward(self, pred: Tensor, target: Tensor) -> Tensor:
        if self.fraction is None:
            return self.base(pred, target)
        return topk_mean(self.base.per_sample(pred, target), self.fraction)

    def log_values(self) -> dict[str, Tensor]:
        values = getattr(self.base, "log_values", None)
        return values() if callable(values) else {}

    def extra_repr(self) -> str:
        return f"fraction={self.fraction}"


def _unwrap_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, meta: Any) -> None:
    inner = prefix + "base."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner):]] = state_dict.pop(key)


def _wrap_keys(module: nn.Module, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
    inner = prefix + "base."
    for key in [k for k in state_dict if k.startswith(prefix) and not k.startswith(inner)]:
        state_dict[inner + key[len(prefix):]] = state_dict.pop(key)


def set_hard_mining(method: nn.Module, fraction: float | None) -> None:
    """Set hard mining on ``method.loss``: ``fraction`` (the share kept) wraps the configured
    loss on first use; ``None`` switches it off (a no-op for an unwrapped loss)."""
    loss = getattr(method, "loss", None)
    if isinstance(loss, HardMiningLoss):
        loss.fraction = fraction
    elif fraction is not None:
        if not isinstance(loss, nn.Module):
            raise ConfigError(
                f"hard mining needs a method that trains with its configured loss "
                f"(method.loss); {type(method).__name__} has none"
            )
        method.loss = HardMiningLoss(loss, fraction)


__all__ = ["HardMiningLoss", "set_hard_mining", "topk_mean"]
