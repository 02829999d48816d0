"""Paired data sets in GoPro's layout: pairs matched by name, aligned crops and flips,
held-out validation sequences, test tiles covering every pixel, clear errors, and a run
through the CLI on a tiny synthetic GoPro folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import make_gopro
from PIL import Image

from lightrestore.data.paired import PairedDataModule, aligned_crop, paired_test_set, tile_starts
from lightrestore.data.sources.paired_folder import PairedFolderSource
from lightrestore.degradations.real import RealPairs
from lightrestore.errors import ConfigError, DataError


def test_pairs_splits_and_aligned_crops(tmp_path):
    src = PairedFolderSource(str(make_gopro(tmp_path)))
    train, val, test = src.split("train"), src.split("val"), src.split("test")
    assert (len(train), len(val), len(test)) == (4, 2, 2)
    assert all(n.startswith("train/c/") for n in val.names)  # the last training sequence
    assert not any(n.startswith("train/c/") for n in train.names)
    assert torch.equal(train.degraded(1), 255 - train[1])  # partners matched by name
    g = torch.Generator().manual_seed(1)
    seen_flips = set()
    for _ in range(20):
        clean, degraded = aligned_crop(train, 0, 16, g)
        assert clean.shape == (3, 16, 16) and torch.equal(degraded, 255 - clean)  # same window
        full = train[0]
        windows = {(t, lft) for t in range(25) for lft in range(33)}
        orient = [(fy, fx) for fy in (False, True) for fx in (False, True)
                  if any(torch.equal(_flip(full[:, t:t + 16, lft:lft + 16], fy, fx), clean)
                         for t, lft in windows)]  # fmt: skip
        assert orient  # a window of the image, flipped alike in both
        seen_flips.update(orient)
    assert len(seen_flips) >= 3  # horizontal and vertical flips both happen


def _flip(x, fy, fx):
    if fy:
        x = x.flip(-2)
    if fx:
        x = x.flip(-1)
    return x


def test_tiles_cover_every_pixel(tmp_path):
    assert tile_starts(40, 16) == [0, 16, 24] and tile_starts(16, 16) == [0]
    src = PairedFolderSource(str(make_gopro(tmp_path)))
    ts = paired_test_set(src.split("test"), tile=16)
    assert len(ts) == 2 * 3 * 3 and ts.levels == [1]
    covered = torch.zeros(2, 40, 48, dtype=torch.bool)
    for k, name in enumerate(ts.names):
        image = 0 if name.startswith(src.split("test").names[0]) else 1
        top, left = (int(v) for v in name.rsplit("@", 1)[1].split(","))
        full = src.split("test")[image]
        assert torch.equal(ts.clean[k], full[:, top:top + 16, left:left + 16])  # fmt: skip
        assert torch.equal(ts.degraded[k], 255 - ts.clean[k])
        covered[image, top:top + 16, left:left + 16] = True  # fmt: skip
    assert covered.all()
    whole = paired_test_set(src.split("test"))
    assert len(whole) == 2 and whole.clean[0].shape == (3, 40, 48)
    assert whole.checksum != ts.checksum


def test_bad_folders_are_named(tmp_path):
    with pytest.raises(DataError, match="test' is missing"):
        PairedFolderSource(str(make_gopro(tmp_path / "a", sequences=("train/a", "train/b"))))
    root = make_gopro(tmp_path / "b")
    (root / "train" / "a" / "sharp" / "000000.png").unlink()
    with pytest.raises(DataError, match="000000.png' has no partner"):
        PairedFolderSource(str(root)).split("train")
    root = make_gopro(tmp_path / "c")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(root / "test/d/blur/000001.png")
    with pytest.raises(DataError, match="must be aligned"):
        PairedFolderSource(str(root)).split("test")
    with pytest.raises(ConfigError, match="data.source.root"):
        PairedFolderSource("???")
    with pytest.raises(ConfigError, match="paired data"):
        RealPairs("real blur").apply(torch.zeros(1, 3, 4, 4), {})


def test_datamodule_batches(tmp_path):
    dm = PairedDataModule(PairedFolderSource(str(make_gopro(tmp_path))), RealPairs(),
                          crop_size=16, batch_size=2, val_per_level=3, test_tile=16)  # fmt: skip
    dm.setup()
    item = dm.train_set[(0, 1)]
    assert torch.equal(item["degraded"], 255 - item["clean"])
    assert torch.equal(dm.train_set[(0, 1)]["clean"], item["clean"])  # seeded per item
    batch = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert batch.clean.shape == (2, 3, 16, 16) and batch.level.tolist() == [1, 1]
    assert torch.allclose(batch.degraded, 1 - batch.clean, atol=1e-6)
    assert len(dm.val_set) == 3 and dm.val_set.levels == [1]
    assert dm.describe()["source"]["kind"] == "paired_folder"
    with pytest.raises(ConfigError, match="hard mining"):
        dm.use_static_pool(10)
