"""Difficulty policies: callbacks that set the DataModule sampler's level weights.

A policy never touches the model, the loss or the degradation: it only reads
synced validation metrics (or the epoch) and writes ``sampler.weights`` (and, for
the fixated baselines, ``sampler.fixed``). It therefore applies unchanged to every
method and every degradation ladder. Each policy also logs the allocation of the
epoch just trained (``alloc/weight/level_i`` and ``alloc/images/level_i``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from lightrestore.data.sampler import DifficultySampler, inverse_psnr_weights
from lightrestore.errors import ConfigError

log = logging.getLogger(__name__)


def sampler_of(trainer: Trainer) -> DifficultySampler:
    dm = getattr(trainer, "datamodule", None)
    sampler = getattr(dm, "sampler", None)
    if not isinstance(sampler, DifficultySampler):
        raise ConfigError(
            "difficulty policies need a DataModule with a `sampler` (RestorationDataModule)"
        )
    return sampler


class DifficultyPolicy(Callback):
    """Base class: logs the allocation of each finished training epoch."""

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        rows = sampler_of(trainer).allocation()
        if not rows:
            return
        row = rows[-1]
        # weights are identical on every rank (their mean is a no-op); images are summed
        for i, (w, n) in enumerate(zip(row["weights"], row["images"]), start=1):
            pl_module.log(f"alloc/weight/level_{i}", float(w), on_epoch=True, sync_dist=True)
            pl_module.log(
                f"alloc/images/level_{i}", float(n), on_epoch=True, sync_dist=True, reduce_fx="sum"
            )


class FixedWeightsPolicy(DifficultyPolicy):
    """Constant level weights for the whole run.

    ``weights=None`` gives equal counts per level: ODL's *rigid joint learning*.
    A one-hot vector trains on a single level of the ladder.
    """

    def __init__(self, weights: Sequence[float] | None = None) -> None:
        self.weights = list(weights) if weights is not None else None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        sampler = sampler_of(trainer)
        n = sampler.n_levels
        sampler.set_weights(self.weights if self.weights is not None else [1.0] * n)
        sampler.fixed = None


class FixatedPolicy(DifficultyPolicy):
    """ODL's fixated baselines: every training image gets one fixed corruption setting.

    Args:
        fixed: the setting, passed to ``Degradation.sample(fixed=...)``, e.g.
            ``{"severity": 32, "centered": True}`` (inpainting, hard). The task
            configs define ``fixated.easy`` and ``fixated.hard`` from METHODS.md.

    For the allocation log the images are counted at the level whose bin contains the
    severity (clipped to the training levels ``1..N``).
    """

    def __init__(self, fixed: Mapping[str, Any]) -> None:
        if not fixed or "severity" not in fixed:
            raise ConfigError("a fixated policy needs `fixed` with at least a `severity`")
        self.fixed = dict(fixed)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        sampler = sampler_of(trainer)
        ladder = trainer.datamodule.ladder
        level = min(ladder.level_of(float(self.fixed["severity"])), sampler.n_levels)
        onehot = [0.0] * sampler.n_levels
        onehot[level - 1] = 1.0
        sampler.set_weights(onehot)
        sampler.fixed = dict(self.fixed)


class OnDemandPolicy(DifficultyPolicy):
    """On-Demand Learning (Gao & Grauman 2017, Eq. 3).

    Training starts with equal counts per level. After every validation, with
    ``P_i`` the mean validation PSNR of level ``i`` (synced over ranks by the
    metrics), the next epoch's batches get ``B_i = B·(1/P_i)/Σ_j(1/P_j)`` images of
    level ``i`` (largest-remainder rounding in the sampler). Every rank reads the
    same synced values, so every rank holds the same weights.

    Args:
        metric: the per-level validation metric key prefix (``val/psnr``).
        floor: PSNRs are clamped to at least this many dB before inversion.
    """

    def __init__(self, metric: str = "val/psnr", floor: float = 1e-3) -> None:
        self.metric = metric
        self.floor = floor

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            sampler = sampler_of(trainer)
            if sampler.steps == 0:
                sampler.set_weights([1.0] * sampler.n_levels)
            sampler.fixed = None

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking:
            return
        sampler = sampler_of(trainer)
        psnr = []
        for i in range(1, sampler.n_levels + 1):
            key = f"{self.metric}/level_{i}"
            if key not in trainer.callback_metrics:
                raise ConfigError(
                    f"on-demand learning needs the validation metric '{key}' "
                    "for every training level; "
                    "validate on all training levels (data.val_levels=null)"
                )
            psnr.append(float(trainer.callback_metrics[key]))
        sampler.set_weights(inverse_psnr_weights(psnr, self.floor))
        log.info(
            "on-demand: PSNR %s -> weights %s",
            [round(p, 2) for p in psnr],
            [round(w, 3) for w in sampler.weights.tolist()],
        )
