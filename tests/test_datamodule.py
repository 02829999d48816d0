"""The DataModule: on-device corruption from the sampler, fixed eval pairs, state."""

from __future__ import annotations

import io

import pytest
import torch

from lightrestore.data.batch import RestorationBatch
from lightrestore.data.datamodule import RestorationDataModule
from lightrestore.data.sampler import inverse_psnr_weights
from lightrestore.data.sources import EmbeddedSource
from lightrestore.degradations import GaussianNoise, Inpaint
from lightrestore.errors import LevelError


def _dm(seed=0, degradation=None, channels=3, **kw):
    args = dict(
        crop_size=32,
        batch_size=10,
        train_samples_per_epoch=20,
        val_per_level=3,
        test_per_level=2,
        seed=seed,
    )
    args.update(kw)
    return RestorationDataModule(
        EmbeddedSource(channels=channels, load_size=64), degradation or Inpaint(), **args
    )


def test_training_batch_is_corrupted_at_the_sampler_levels():
    dm = _dm()
    dm.setup("fit")
    # w*10 = 2.826, 2.261, 1.884, 1.615, 1.413 -> floors 2,2,1,1,1 + the 3 largest remainders
    dm.sampler.set_weights(inverse_psnr_weights([20.0, 25.0, 30.0, 35.0, 40.0]))
    clean_u8 = next(iter(dm.train_dataloader()))
    assert clean_u8.dtype == torch.uint8 and clean_u8.shape == (10, 3, 32, 32)
    batch = dm.on_after_batch_transfer(clean_u8, 0)
    assert isinstance(batch, RestorationBatch)
    assert torch.equal(batch.clean, clean_u8.float() / 255)
    counts = torch.bincount(batch.level, minlength=6)[1:].tolist()
    assert counts == [3, 2, 2, 2, 1]
    # the corruption follows each sample's level: hole sides inside the level's bin
    for side, lv in zip(batch.params["severity"].tolist(), batch.level.tolist()):
        lo, hi = dm.ladder.bounds(lv)
        assert lo <= side <= hi
    changed = (batch.degraded != batch.clean).flatten(1).any(1)
    assert changed.all()


def test_fixed_setting_overrides_levels():
    dm = _dm()
    dm.setup("fit")
    dm.sampler.fixed = {"severity": 8, "centered": True}
    batch = dm.corrupt(torch.zeros(4, 3, 32, 32, dtype=torch.uint8))
    assert batch.params["severity"].tolist() == [8.0] * 4
    assert batch.params["top"].tolist() == [12] * 4


def test_eval_sets_fixed_seeded_and_shared_across_levels():
    a, b, c = _dm(seed=1), _dm(seed=1), _dm(seed=2)
    for dm in (a, b, c):
        dm.setup()
    assert a.val_set.checksum == b.val_set.checksum and a.test_set.checksum == b.test_set.checksum
    assert a.val_set.checksum != c.val_set.checksum
    assert a.val_set.levels == [1, 2, 3, 4, 5] and a.test_set.levels == [1, 2, 3, 4, 5, 6]
    ts = a.test_set
    assert len(ts) == 12 and ts.clean.shape == (2, 3, 32, 32)
    # every level corrupts the same clean patches
    for lv in ts.levels:
        rows = (ts.level == lv).nonzero().flatten()
        assert ts.index[rows].tolist() == [0, 1]
    # the pairs are what the degradation gives for the stored params
    clean = ts.clean[ts.index].float() / 255
    assert torch.allclose(Inpaint().apply(clean, ts.params), ts.degraded)


def test_eval_batches_pass_through_the_hook():
    dm = _dm()
    dm.setup("fit")
    raw = next(iter(dm.val_dataloader()))
    batch = dm.on_after_batch_transfer(raw, 0)
    assert batch.clean.dtype == torch.float32 and float(batch.clean.max()) <= 1
    assert batch.level.tolist() == dm.val_set.level[: len(batch)].tolist()
    assert set(batch.params) >= {"severity", "top", "left", "level"}


def test_greyscale_task():
    dm = _dm(degradation=GaussianNoise(), channels=1)
    dm.setup("fit")
    batch = dm.corrupt(next(iter(dm.train_dataloader())))
    assert batch.degraded.shape == (10, 1, 32, 32)


def test_levels_outside_the_ladder_are_rejected():
    with pytest.raises(LevelError, match="valid levels are 1..5"):
        _dm(test_levels=[1, 7])


def test_state_dict_survives_weights_only_load():
    dm = _dm()
    dm.setup("fit")
    dm.sampler.set_weights([5, 4, 3, 2, 1])
    dm.corrupt(torch.zeros(10, 3, 32, 32, dtype=torch.uint8), epoch=0)
    buf = io.BytesIO()
    torch.save(dm.state_dict(), buf)
    buf.seek(0)
    other = _dm(seed=99)
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other.sampler.weights, dm.sampler.weights)
    x = torch.zeros(10, 3, 32, 32, dtype=torch.uint8)
    b1, b2 = dm.corrupt(x, epoch=0), other.corrupt(x, epoch=0)
    assert torch.equal(b1.level, b2.level) and torch.equal(b1.degraded, b2.degraded)


def test_static_pool_for_hard_mining():
    dm = _dm()
    dm.setup("fit")
    epoch_length = len(dm.train_set)
    pool = dm.use_static_pool(23)  # ceil(23 / 5) = 5 per level
    assert len(pool) == 25 and pool.degraded.dtype == torch.uint8
    assert torch.bincount(pool.level, minlength=6)[1:].tolist() == [5] * 5
    assert pool.clean.shape[0] == 25 and pool.index.tolist() == list(range(25))  # distinct patches
    assert len(dm.train_set) == epoch_length  # same image budget per epoch
    raw = next(iter(dm.train_dataloader()))
    assert isinstance(raw, dict)
    batch = dm.on_after_batch_transfer(raw, 0)
    assert batch.degraded.dtype == torch.float32 and float(batch.degraded.max()) <= 1
    # pairs regenerate from their params up to the uint8 rounding
    clean = pool.clean[pool.index].float() / 255
    assert (
        Inpaint().apply(clean, pool.params) * 255 - pool.degraded.float()
    ).abs().max() <= 0.5 + 1e-4
    dm.sampler.record(raw["level"], epoch=0)
    assert sum(dm.sampler.allocation()[-1]["images"]) == 10


def test_test_variants_share_patches_and_severities():
    dm = _dm(test_variants={"centered": {"centered": True}})
    dm.setup("test")
    assert dm.test_set_names == ["default", "centered"]
    a, b = dm.test_sets["default"], dm.test_sets["centered"]
    assert torch.equal(a.clean, b.clean) and torch.equal(a.params["severity"], b.params["severity"])
    side = b.params["severity"].long()
    assert torch.equal(b.params["top"], (32 - side) // 2)
    assert a.checksum != b.checksum
    assert len(dm.test_dataloader()) == 2


def test_resident_eval_loader_matches_the_dataloader():
    from lightrestore.data.eval_set import ResidentEvalLoader

    dm = _dm()
    dm.setup("fit")
    ref = list(dm.val_dataloader())
    got = list(ResidentEvalLoader(dm.val_set, torch.device("cpu"), dm.eval_batch_size))
    assert len(got) == len(ref)
    for a, b in zip(ref, got):
        for key in ("clean", "degraded", "level"):
            assert torch.equal(a[key], b[key])
        assert all(torch.equal(a["params"][k], b["params"][k]) for k in a["params"])
    shard = ResidentEvalLoader(dm.val_set, torch.device("cpu"), 4, rank=1, world=2)
    assert (
        sum(len(b["level"]) for b in shard) == len(dm.val_set) // 2
    )  # 15 pairs: 7 on rank 1, no padding
