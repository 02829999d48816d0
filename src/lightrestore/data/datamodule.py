"""``RestorationDataModule``: clean patches to the device, corruption on the device.

Training: the loader yields clean uint8 patches ``(B, C, S, S)``; after the transfer
to the device, :meth:`on_after_batch_transfer` asks the :class:`DifficultySampler`
for one level per sample, draws the degradation's parameters on the device and
corrupts the batch there (batched, per-sample parameters, no host sync).

Validation and test: fixed, seeded per-level pairs generated on the CPU once
(:mod:`lightrestore.data.eval_set`), identical for every method and machine. Test
*variants* (e.g. centred holes for inpainting) are extra test sets with the same
clean patches and severities. Whole-image benchmark sets (``benchmark_sets``) and
pre-made pairs read from files (``premade_pairs``, RL-Restore's mild / moderate / severe
test sets: :mod:`lightrestore.data.premade_pairs`) are further named test sets.

Hard mining (ODL's baseline) swaps the on-the-fly corruption for a static pool of
pre-corrupted pairs over all levels (:meth:`use_static_pool`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from lightrestore.data.batch import RestorationBatch
from lightrestore.data.eval_set import (
    EvalPairs,
    EvalSet,
    PoolDataset,
    ResidentEvalLoader,
    as_float,
    build_eval_set,
)
from lightrestore.data.image_test_set import (
    ImagePairs,
    ImageTestSet,
    benchmark_folder,
    build_image_test_set,
)
from lightrestore.data.premade_pairs import PremadePairs, read_premade_pairs
from lightrestore.data.sampler import DifficultySampler
from lightrestore.data.sources import ImageSource
from lightrestore.data.sources.image_list import ImageList, ResizedImageList
from lightrestore.data.train_loader import EpochSampler, ResumableLoader
from lightrestore.data.train_set import RandomCropDataset
from lightrestore.degradations.base import Degradation
from lightrestore.errors import ConfigError, LevelError

log = logging.getLogger(__name__)

DEFAULT = "default"


def default_workers() -> int:
    """Loader workers sized from the machine: one core is left to the main process."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


class RestorationDataModule(LightningDataModule):
    """Data for one degradation ladder.

    Args:
        source: where clean images come from (``EmbeddedSource``, ``FolderSource``).
        degradation: the degradation family and its ladder.
        crop_size: side ``S`` of training and evaluation patches (64 in ODL); rounded
            down to a multiple of the degradation's ``scale`` (super-resolution).
        batch_size: training batch ``B`` (100 in ODL).
        eval_batch_size: validation/test batch (default ``batch_size``).
        train_samples_per_epoch: patches per training epoch (default: one per
            training image; set it for small sources such as the embedded photos).
        val_per_level / test_per_level: fixed pairs per level.
        val_levels / test_levels: levels evaluated (default ``1..N`` for validation,
            ``1..N+1`` for testing).
        test_variants: extra test sets, ``{name: fixed settings}`` passed to the
            degradation (e.g. ``{"centered": {"centered": True}}``). A variant may name
            its ``levels`` (default: every test level); one that fixes a ``severity`` is
            a *test setting* (DL-Net's protocol: a hole of side 10 shifted by up to 10 px,
            a deletion rate of 45 %, a blur width of 1.3) and is evaluated at the one
            level whose bin holds that severity.
        test_per_image: test pairs per test image and level (DL-Net: 10 fixed
            degradations per test image); overrides ``test_per_level`` with
            ``test_per_image`` × the number of test images.
        eval_seed: seeds the validation and test pairs (default ``seed``): fix it so
            runs with different training seeds share the same test pairs.
        resize_to: resize every image to ``resize_to`` × ``resize_to`` (not cropped;
            DL-Net's 64×64 CelebA) before cropping ``crop_size`` patches.
        benchmark_root, benchmark_sets: whole-image test sets, each the folder
            ``<benchmark_root>/<name>`` (or its ``HR/``), e.g. Set5, Set14, BSD100,
            Urban100; evaluated image by image, cropped to a multiple of the
            degradation's ``scale``.
        premade_pairs: ``{test set name: folder}``: pre-made (input, ground truth) pairs
            read from files, in RL-Restore's layout (``<folder>/mild_in/1_in.png`` with
            ``<folder>/mild_gt/1_gt.png``, likewise ``moderate_*``, ``severe_*``); group
            ``mild`` is scored as level 1, ``moderate`` 2, ``severe`` 3 (or as the
            degradation's ``level_names`` say). Pairs of equal size are batched together
            (``eval_batch_size``); see :mod:`lightrestore.data.premade_pairs`.
        num_workers: training loader workers; ``"auto"`` sizes from the machine.
        flip: random horizontal flips of training patches.
        seed: seeds the sampler, the device corruption generator and the eval sets.
    """

    def __init__(
        self,
        source: ImageSource,
        degradation: Degradation,
        crop_size: int = 64,
        batch_size: int = 100,
        eval_batch_size: int | None = None,
        train_samples_per_epoch: int | None = None,
        val_per_level: int = 100,
        test_per_level: int = 200,
        val_levels: Sequence[int] | None = None,
        test_levels: Sequence[int] | None = None,
        test_variants: Mapping[str, Mapping[str, Any]] | None = None,
        test_per_image: int | None = None,
        eval_seed: int | None = None,
        resize_to: int | None = None,
        benchmark_root: str | None = None,
        benchmark_sets: Sequence[str] = (),
        premade_pairs: Mapping[str, str] | None = None,
        num_workers: int | str = 0,
        pin_memory: bool | None = None,
        flip: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.source = source
        self.degradation = degradation
        self.ladder = degradation.ladder
        scale = int(getattr(degradation, "scale", 1))
        self.crop_size = int(crop_size) - int(crop_size) % scale  # SR: whole LR pixels
        if self.crop_size != int(crop_size):
            log.info(
                "crop_size %d rounded to %d, a multiple of the scale %d",
                crop_size,
                self.crop_size,
                scale,
            )
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or batch_size)
        self.train_samples_per_epoch = train_samples_per_epoch
        self.val_per_level = int(val_per_level)
        self.test_per_level = int(test_per_level)
        n = self.ladder.n_levels
        self.val_levels = list(val_levels) if val_levels else list(range(1, n + 1))
        self.test_levels = list(test_levels) if test_levels else self.ladder.test_levels
        self.ladder.check_levels(self.val_levels)
        self.ladder.check_levels(self.test_levels)
        self.test_variants = {str(k): dict(v) for k, v in (test_variants or {}).items()}
        self.variant_levels = {k: self._variant_levels(k, v) for k, v in self.test_variants.items()}
        self.test_per_image = None if test_per_image is None else int(test_per_image)
        if self.test_per_image is not None and self.test_per_image < 1:
            raise ConfigError(f"data.test_per_image must be >= 1 (or null), got {test_per_image}")
        self.resize_to = None if resize_to is None else int(resize_to)
        if self.resize_to is not None and self.resize_to < self.crop_size:
            raise ConfigError(
                f"data.resize_to={resize_to} is smaller than data.crop_size={self.crop_size}: "
                f"set data.crop_size<={resize_to} (DL-Net: both 64)"
            )
        self.benchmark_root = benchmark_root
        self.benchmark_sets = [str(b) for b in benchmark_sets or ()]
        if self.benchmark_sets and not benchmark_root:
            raise ConfigError(
                f"data.benchmark_sets={self.benchmark_sets} needs data.benchmark_root=<folder holding them>"
            )
        if DEFAULT in self.test_variants:
            raise ConfigError(f"'{DEFAULT}' is reserved for the main test set; rename the variant")
        self.premade_pairs = self._check_premade_pairs(premade_pairs)
        self.num_workers = default_workers() if num_workers == "auto" else int(num_workers)
        self.pin_memory = pin_memory
        self.flip = flip
        self.seed = int(seed)
        self.eval_seed = self.seed if eval_seed is None else int(eval_seed)
        if self.batch_size < 1 or self.crop_size < 1:
            raise ConfigError("data.batch_size and data.crop_size must be positive")
        self.sampler = DifficultySampler(n, seed=self.seed)
        self.train_set: Dataset | None = None
        self.val_set: EvalSet | None = None
        self.test_sets: dict[str, EvalSet | ImageTestSet] = {}
        self.pool: EvalSet | None = None
        self._generators: dict[str, torch.Generator] = {}

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str | None = None) -> None:
        """Build what ``stage`` needs; idempotent (safe to call before the Trainer)."""
        if stage in (None, "fit") and self.train_set is None:
            images = self.images("train")
            images.check_min_size(self.crop_size)
            self.train_set = RandomCropDataset(
                images, self.crop_size, self.train_samples_per_epoch, self.flip, self.seed
            )
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self._eval_set("val", self.val_levels, self.val_per_level)
        if stage in (None, "test") and not self.test_sets:
            per_level = self.test_per_level
            if self.test_per_image is not None:
                per_level = self.test_per_image * len(self.images("test"))
            self.test_sets[DEFAULT] = self._eval_set("test", self.test_levels, per_level)
            for name, variant in self.test_variants.items():
                fixed = {k: v for k, v in variant.items() if k != "levels"}
                self.test_sets[name] = self._eval_set(
                    "test", self.variant_levels[name], per_level, fixed, name
                )
            for name in self.benchmark_sets:
                folder = benchmark_folder(self.benchmark_root, name)
                ts = build_image_test_set(
                    folder, self.degradation, self.test_levels, self.source.channels,
                    int(getattr(self.degradation, "scale", 1)), self.eval_seed,
                )  # fmt: skip
                log.info(
                    "test set %s: %d images from %s, checksum %s",
                    name,
                    len(ts) // len(ts.levels),
                    folder,
                    ts.checksum[:16],
                )
                self.test_sets[name] = ts
            for name, folder in self.premade_pairs.items():
                ps = read_premade_pairs(folder, self.degradation, self.source.channels, name)
                log.info(
                    "test set %s: %d pre-made pairs from %s (levels %s), checksum %s",
                    name, len(ps), ps.folder, ps.groups, ps.checksum[:16],
                )  # fmt: skip
                self.test_sets[name] = ps

    def _check_premade_pairs(self, premade_pairs: Any) -> dict[str, str]:
        """``data.premade_pairs`` as ``{name: folder}``; names must not clash with the other
        test sets (``default``, the variants, the benchmark sets)."""
        if not premade_pairs:
            return {}
        if not isinstance(premade_pairs, Mapping):
            raise ConfigError(
                f"data.premade_pairs must map test set names to folders, e.g. "
                f"{{rl_restore: /data/RL-Restore/test}}, got {premade_pairs!r}"
            )
        out = {str(k): str(v) for k, v in premade_pairs.items()}
        taken = {DEFAULT, *self.test_variants, *self.benchmark_sets}
        for name, folder in out.items():
            if name in taken:
                raise ConfigError(
                    f"data.premade_pairs.{name}: the test set '{name}' already exists (the main "
                    "set, a test variant or a benchmark set); give the pre-made pairs another name"
                )
            if not name or folder in ("", "None", "???"):
                raise ConfigError(
                    f"data.premade_pairs.{name or '<empty>'}={folder!r}: give every pre-made test "
                    "set a name and a folder holding mild_in/ and mild_gt/, moderate_in/, ..."
                )
        scale = int(getattr(self.degradation, "scale", 1))
        if scale != 1:
            raise ConfigError(
                f"data.premade_pairs: a pre-made input must be the size of its ground truth, and "
                f"this task's inputs are {scale}x smaller (super-resolution); drop data.premade_pairs"
            )
        if getattr(self, "colour", "rgb") != "rgb":  # ColourDataModule converts its own sets only
            raise ConfigError(
                f"data.premade_pairs are read as stored, not converted to data.colour="
                f"{self.colour}: drop data.premade_pairs, or use data.colour=rgb"
            )
        return out

    @property
    def test_set(self) -> EvalSet | None:
        """The main test set (``test_sets["default"]``)."""
        return self.test_sets.get(DEFAULT)

    @property
    def test_set_names(self) -> list[str]:
        """Names of the test sets, in the order of :meth:`test_dataloader`."""
        return list(self.test_sets) or [DEFAULT]

    def images(self, split: str) -> ImageList:
        """The source's images of ``split`` (resized to ``resize_to`` when set)."""
        images = self.source.split(split)
        return images if self.resize_to is None else ResizedImageList(images, self.resize_to)

    def _variant_levels(self, name: str, variant: Mapping[str, Any]) -> list[int]:
        """The levels a test variant is evaluated at: its ``levels``; for a setting that
        fixes a ``severity``, the one level whose bin holds it; else every test level."""
        if variant.get("levels") is not None:
            levels = [int(v) for v in variant["levels"]]
            self.ladder.check_levels(levels)
            return levels
        if variant.get("severity") is not None:
            try:
                return [self.ladder.level_of(float(variant["severity"]))]
            except LevelError as e:
                raise ConfigError(f"test variant '{name}': {e}") from None
        return list(self.test_levels)

    def _eval_set(
        self,
        split: str,
        levels: list[int],
        per_level: int,
        fixed: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> EvalSet:
        images = self.images(split)
        images.check_min_size(self.crop_size)
        es = build_eval_set(
            images, images.names, self.degradation, levels, per_level, self.crop_size,
            self.eval_seed, split, fixed=fixed,
        )  # fmt: skip
        log.info(
            "%s set%s: %d pairs (%d per level, levels %s), checksum %s",
            split, f" ({name})" if name else "", len(es), per_level, levels, es.checksum[:16],
        )  # fmt: skip
        return es

    def use_static_pool(self, size: int) -> EvalSet:
        """Train on a static pool of ``size`` pre-corrupted pairs (equal counts over the
        training levels, distinct clean patches, seeded, stored as uint8) instead of
        corrupting on the fly. Epochs keep their length, so the image budget is unchanged.
        """
        if self.train_set is None:
            self.setup("fit")
        if self.pool is None:
            images = self.images("train")
            n = self.ladder.n_levels
            self.pool = build_eval_set(
                images, images.names, self.degradation, list(range(1, n + 1)),
                math.ceil(size / n), self.crop_size, self.seed, "pool",
                shared_clean=False, quantize=True,
            )  # fmt: skip
            log.info(
                "hard-mining pool: %d pairs, checksum %s", len(self.pool), self.pool.checksum[:16]
            )
        self.train_set = PoolDataset(self.pool, len(self.train_set), self.seed)
        return self.pool

    def use_on_the_fly(self) -> None:
        """Corrupt the training images on the fly again (undoes :meth:`use_static_pool`;
        every difficulty policy starts from this state)."""
        if isinstance(self.train_set, PoolDataset):
            self.train_set = None
            self.setup("fit")

    # ------------------------------------------------------------------ loaders
    def _pin(self) -> bool:
        if self.pin_memory is not None:
            return bool(self.pin_memory)
        return torch.cuda.is_available()

    def train_dataloader(self) -> ResumableLoader:
        """Seeded per-epoch order, sharded over ranks, resumable mid-epoch (see
        :mod:`lightrestore.data.train_loader`)."""
        assert self.train_set is not None, "call setup('fit') first"
        trainer = getattr(self, "trainer", None)
        world, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        sampler = EpochSampler(self.train_set, seed=self.seed, num_replicas=world, rank=rank)
        return ResumableLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            drop_last=len(sampler) >= self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self._pin(),
            persistent_workers=self.num_workers > 0,
            progress=self._train_progress,
        )

    def _train_progress(self) -> tuple[int, int]:
        """(epoch, batches of it whose optimisation step finished), from Lightning's loop."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 0
        return trainer.current_epoch, trainer.fit_loop.epoch_loop.batch_progress.current.processed

    def _eval_loader(self, es: EvalSet | ImageTestSet | None) -> DataLoader | ResidentEvalLoader:
        """Fixed pairs in order (whole images one at a time). Under DDP every pair is
        evaluated exactly once: ranks get disjoint shares without the padding duplicates
        of ``DistributedSampler`` (so the synced metrics are those of the whole set)."""
        assert es is not None, "call setup() first"
        whole = isinstance(es, ImageTestSet)
        trainer = getattr(self, "trainer", None)
        if isinstance(es, PremadePairs):  # files: batches of equal-size pairs, a rank's share
            shard = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
            batches = es.batches(self.eval_batch_size, *shard)
            return DataLoader(ImagePairs(es), batch_sampler=batches, num_workers=0)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        if not whole and device.type == "cuda":  # keep the pairs on the GPU: no copy per batch
            return ResidentEvalLoader(
                es, device, self.eval_batch_size, trainer.global_rank, trainer.world_size
            )
        dataset = ImagePairs(es) if whole else EvalPairs(es)
        sampler = None
        if trainer is not None and trainer.world_size > 1:
            sampler = UnrepeatedDistributedSampler(
                dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=False
            )
        batch_size = 1 if whole else self.eval_batch_size
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> list[DataLoader]:
        return [self._eval_loader(es) for es in self.test_sets.values()]

    # ------------------------------------------------------------------ corruption
    def _rank(self) -> int:
        trainer = getattr(self, "trainer", None)
        return int(trainer.global_rank) if trainer is not None else 0

    def _epoch(self) -> int | None:
        trainer = getattr(self, "trainer", None)
        return trainer.current_epoch if trainer is not None else None

    def generator(self, device: torch.device) -> torch.Generator:
        """The corruption generator on ``device`` (seeded by seed and rank)."""
        key = str(device)
        g = self._generators.get(key)
        if g is None:
            g = torch.Generator(device=device).manual_seed(self.seed * 7919 + 1 + self._rank())
            self._generators[key] = g
        return g

    def corrupt(self, clean_u8: Tensor, epoch: int | None = None) -> RestorationBatch:
        """Corrupt a batch of clean uint8 patches on their device.

        Args:
            clean_u8: ``(B, C, S, S)`` uint8 on the training device.
            epoch: current epoch, for the sampler's allocation history.
        """
        device = clean_u8.device
        clean = clean_u8.float().div_(255.0)
        levels = self.sampler.assign(clean.shape[0], epoch)
        if device.type == "cuda":
            levels = levels.pin_memory()
        levels = levels.to(device, non_blocking=True)
        params = self.degradation.sample(
            levels, clean.shape[1:], self.generator(device), fixed=self.sampler.fixed
        )
        degraded = self.degradation.apply(clean, params)
        return RestorationBatch(clean=clean, degraded=degraded, level=levels, params=params)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        trainer = getattr(self, "trainer", None)
        if isinstance(batch, dict) and trainer is not None and trainer.training:
            self.sampler.record(batch["level"], self._epoch())  # a pool batch: count its levels
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> RestorationBatch:
        if isinstance(batch, Tensor):  # training: clean uint8 patches
            return self.corrupt(batch, self._epoch())
        return RestorationBatch(  # fixed pairs (validation, test, hard-mining pool)
            clean=as_float(batch["clean"]),
            degraded=as_float(batch["degraded"]),
            level=batch["level"],
            params=batch["params"],
        )

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Sampler (weights, history, steps, generator) and corruption generators.

        Checkpoints are taken at step boundaries (Lightning's callbacks, SIGTERM, and the
        SLURM requeue through ``SlurmRequeueAtStepEnd``), where this state matches the
        model's and the loader's.
        """
        return {
            "sampler": self.sampler.state_dict(),
            "generators": {k: g.get_state() for k, g in self._generators.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])
        for key, gstate in state.get("generators", {}).items():
            try:
                self.generator(torch.device(key)).set_state(gstate)
            except (RuntimeError, ValueError):
                log.warning(
                    "could not restore the corruption generator for %s; it restarts from the seed",
                    key,
                )

    def describe(self) -> dict[str, Any]:
        """Plain description of the data protocol for results files."""
        return {
            "source": self.source.describe(),
            "degradation": self.degradation.name,
            "crop_size": self.crop_size,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "eval_seed": self.eval_seed,
            "resize_to": self.resize_to,
            "test_per_image": self.test_per_image,
            "val_levels": self.val_levels,
            "test_levels": self.test_levels,
            "test_variants": self.test_variants,
            "benchmarks": {
                n: str(benchmark_folder(self.benchmark_root, n)) for n in self.benchmark_sets
            },
            "premade_pairs": dict(self.premade_pairs),
            "static_pool": None if self.pool is None else len(self.pool),
        }
