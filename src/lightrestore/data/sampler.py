"""The difficulty sampler: which level each training sample of a batch is corrupted at.

The DataModule owns one :class:`DifficultySampler`. Difficulty *policies*
(callbacks: fixated, rigid joint, curricula, on-demand) only change its
``weights``; the sampler turns weights into per-batch level assignments, keeps the
allocation history, and saves/restores all of it with the checkpoint so that a
resumed run continues with the same allocation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from lightrestore.errors import ConfigError


def largest_remainder(
    weights: Tensor, total: int, generator: torch.Generator | None = None
) -> Tensor:
    """Integer counts proportional to ``weights`` that sum exactly to ``total``.

    Each level gets ``floor(w_i * total)``; the ``total - sum`` samples left over go
    to the levels with the largest fractional parts (Hamilton's method). Exact ties
    in the fractional parts are broken at random with ``generator``, so that small
    batches under equal weights do not always favour the easy levels.

    Args:
        weights: ``(N,)`` non-negative weights summing to 1 (float64 advised).
        total: the batch size ``B``.
        generator: CPU generator for tie-breaking.

    Returns:
        ``(N,)`` int64 counts, ``counts.sum() == total``.

    Example (ODL Eq. 3 with PSNRs 20, 25, 40 and B = 100): weights
    (0.4348, 0.3478, 0.2174) -> raw (43.48, 34.78, 21.74) -> floors (43, 34, 21),
    2 left over -> the largest remainders .78 and .74 -> counts (43, 35, 22).
    """
    w = weights.detach().to(torch.float64).cpu()
    raw = w * total
    counts = torch.floor(raw + 1e-9).long()
    left = int(total - counts.sum())
    if left > 0:
        frac = raw - counts.double()
        # random tie-breaking: sort by (-fraction, random key)
        key = torch.rand(w.shape, generator=generator, dtype=torch.float64)
        order = sorted(range(len(w)), key=lambda i: (-round(float(frac[i]), 12), float(key[i])))
        for i in order[:left]:
            counts[i] += 1
    return counts


def inverse_psnr_weights(psnr: Sequence[float] | Tensor, floor: float = 1e-3) -> Tensor:
    """On-demand learning's Eq. 3: ``w_i = (1/P_i) / sum_j (1/P_j)``.

    Args:
        psnr: ``(N,)`` mean validation PSNR per level, in dB.
        floor: PSNRs are clamped to at least this (a PSNR <= 0 would flip the sign).

    Returns:
        ``(N,)`` float64 weights summing to 1.
    """
    p = torch.as_tensor(psnr, dtype=torch.float64).clamp_min(floor)
    inv = 1.0 / p
    return inv / inv.sum()


class DifficultySampler:
    """Weights over the ``N`` training levels and the per-batch level assignment.

    Args:
        n_levels: number of training levels ``N`` (levels are 1-based).
        weights: initial weights (default: equal, as ODL starts).
        seed: seed of the sampler's own CPU generator (assignment shuffling and
            tie-breaking); independent of the device generator of the corruption.

    Attributes:
        weights: ``(N,)`` float64 weights summing to 1, read by :meth:`assign`.
        fixed: optional dict of fixed corruption settings (fixated baselines), e.g.
            ``{"severity": 32, "centered": True}``; passed to ``Degradation.sample``.
        history: one row per training epoch: ``{"epoch", "weights", "images"}``,
            ``images`` being how many training images each level received.
    """

    def __init__(
        self, n_levels: int, weights: Sequence[float] | None = None, seed: int = 0
    ) -> None:
        if n_levels < 1:
            raise ConfigError(f"the sampler needs at least one level, got n_levels={n_levels}")
        self.n_levels = int(n_levels)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.weights = torch.full((self.n_levels,), 1.0 / self.n_levels, dtype=torch.float64)
        self.fixed: dict[str, Any] | None = None
        self.history: list[dict[str, Any]] = []
        self.steps = 0
        self._epoch: int | None = None
        self._epoch_counts = torch.zeros(self.n_levels, dtype=torch.long)
        self._epoch_weights: list[float] = []
        if weights is not None:
            self.set_weights(weights)

    # ---------------------------------------------------------------- weights
    def set_weights(self, weights: Sequence[float] | Tensor) -> None:
        """Replace the weights (normalised to sum 1); takes effect at the next batch."""
        w = torch.as_tensor(weights, dtype=torch.float64).flatten().cpu()
        if w.numel() != self.n_levels:
            raise ConfigError(
                f"got {w.numel()} level weights for a ladder of {self.n_levels} training levels: "
                f"give exactly {self.n_levels} weights (levels 1..{self.n_levels})"
            )
        if not torch.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"level weights must be finite, >= 0 and not all 0; got {w.tolist()}")
        self.weights = w / w.sum()

    def counts(self, batch_size: int) -> Tensor:
        """``(N,)`` per-level counts for a batch of ``batch_size`` (largest remainder)."""
        return largest_remainder(self.weights, batch_size, self.generator)

    # ---------------------------------------------------------------- assignment
    def assign(self, batch_size: int, epoch: int | None = None) -> Tensor:
        """Levels for one training batch.

        Counts per level by :func:`largest_remainder`, then shuffled, on the CPU with
        the sampler's generator (no device sync; identical on every machine).

        Args:
            batch_size: ``B``.
            epoch: the current training epoch, for the allocation history.

        Returns:
            ``(B,)`` int64 CPU tensor of levels in ``1..N``.
        """
        counts = self.counts(batch_size)
        levels = torch.repeat_interleave(torch.arange(1, self.n_levels + 1), counts)
        levels = levels[torch.randperm(batch_size, generator=self.generator)]
        self._count(counts, epoch)
        return levels

    def record(self, levels: Tensor, epoch: int | None = None) -> None:
        """Count a batch whose levels were not assigned here (a static pool's batch).

        Args:
            levels: ``(B,)`` CPU tensor of levels in ``1..N``.
        """
        counts = torch.bincount(levels.long().cpu() - 1, minlength=self.n_levels)[: self.n_levels]
        self._count(counts, epoch)

    def _count(self, counts: Tensor, epoch: int | None) -> None:
        if epoch is not None and epoch != self._epoch:
            self._close_epoch()
            self._epoch = int(epoch)
            self._epoch_weights = self.weights.tolist()
        self._epoch_counts += counts
        self.steps += 1

    def _close_epoch(self) -> None:
        if self._epoch is None:
            return
        self.history.append(self._current_row())
        self._epoch = None
        self._epoch_counts = torch.zeros(self.n_levels, dtype=torch.long)

    def _current_row(self) -> dict[str, Any]:
        return {
            "epoch": self._epoch,
            "weights": list(self._epoch_weights),
            "images": self._epoch_counts.tolist(),
        }

    def allocation(self) -> list[dict[str, Any]]:
        """The allocation history including the epoch in progress."""
        rows = list(self.history)
        if self._epoch is not None:
            rows.append(self._current_row())
        return rows

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain containers only (loads with ``weights_only=True``)."""
        return {
            "n_levels": self.n_levels,
            "weights": self.weights.clone(),
            "fixed": dict(self.fixed) if self.fixed is not None else None,
            "history": [dict(r) for r in self.history],
            "steps": self.steps,
            "epoch": self._epoch,
            "epoch_counts": self._epoch_counts.clone(),
            "epoch_weights": list(self._epoch_weights),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if int(state["n_levels"]) != self.n_levels:
            raise ConfigError(
                f"the checkpoint's sampler has {state['n_levels']} levels "
                "but this task's ladder has "
                f"{self.n_levels}: resume with the same task"
            )
        self.weights = torch.as_tensor(state["weights"], dtype=torch.float64).clone()
        self.fixed = dict(state["fixed"]) if state.get("fixed") is not None else None
        self.history = [dict(r) for r in state["history"]]
        self.steps = int(state["steps"])
        self._epoch = state["epoch"]
        self._epoch_counts = torch.as_tensor(state["epoch_counts"]).clone().long()
        self._epoch_weights = list(state["epoch_weights"])
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        w = ", ".join(f"{v:.3f}" for v in self.weights.tolist())
        return f"DifficultySampler(levels=1..{self.n_levels}, weights=[{w}], fixed={self.fixed})"
