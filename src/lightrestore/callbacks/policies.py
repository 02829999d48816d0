"""Difficulty policies: callbacks that set the DataModule sampler's level weights.

A policy never touches the networks or the degradation: it only reads synced
validation metrics (or the epoch) and writes ``sampler.weights`` (and, for the
fixated baselines, ``sampler.fixed``); hard mining also switches the top-k wrapper on
the method's configured loss (:mod:`lightrestore.losses.hard_mining`). It therefore
applies unchanged to every method that trains with its configured loss and to every
degradation ladder. Each policy also logs the allocation of the
epoch just trained (``alloc/weight/level_i`` and ``alloc/images/level_i``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer

from lightrestore.data.sampler import DifficultySampler, inverse_psnr_weights
from lightrestore.errors import ConfigError
from lightrestore.losses.hard_mining import HardMiningLoss, set_hard_mining

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
    """Base class: starts every fit from a clean sampler state and logs the allocation of
    each finished training epoch.

    ``setup("fit")`` resets what another policy may have left on the same DataModule and
    method (equal weights, no fixed setting, corruption on the fly, hard mining off);
    subclasses then set their own. A resumed run's sampler state is loaded after setup.
    """

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            return
        sampler = sampler_of(trainer)
        sampler.set_weights([1.0] * sampler.n_levels)
        sampler.fixed = None
        use_on_the_fly = getattr(trainer.datamodule, "use_on_the_fly", None)
        if callable(use_on_the_fly):
            use_on_the_fly()
        set_hard_mining(pl_module, None)

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
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and self.weights is not None:
            sampler_of(trainer).set_weights(self.weights)


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
        super().setup(trainer, pl_module, stage)
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

    # setup: the base class's clean state (equal counts per level)

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


class _Curriculum(DifficultyPolicy):
    """A schedule of level weights over epochs, in stages of ``E`` epochs.

    Args:
        epochs_per_stage: ``E``; default ``trainer.max_epochs // N`` so that the ``N``
            stages fill the training budget (ODL: 300 epochs × 5 levels = 1500).
        anti: reverse the order (hardest level first).

    The weights are a function of the epoch, so a resumed run continues the schedule;
    ``E`` and the order are saved in the checkpoint and checked on resume.
    """

    kind = "curriculum"

    def __init__(self, epochs_per_stage: int | None = None, anti: bool = False) -> None:
        if epochs_per_stage is not None and int(epochs_per_stage) < 1:
            raise ConfigError(f"epochs_per_stage must be >= 1, got {epochs_per_stage}")
        self.epochs_per_stage = None if epochs_per_stage is None else int(epochs_per_stage)
        self.anti = bool(anti)
        self._stage_epochs: int | None = None

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        n = sampler_of(trainer).n_levels
        if self.epochs_per_stage is not None:
            self._stage_epochs = self.epochs_per_stage
        else:
            max_epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else n
            self._stage_epochs = max(1, max_epochs // n)

    def order(self, n: int) -> list[int]:
        """Levels in the order they are introduced (1-based)."""
        levels = list(range(1, n + 1))
        return levels[::-1] if self.anti else levels

    def stage(self, epoch: int, n: int) -> int:
        """0-based stage of ``epoch``; the last stage continues past the schedule."""
        assert self._stage_epochs is not None, "setup() first"
        return min(epoch // self._stage_epochs, n - 1)

    def active_levels(self, epoch: int, n: int) -> list[int]:
        raise NotImplementedError

    def weights(self, epoch: int, n: int) -> list[float]:
        """Equal weights over the active levels of ``epoch``."""
        active = self.active_levels(epoch, n)
        return [1.0 if lv in active else 0.0 for lv in range(1, n + 1)]

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        sampler = sampler_of(trainer)
        sampler.set_weights(self.weights(trainer.current_epoch, sampler.n_levels))

    def state_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "anti": self.anti, "epochs_per_stage": self._stage_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        saved = (state.get("kind"), state.get("anti"), state.get("epochs_per_stage"))
        mine = (self.kind, self.anti, self._stage_epochs)
        if self._stage_epochs is not None and saved != mine:
            raise ConfigError(
                f"the checkpoint was trained with curriculum {saved[0]} (anti={saved[1]}, "
                f"epochs_per_stage={saved[2]}) but this run uses {mine[0]} (anti={mine[1]}, "
                f"epochs_per_stage={mine[2]}): resume with the same curriculum settings "
                f"(curriculum.epochs_per_stage={saved[2]})"
            )


class StagedCurriculum(_Curriculum):
    """ODL's staged curriculum: one level at a time, ``E`` epochs each, easy → hard
    (``anti=True``: hard → easy). After the last stage it stays on the last level."""

    kind = "staged"

    def active_levels(self, epoch: int, n: int) -> list[int]:
        return [self.order(n)[self.stage(epoch, n)]]


class CumulativeCurriculum(_Curriculum):
    """ODL's cumulative curriculum: start with level 1 (``anti``: level N) and add the
    next level every ``E`` epochs, equal counts among the active levels."""

    kind = "cumulative"

    def active_levels(self, epoch: int, n: int) -> list[int]:
        return self.order(n)[: self.stage(epoch, n) + 1]


class HardMiningPolicy(DifficultyPolicy):
    """ODL's hard-mining baseline.

    Trains on a static pool of pre-corrupted images drawn over all training levels
    (equal counts, seeded; the paper's pool holds 1M images); after ``warmup_epochs``
    of normal training, only the ``fraction`` of each batch with the highest loss is
    back-propagated (paper: 10 of 100).

    The defaults are the embedded-data scale of ``curriculum=hard_mining`` (a pool of 5
    epochs, 1 warm-up epoch); ``curriculum=hard_mining_paper`` has the paper's (a
    1,000,000-pair pool, 50 warm-up epochs, 10 of 100).

    Args:
        pool_size: pairs in the static pool; ``None``: ``pool_factor`` × the epoch length.
        pool_factor: the pool size in epochs when ``pool_size`` is ``None`` (default 5).
        warmup_epochs: epochs of plain training on the pool first (default 1; paper: 50).
        fraction: share of each batch kept (``ceil(fraction·B)``, at least one; paper 0.1).
    """

    def __init__(
        self,
        pool_size: int | None = None,
        pool_factor: float = 5.0,
        warmup_epochs: int = 1,
        fraction: float = 0.1,
    ) -> None:
        if pool_size is None:
            pool_size = 1  # resolved in setup, from the epoch length
            self._auto_pool = True
        else:
            self._auto_pool = False
        if pool_size < 1 or pool_factor <= 0 or warmup_epochs < 0 or not 0 < fraction <= 1:
            raise ConfigError(
                "hard mining needs pool_size >= 1, pool_factor > 0, warmup_epochs >= 0 and "
                f"0 < fraction <= 1; got {pool_size}, {pool_factor}, {warmup_epochs}, {fraction}"
            )
        self.pool_size = int(pool_size)
        self.pool_factor = float(pool_factor)
        self.warmup_epochs = int(warmup_epochs)
        self.fraction = float(fraction)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage != "fit":
            return
        loss = getattr(pl_module, "loss", None)
        if not isinstance(loss, HardMiningLoss):  # checks the loss has a per-sample form
            pl_module.loss = HardMiningLoss(loss)
        dm = trainer.datamodule
        if self._auto_pool:
            dm.setup("fit")
            self.pool_size = max(1, round(self.pool_factor * len(dm.train_set)))
        dm.use_static_pool(self.pool_size)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        mining = trainer.current_epoch >= self.warmup_epochs
        set_hard_mining(pl_module, self.fraction if mining else None)

    # a run resumed mid-epoch does not call on_train_epoch_start for that epoch
    on_train_start = on_train_epoch_start
