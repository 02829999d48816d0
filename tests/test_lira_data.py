"""LIRA's data: DIV2K split by image number (data/sources/div2k.py) and RL-Restore's
pre-made mild / moderate / severe test pairs (data/premade_pairs.py, data.premade_pairs)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_cfg
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio as sk_psnr

from lightrestore.cli.train import run
from lightrestore.data.datamodule import RestorationDataModule
from lightrestore.data.images import load_image
from lightrestore.data.premade_pairs import PremadePairs, level_names, read_premade_pairs
from lightrestore.data.sources import EmbeddedSource
from lightrestore.data.sources.div2k import Div2kSource, id_ranges
from lightrestore.degradations import GaussianNoise
from lightrestore.degradations.resize import Resize
from lightrestore.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def _png(value: int, h: int = 6, w: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), value % 256, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def make_div2k(root: Path, ids, folder: str = "DIV2K_train_HR", h: int = 6, w: int = 8) -> Path:
    """``<root>/<folder>/<id:04d>.png``: image ``i`` is filled with ``i mod 256``."""
    images = root / folder
    images.mkdir(parents=True, exist_ok=True)
    for i in ids:
        (images / f"{i:04d}.png").write_bytes(_png(i, h, w))
    return root


def _ids(names: list[str]) -> list[int]:
    return [int(Path(n).stem) for n in names]


# =========================================================================== DIV2K


def test_default_split_is_lira_with_the_last_ten_training_images_for_validation(tmp_path):
    root = make_div2k(tmp_path / "DIV2K", range(1, 801))
    make_div2k(root, range(801, 806), "DIV2K_valid_HR")
    images = root / "DIV2K_train_HR"  # other files do not disturb the split
    (images / "0001x2.png").write_bytes(_png(0))
    (images / "notes.txt").write_text("not an image")
    (images / ".0002.png").write_bytes(b"hidden")
    for src in (Div2kSource(root), Div2kSource(images)):
        split = {s: _ids(src.split(s).names) for s in ("train", "val", "test")}
        assert split["train"] == list(range(1, 741))
        assert split["val"] == list(range(741, 751))
        assert split["test"] == list(range(751, 801))
    src = Div2kSource(root)
    assert src.split("test").names[0] == "DIV2K_train_HR/0751.png"
    doc = src.describe()
    assert doc["kind"] == "div2k" and doc["splits"] == {"train": 740, "val": 10, "test": 50}
    assert doc["ids"] == {"train": "0001-0740", "val": "0741-0750", "test": "0751-0800"}
    # DIV2K_valid_HR holds 0801..: reachable through the ranges
    valid = Div2kSource(root, test_ids=[801, 805])
    assert valid.split("test").names[-1] == "DIV2K_valid_HR/0805.png"


def test_configured_ranges_pick_by_number_and_decode_lazily(tmp_path):
    root = make_div2k(tmp_path, [*range(1, 13), *range(745, 761)])
    src = Div2kSource(root, train_ids=[1, 12], val_ids=[745, 750], test_ids=[751, 760])
    assert _ids(src.split("train").names) == list(range(1, 13))  # val outside train: kept
    assert _ids(src.split("val").names) == list(range(745, 751))
    test = src.split("test")
    assert _ids(test.names) == list(range(751, 761))
    assert test.sizes() == [(6, 8)] * 10
    img = test[3]
    assert img.dtype == torch.uint8 and img.shape == (3, 6, 8) and bool((img == 754 % 256).all())
    # val_ids unset: the last 10 of train_ids, held out of training
    src = Div2kSource(root, train_ids=[1, 12], test_ids=[751, 760])
    assert _ids(src.split("train").names) == [1, 2]
    assert _ids(src.split("val").names) == list(range(3, 13))
    # grey, and load_size as any folder source
    grey = Div2kSource(root, channels=1, load_size=12, train_ids=[1, 12], test_ids=[751, 760])
    assert grey.split("train")[0].shape == (1, 12, 16)


def test_missing_images_name_how_many_which_and_the_fix(tmp_path):
    root = make_div2k(tmp_path / "d", [*range(1, 13), *range(745, 761)])
    with pytest.raises(DataError) as err:
        Div2kSource(root)
    msg = str(err.value)
    assert "772 of the 800 DIV2K images" in msg
    assert "missing 0013-0744, 0761-0800" in msg
    assert "DIV2K_train_HR/0001.png..0800.png" in msg
    assert "https://data.vision.ee.ethz.ch/cvl/DIV2K/" in msg
    assert "data.source.train_ids" in msg
    with pytest.raises(DataError, match=r"1 of the 28 .* missing 0761 "):
        Div2kSource(root, train_ids=[1, 12], val_ids=[745, 750], test_ids=[752, 761])


def test_root_and_range_errors_name_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*DIV2K_train_HR/0001\.png\.\.0800\.png"):
        Div2kSource(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"data\.source\.root is not set"):
        Div2kSource(None)  # type: ignore[arg-type]
    root = make_div2k(tmp_path, range(1, 5))
    with pytest.raises(ConfigError, match=r"data\.source\.test_ids must be \[first, last\]"):
        Div2kSource(root, test_ids=[800, 751])
    with pytest.raises(ConfigError, match=r"data\.source\.val_ids"):
        Div2kSource(root, val_ids=[3])
    with pytest.raises(ConfigError, match=r"leaves no training image"):
        Div2kSource(root, train_ids=[1, 4], val_ids=[1, 4], test_ids=[1, 1])
    with pytest.warns(UserWarning, match=r"in both the train and the test split"):
        Div2kSource(root, train_ids=[1, 3], val_ids=[4, 4], test_ids=[3, 3])


def test_undecodable_and_duplicate_files_are_errors(tmp_path):
    root = make_div2k(tmp_path, range(1, 5))
    images = root / "DIV2K_train_HR"
    kw = dict(train_ids=[1, 2], val_ids=[3, 3], test_ids=[4, 4])
    (images / "0003.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"val split do not decode.*0003\.png.*DIV2K/"):
        Div2kSource(root, **kw)
    data = _png(3, 40, 40)  # a valid header, pixels cut short: fails when read
    (images / "0003.png").write_bytes(data[: len(data) // 2])
    src = Div2kSource(root, **kw)
    with pytest.raises(DataError, match=r"0003\.png' \(val split\) does not decode: replace it"):
        src.split("val")[0]
    (images / "0003.png").write_bytes(_png(3))
    (images / "3.png").write_bytes(_png(3))
    with pytest.raises(DataError, match=r"two DIV2K files are image 0003"):
        Div2kSource(root, **kw)


def test_id_ranges():
    assert id_ranges([7, 1, 2, 3, 9, 10]) == "0001-0003, 0007, 0009-0010"
    assert id_ranges([]) == ""


# =========================================================================== pre-made pairs


def _save(path: Path, img: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)


#: RL-Restore's layout with its quirks: ``mild_in/2.png`` (no ``_in``), ``007`` == ``7``;
#: two sizes in one group
PAIRS = {
    "mild": {1: ("1_in.png", "1_gt.png", (24, 24)), 2: ("2.png", "2_gt.png", (24, 24)),
             3: ("3_in.png", "3_gt.png", (24, 30))},
    "moderate": {7: ("007_in.png", "7_gt.png", (24, 24))},
    "severe": {4: ("4_in.png", "4_gt.png", (24, 30)), 5: ("5_in.png", "5_gt.png", (24, 24))},
}  # fmt: skip


def make_rl_restore(
    root: Path, groups=PAIRS
) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]:
    """Random ground truths; inputs = ground truth + noise that grows with the group.
    Returns ``{group: {id: (input, ground truth)}}`` (HWC uint8) to check the pairing."""
    out: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    for g, (group, files) in enumerate(groups.items()):
        out[group] = {}
        for i, (name_in, name_gt, (h, w)) in files.items():
            gt = RNG.integers(40, 200, (h, w, 3), dtype=np.uint8)
            noisy = np.clip(gt.astype(int) + RNG.integers(-8, 9, gt.shape) * (g + 1), 0, 255)
            inp = noisy.astype(np.uint8)
            _save(root / f"{group}_in" / name_in, inp)
            _save(root / f"{group}_gt" / name_gt, gt)
            out[group][i] = (inp, gt)
    return out


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a).permute(2, 0, 1)


def test_premade_pairs_are_matched_by_number_with_the_group_levels(tmp_path):
    truth = make_rl_restore(tmp_path / "rl")
    (tmp_path / "rl" / "README.txt").write_text("ignored")
    (tmp_path / "rl" / "mine").mkdir()  # RL-Restore's real-image folder: not a group, ignored
    deg = GaussianNoise()
    ps = read_premade_pairs(tmp_path / "rl", deg, channels=3, name="rl")
    assert isinstance(ps, PremadePairs)
    assert ps.groups == {"mild": 1, "moderate": 2, "severe": 3}
    assert ps.names == ["mild/1", "mild/2", "mild/3", "moderate/7", "severe/4", "severe/5"]
    assert ps.level == [1, 1, 1, 2, 3, 3] and ps.levels == [1, 2, 3]
    for k, name in enumerate(ps.names):
        group, i = name.split("/")
        inp, gt = truth[group][int(i)]
        assert torch.equal(ps.degraded[k], _chw(inp)) and torch.equal(ps.clean[k], _chw(gt))
        assert ps.params[k]["level"] == ps.level[k]
    # the severity: the middle of the level's bin (denoise: 0-20, 20-40, 40-60)
    assert [float(p["severity"]) for p in ps.params] == [10, 10, 10, 30, 50, 50]
    assert set(ps.params[0]) == {"level", "severity"}
    assert ps.inputs[1].endswith("mild_in/2.png")
    # the checksum covers the files' bytes
    assert read_premade_pairs(tmp_path / "rl", deg, 3).checksum == ps.checksum
    _save(tmp_path / "rl" / "severe_gt" / "5_gt.png", truth["severe"][5][1] // 2)
    assert read_premade_pairs(tmp_path / "rl", deg, 3).checksum != ps.checksum
    # grey tasks read grey pairs
    assert read_premade_pairs(tmp_path / "rl", deg, 1).clean[0].shape == (1, 24, 24)


def test_absent_groups_are_not_evaluated_and_level_names_come_from_the_degradation(tmp_path):
    make_rl_restore(tmp_path / "a", {"severe": PAIRS["severe"]})
    ps = read_premade_pairs(tmp_path / "a", GaussianNoise(), 3)
    assert ps.groups == {"severe": 3} and ps.level == [3, 3]
    deg = GaussianNoise()
    deg.level_names = ("light", "heavy")  # type: ignore[attr-defined]
    assert level_names(deg) == {"light": 1, "heavy": 2}
    assert level_names(GaussianNoise()) == {"mild": 1, "moderate": 2, "severe": 3}
    make_rl_restore(tmp_path / "b", {"heavy": PAIRS["mild"], "light": PAIRS["moderate"]})
    ps = read_premade_pairs(tmp_path / "b", deg, 3)
    assert ps.groups == {"light": 1, "heavy": 2}  # in level order
    assert ps.names[0] == "light/7" and ps.level == [1, 2, 2, 2]
    make_rl_restore(tmp_path / "b", {"mild": PAIRS["moderate"]})  # not one of deg's names
    valid = r"light_in/light_gt \(level 1\), heavy_in/heavy_gt \(level 2\)"
    with pytest.raises(ConfigError, match=rf"'mild', which is not a level name.*{valid}"):
        read_premade_pairs(tmp_path / "b", deg, 3)


def test_premade_pair_errors_name_the_file(tmp_path):
    deg = GaussianNoise()
    with pytest.raises(DataError, match=r"data\.premade_pairs\.rl.*is not a folder"):
        read_premade_pairs(tmp_path / "nowhere", deg, 3, name="rl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no group folders.*mild_in/ \+ mild_gt/"):
        read_premade_pairs(tmp_path / "empty", deg, 3)

    def fresh(name: str) -> Path:
        root = tmp_path / name
        make_rl_restore(root, {"mild": PAIRS["mild"]})
        return root

    root = fresh("size")
    _save(root / "mild_gt" / "3_gt.png", RNG.integers(0, 255, (24, 24, 3), dtype=np.uint8))
    with pytest.raises(DataError, match=r"mild_in/3_in\.png' is 24x30 but its ground truth .*3_gt\.png' is 24x24"):  # fmt: skip
        read_premade_pairs(root, deg, 3)
    root = fresh("lone")
    (root / "mild_gt" / "2_gt.png").unlink()
    with pytest.raises(DataError, match=r"mild_in/2\.png' has no partner in .*mild_gt"):
        read_premade_pairs(root, deg, 3)
    root = fresh("lone_gt")
    shutil.copy(root / "mild_gt" / "1_gt.png", root / "mild_gt" / "9_gt.png")
    with pytest.raises(DataError, match=r"mild_gt/9_gt\.png' has no partner in .*mild_in"):
        read_premade_pairs(root, deg, 3)
    root = fresh("misnamed")
    shutil.copy(root / "mild_in" / "1_in.png", root / "mild_in" / "photo.png")
    with pytest.raises(DataError, match=r"photo\.png' is not named <id>_in\.png"):
        read_premade_pairs(root, deg, 3)
    root = fresh("twice")
    shutil.copy(root / "mild_in" / "1_in.png", root / "mild_in" / "01.png")
    with pytest.raises(DataError, match=r"are both input 1"):
        read_premade_pairs(root, deg, 3)
    root = fresh("no_gt_folder")
    shutil.rmtree(root / "mild_gt")
    with pytest.raises(DataError, match=r"mild_in' has no partner folder .*mild_gt"):
        read_premade_pairs(root, deg, 3)
    root = fresh("bad_name")
    shutil.copytree(root / "mild_in", root / "extreme_in")
    with pytest.raises(ConfigError, match=r"extreme.*valid group folders are mild_in/mild_gt"):
        read_premade_pairs(root, deg, 3)
    root = fresh("too_hard")  # a two-level ladder has no level 3
    make_rl_restore(root, {"severe": PAIRS["severe"]})
    with pytest.raises(ConfigError, match=r"outside the task's ladder"):
        read_premade_pairs(root, GaussianNoise(bins=[[0, 10], [10, 20]], extra=[]), 3)


def test_batches_group_equal_sizes_and_shard_every_pair_once(tmp_path):
    make_rl_restore(tmp_path / "rl")
    ps = read_premade_pairs(tmp_path / "rl", GaussianNoise(), 3)
    assert ps.sizes == [(24, 24), (24, 24), (24, 30), (24, 24), (24, 30), (24, 24)]
    assert ps.batches(2) == [[0, 1], [3, 5], [2, 4]]
    assert ps.batches(1) == [[k] for k in (0, 1, 3, 5, 2, 4)]
    shards = [ps.batches(2, rank, 2) for rank in range(2)]
    assert shards == [[[0, 1], [2, 4]], [[3, 5]]]


def _dm(tmp_path: Path, **kw) -> RestorationDataModule:
    args = dict(crop_size=32, batch_size=4, val_per_level=2, test_per_level=2, eval_batch_size=2)
    args.update(kw)
    return RestorationDataModule(EmbeddedSource(channels=3, load_size=64), GaussianNoise(), **args)


def test_datamodule_adds_a_test_set_per_premade_folder(tmp_path):
    truth = make_rl_restore(tmp_path / "rl")
    dm = _dm(tmp_path, premade_pairs={"rl_restore": str(tmp_path / "rl")})
    dm.setup("test")
    assert dm.test_set_names == ["default", "rl_restore"]
    assert isinstance(dm.test_sets["rl_restore"], PremadePairs)
    assert dm.describe()["premade_pairs"] == {"rl_restore": str(tmp_path / "rl")}
    loader = dm.test_dataloader()[1]
    batches = [dm.on_after_batch_transfer(b, 1) for b in loader]
    assert [len(b) for b in batches] == [2, 2, 2]
    seen = []
    for b in batches:
        assert b.clean.dtype == torch.float32 and b.clean.shape == b.degraded.shape
        assert set(b.params) == {"level", "severity"} and torch.equal(b.params["level"], b.level)
        seen += b.level.tolist()
    assert sorted(seen) == [1, 1, 1, 2, 3, 3]
    inp, gt = truth["moderate"][7]  # batch [3, 5] = moderate/7, severe/5
    assert torch.equal(batches[1].degraded[0], _chw(inp).float() / 255)
    assert torch.equal(batches[1].clean[0], _chw(gt).float() / 255)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"premade_pairs": {"default": "x"}}, r"test set 'default' already exists"),
        ({"premade_pairs": {"c": "x"}, "test_variants": {"c": {"severity": 10}}}, r"'c' already exists"),
        ({"premade_pairs": ["x"]}, r"must map test set names to folders"),
        ({"premade_pairs": {"rl": ""}}, r"give every pre-made test set a name and a folder"),
    ],
)  # fmt: skip
def test_premade_pairs_config_errors(tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        _dm(tmp_path, **kw)


def test_premade_pairs_refuse_super_resolution(tmp_path):
    with pytest.raises(ConfigError, match=r"3x smaller \(super-resolution\)"):
        RestorationDataModule(EmbeddedSource(channels=3, load_size=64), Resize(scale=3),
                              crop_size=30, premade_pairs={"rl": str(tmp_path)})  # fmt: skip


# =========================================================================== end to end


def test_a_div2k_run_scores_the_premade_pairs_per_level(tmp_path):
    """data=div2k with a tiny fake DIV2K, one epoch of an identity model: the pre-made set
    is a test variant scored per level; its PSNR is that of the files, computed here."""
    root = make_div2k(tmp_path / "DIV2K", [*range(1, 13), *range(745, 761)], h=40, w=48)
    make_rl_restore(tmp_path / "rl")
    out = run(compose_cfg(
        tmp_path, "experiment=rigid_joint_denoise", "data=div2k", f"data.source.root={root}",
        "data.source.train_ids=[1,12]", "data.source.val_ids=[745,750]",
        "data.source.test_ids=[751,760]", f"+data.premade_pairs.rl={tmp_path / 'rl'}",
        "model._target_=helpers.IdentityModel", "optimizer.lr=0", "trainer.max_epochs=1",
    ))  # fmt: skip
    dm = out["datamodule"]
    assert isinstance(dm.source, Div2kSource) and len(dm.source.split("train")) == 12
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    table = doc["variants"]["rl"]
    assert table["test_set"]["checksum"] == dm.test_sets["rl"].checksum
    levels = {int(k): v for k, v in table["levels"].items()}
    assert sorted(levels) == [1, 2, 3]
    assert [levels[lv]["count"] for lv in (1, 2, 3)] == [3, 1, 2]
    rl = tmp_path / "rl"
    for lv, group in ((1, "mild"), (2, "moderate"), (3, "severe")):
        want = [  # the task is grey: Pillow's luma of the files
            sk_psnr(load_image(rl / f"{group}_gt" / gt, 1).numpy() / 255.0,
                    load_image(rl / f"{group}_in" / inp, 1).numpy() / 255.0, data_range=1.0)
            for inp, gt, _ in PAIRS[group].values()
        ]  # fmt: skip
        assert levels[lv]["psnr"] == pytest.approx(float(np.mean(want)), abs=1e-3)
        assert levels[lv]["input_psnr"] == pytest.approx(levels[lv]["psnr"], abs=1e-4)
    md = (tmp_path / "run" / "results.md").read_text()
    assert "test variant: rl" in md
