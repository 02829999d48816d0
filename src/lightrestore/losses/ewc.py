"""Elastic Weight Consolidation (Kirkpatrick et al. 2017): the diagonal Fisher of a
network part and the quadratic penalty that keeps it near its old weights.

LIRA's Table 4 applies EWC to the old expert (lira.txt §4.5). The Fisher is the empirical
one of the old task's Gaussian log-likelihood, ``log p(y | x) = -½ ‖f(x) − y‖² + const``:

    F_k = (1/n) Σ_samples (∂ℓ_s / ∂θ_k)²,   ℓ_s = ½ Σ_pixels (f(x_s) − y_s)²,

accumulated one sample at a time (per-sample gradients, as EWC defines it, not the square
of a batch gradient). The penalty is ``½ Σ_k F_k (θ_k − θ*_k)²``; the method multiplies it
by its ``ewc_weight`` (EWC's λ).

:class:`FisherDiagonal` keeps the running sums as buffers, so a checkpoint carries them:
LIRA's replay-GAN stage (which still reads the old task's data) accumulates them on the old
task's training batches, and the EWC baseline of the incremental stage loads them with
``init_from`` — the incremental stage never reads old-task data itself.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from torch.func import functional_call


def _key(name: str) -> str:
    return name.replace(".", "__")


class FisherDiagonal(nn.Module):
    """Running sums of squared per-sample gradients of the parameters of ``part`` of a
    network (buffers ``<param name with __ for .>`` plus ``samples``).

    Args:
        network: the whole network whose output the likelihood is of.
        part: the dotted name of the sub-module whose parameters are consolidated
            (``""``: every parameter of ``network``).
    """

    def __init__(self, network: nn.Module, part: str = "") -> None:
        super().__init__()
        self.part = str(part)
        module = network.get_submodule(self.part) if self.part else network
        self.names = [n for n, _ in module.named_parameters()]
        for name, p in module.named_parameters():
            self.register_buffer(_key(name), torch.zeros_like(p, dtype=torch.float32))
        self.register_buffer("samples", torch.zeros((), dtype=torch.float64))

    def _prefixed(self, name: str) -> str:
        return f"{self.part}.{name}" if self.part else name

    @property
    def ready(self) -> bool:
        """True once some samples have been accumulated."""
        return bool(self.samples.item() > 0)

    def fisher(self) -> dict[str, Tensor]:
        """``{parameter name within the part: F}`` (the mean over the samples seen)."""
        n = max(float(self.samples.item()), 1.0)
        return {name: getattr(self, _key(name)) / n for name in self.names}

    @torch.no_grad()
    def _add(self, grads: dict[str, Tensor]) -> None:
        for name, g in grads.items():
            getattr(self, _key(name)).add_(g.float().square())
        self.samples += 1

    def accumulate(
        self,
        network: nn.Module,
        inputs: Tensor,
        targets: Tensor,
        forward: Callable[[nn.Module, Tensor], Tensor] | None = None,
    ) -> None:
        """Add the squared gradients of ``ℓ_s = ½ ‖f(x_s) − y_s‖²`` for every sample of
        ``inputs`` ``(B, C, H, W)`` / ``targets`` (same shape as the output), one sample at
        a time. The network's own parameters are not touched (their ``requires_grad`` and
        ``.grad`` stay as they are: frozen networks work)."""
        forward = forward or (lambda net, x: net(x))
        params = {
            self._prefixed(n): p.detach().requires_grad_(True)
            for n, p in (
                network.get_submodule(self.part) if self.part else network
            ).named_parameters()
        }
        for i in range(inputs.shape[0]):
            with torch.enable_grad():
                out = functional_call(network, params, (inputs[i : i + 1],), strict=False)
                loss = 0.5 * (out - targets[i : i + 1]).square().sum()
                grads = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            self._add({
                name: (g if g is not None else torch.zeros_like(p))
                for name, g, p in zip(self.names, grads, params.values())
            })  # fmt: skip

    def penalty(self, current: nn.Module, reference: nn.Module) -> Tensor:
        """``½ Σ_k F_k (θ_k − θ*_k)²`` between ``current`` (the part being trained) and
        ``reference`` (the same part at the old task's weights): a scalar, differentiable
        in ``current``'s parameters; 0 at the old weights."""
        fisher = self.fisher()
        ref = dict(reference.named_parameters())
        total = None
        for name, p in current.named_parameters():
            term = (fisher[name] * (p - ref[name].detach()).square()).sum()
            total = term if total is None else total + term
        if total is None:
            raise ValueError("the consolidated part has no parameters")
        return 0.5 * total
