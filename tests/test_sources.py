"""Image decoding (data/images.py) and image sources (data/sources/)."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from helpers import compose_cfg
from hydra.utils import instantiate
from PIL import Image

from lightrestore.data.images import (
    IMAGE_EXTENSIONS,
    load_image,
    read_size,
    resize_shorter,
    to_uint8_chw,
)
from lightrestore.data.sources import (
    EmbeddedSource,
    FolderSource,
    SkippedImagesWarning,
    fraction_sizes,
    region_boxes,
)
from lightrestore.errors import ConfigError, DataError

RNG = np.random.default_rng(0)


def rgb(h: int = 24, w: int = 32) -> np.ndarray:
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def save(path: Path, img: Image.Image | np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(img, np.ndarray):
        img = Image.fromarray(img)
    img.save(path)
    return path


def make_folder(
    root: Path, n: int, size: tuple[int, int] = (24, 32), prefix: str = ""
) -> list[str]:
    """``n`` RGB pngs named ``{prefix}img{i:03d}.png``; returns their names."""
    names = [f"{prefix}img{i:03d}.png" for i in range(n)]
    for name in names:
        save(root / name, rgb(*size))
    return names


def truncated_jpeg(path: Path) -> Path:
    save(path, rgb(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def all_names(src: FolderSource) -> dict[str, list[str]]:
    return {s: src.split(s).names for s in ("train", "val", "test")}


# =========================================================================== images.py


def test_extensions_cover_the_documented_formats():
    expected = {"png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp", "ppm", "pgm"}
    assert {e.lstrip(".") for e in IMAGE_EXTENSIONS} == expected


@pytest.mark.parametrize("ext", ["png", "bmp", "tif", "ppm", "webp"])
def test_lossless_formats_round_trip(tmp_path, ext):
    a = rgb()
    path = tmp_path / f"a.{ext}"
    Image.fromarray(a).save(path, **({"lossless": True} if ext == "webp" else {}))
    t = load_image(path, channels=3)
    assert t.dtype == torch.uint8 and t.shape == (3, 24, 32)
    assert torch.equal(t, torch.from_numpy(a).permute(2, 0, 1))


def test_jpeg_and_pgm_load(tmp_path):
    save(tmp_path / "a.jpg", rgb())
    save(tmp_path / "b.pgm", rgb()[..., 0])
    assert load_image(tmp_path / "a.jpg", 3).shape == (3, 24, 32)
    grey = load_image(tmp_path / "b.pgm", 3)
    assert grey.shape == (3, 24, 32) and torch.equal(grey[0], grey[2])


def test_grey_is_replicated_to_three_channels():
    g = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
    t = to_uint8_chw(Image.fromarray(g, "L"), 3)
    assert t.shape == (3, 5, 7)
    for c in range(3):
        assert torch.equal(t[c], torch.from_numpy(g))
    assert torch.equal(to_uint8_chw(g, 1)[0], torch.from_numpy(g))


def test_alpha_is_dropped_not_blended():
    a = RNG.integers(0, 256, (6, 6, 4), dtype=np.uint8)
    a[..., 3] = 0  # fully transparent: the colour must survive anyway
    t = to_uint8_chw(Image.fromarray(a, "RGBA"), 3)
    assert torch.equal(t, torch.from_numpy(a[..., :3]).permute(2, 0, 1))
    la = Image.fromarray(a[..., :2], "LA")
    assert torch.equal(to_uint8_chw(la, 1)[0], torch.from_numpy(a[..., 0]))


def test_palette_cmyk_and_bilevel_match_pillow_conversions():
    base = Image.fromarray(rgb())
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    cmyk = base.convert("CMYK")
    bilevel = base.convert("1")
    for img in (pal, cmyk):
        want_rgb = torch.from_numpy(np.array(img.convert("RGB"))).permute(2, 0, 1)
        assert torch.equal(to_uint8_chw(img, 3), want_rgb)
        assert torch.equal(to_uint8_chw(img, 1)[0], torch.from_numpy(np.array(img.convert("L"))))
    assert set(to_uint8_chw(bilevel, 1).unique().tolist()) <= {0, 255}


def test_luma_equals_pillow_L_exactly():
    # every 6-bit colour cube corner plus noise: covers Pillow's fixed-point rounding
    v = np.arange(0, 256, 4, dtype=np.uint8)
    cube = np.stack(np.meshgrid(v, v, v, indexing="ij"), -1).reshape(256, 1024, 3)
    img = Image.fromarray(cube)
    want = torch.from_numpy(np.array(img.convert("L")))
    got = to_uint8_chw(img, 1)
    assert got.shape == (1, 256, 1024)
    assert torch.equal(got[0], want)
    assert torch.equal(to_uint8_chw(cube, 1)[0], want)  # arrays go the same way


def test_sixteen_bit_png_scales_to_eight_bits(tmp_path):
    values = np.array([[0, 65535, 32896, 257 * 100, 128, 129]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    with Image.open(path) as img:
        assert img.mode.startswith("I")  # really stored as 16-bit
    t = load_image(path, channels=1)
    assert t.dtype == torch.uint8
    assert t[0, 0].tolist() == [0, 255, 128, 100, 0, 1]
    assert load_image(path, channels=3).shape == (3, 1, 6)


def test_array_dtypes():
    assert to_uint8_chw(np.array([[0, 65535, 32896]], np.uint16), 1).tolist() == [[[0, 255, 128]]]
    assert to_uint8_chw(np.array([[0.0, 1.0, 0.5, 2.0]]), 1).tolist() == [[[0, 255, 128, 255]]]
    assert to_uint8_chw(np.array([[True, False]]), 1).tolist() == [[[255, 0]]]
    assert to_uint8_chw(np.zeros((4, 5, 3), np.float32), 3).shape == (3, 4, 5)


def test_result_does_not_alias_the_input():
    a = np.zeros((4, 4), np.uint8)
    t = to_uint8_chw(a, 1)
    t += 7
    assert a.max() == 0


def test_bad_channels_is_a_config_error():
    with pytest.raises(ConfigError):
        to_uint8_chw(np.zeros((2, 2), np.uint8), 2)


@pytest.mark.parametrize(
    ("h", "w", "size", "want"), [(40, 100, 20, (20, 50)), (100, 30, 12, (40, 12))]
)
def test_load_size_resizes_the_shorter_side(tmp_path, h, w, size, want):
    a = rgb(h, w)
    path = save(tmp_path / "a.png", a)
    t = load_image(path, 3, load_size=size)
    assert tuple(t.shape[1:]) == want
    assert read_size(path, load_size=size) == want
    assert read_size(path) == (h, w)
    pil = Image.fromarray(a).resize((want[1], want[0]), Image.Resampling.BICUBIC)
    assert torch.equal(t, torch.from_numpy(np.array(pil)).permute(2, 0, 1))


def test_resize_shorter_keeps_aspect_and_grey_matches_L():
    g = RNG.integers(0, 256, (1, 30, 45), dtype=np.uint8)
    out = resize_shorter(torch.from_numpy(g), 20)
    assert out.shape == (1, 20, 30)
    want = Image.fromarray(g[0]).resize((30, 20), Image.Resampling.BICUBIC)
    assert torch.equal(out[0], torch.from_numpy(np.array(want)))
    same = torch.zeros(3, 20, 30, dtype=torch.uint8)
    assert resize_shorter(same, 20) is same and resize_shorter(same, None) is same


def test_truncated_jpeg_header_reads_but_decode_fails(tmp_path):
    path = truncated_jpeg(tmp_path / "broken.jpg")
    assert read_size(path) == (64, 64)
    with pytest.raises(DataError, match=r"cannot decode image '.*broken\.jpg'.*Remove or replace"):
        load_image(path, 3)


def test_non_image_with_image_extension(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("not an image")
    with pytest.raises(DataError, match=r"x\.png"):
        read_size(path)
    with pytest.raises(DataError, match=r"x\.png"):
        load_image(path, 3)


# =========================================================================== FolderSource


def test_fractions_split_is_seeded_disjoint_and_covering(tmp_path):
    names = make_folder(tmp_path, 20)
    a = all_names(FolderSource(tmp_path, seed=3))
    b = all_names(FolderSource(tmp_path, seed=3))
    c = all_names(FolderSource(tmp_path, seed=4))
    assert a == b and a != c
    assert [len(a[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert sorted(a["train"] + a["val"] + a["test"]) == names
    assert all(a[s] == sorted(a[s]) for s in a)  # sorted within each split
    d = FolderSource(tmp_path, seed=3).describe()
    assert d["split_mode"] == "fractions" and d["seed"] == 3
    assert d["splits"] == {"train": 16, "val": 2, "test": 2}
    json.dumps(d)


def test_fraction_sizes_never_leave_a_split_empty():
    assert fraction_sizes(1000, (0.8, 0.1, 0.1)) == [800, 100, 100]
    assert fraction_sizes(3, (0.8, 0.1, 0.1)) == [1, 1, 1]
    assert fraction_sizes(3, (0.05, 0.9, 0.05)) == [1, 1, 1]
    for n in range(3, 40):
        sizes = fraction_sizes(n, (0.7, 0.2, 0.1))
        assert sum(sizes) == n and min(sizes) >= 1


def test_too_few_images_for_a_random_split(tmp_path):
    make_folder(tmp_path, 2)
    with pytest.raises(DataError, match="at least 3"):
        FolderSource(tmp_path)


def test_images_found_recursively_sorted_with_any_case_extension(tmp_path):
    save(tmp_path / "b" / "z.PNG", rgb())
    save(tmp_path / "a.jpg", rgb())
    save(tmp_path / "b" / "c" / "y.tiff", rgb())
    save(tmp_path / ".hidden" / "h.png", rgb())
    save(tmp_path / "._resource.png", rgb())
    (tmp_path / "notes.txt").write_text("hello")
    src = FolderSource(tmp_path, counts=[1, 1, 1])
    assert all_names(src) == {"train": ["a.jpg"], "val": ["b/c/y.tiff"], "test": ["b/z.PNG"]}
    assert src.split("train")[0].shape == (3, 24, 32)


def test_counts_take_the_first_files_in_sorted_order(tmp_path):
    names = make_folder(tmp_path, 10)
    src = FolderSource(tmp_path, counts=[5, 2, 3])
    assert all_names(src) == {"train": names[:5], "val": names[5:7], "test": names[7:]}
    assert src.describe()["counts"] == [5, 2, 3]
    small = FolderSource(tmp_path, counts=[2, 1, 1])
    assert all_names(small) == {"train": names[:2], "val": names[2:3], "test": names[3:4]}
    with pytest.raises(DataError, match="has 10 readable images.*needs 11"):
        FolderSource(tmp_path, counts=[9, 1, 1])
    with pytest.raises(ConfigError):
        FolderSource(tmp_path, counts=[5, 5])


def test_list_files(tmp_path):
    root = tmp_path / "data"
    names = make_folder(root, 6, prefix="sub/")
    (tmp_path / "train.txt").write_text("# training\n" + "\n".join(names[:3]) + "\n\n")
    (tmp_path / "val.txt").write_text(f"./{names[3]}\n")
    (root / "test.txt").write_text("\n".join(names[4:]) + "\n")  # found relative to root
    src = FolderSource(
        root,
        train_list=tmp_path / "train.txt",
        val_list=str(tmp_path / "val.txt"),
        test_list="test.txt",
    )
    assert all_names(src) == {"train": names[:3], "val": names[3:4], "test": names[4:]}
    assert src.describe()["split_mode"] == "lists"


def test_list_naming_a_missing_file(tmp_path):
    make_folder(tmp_path, 3)
    for s in ("train", "val", "test"):
        (tmp_path / f"{s}.txt").write_text("img000.png\n")
    (tmp_path / "test.txt").write_text("img002.png\nnope.png\n")
    lists = {f"{s}_list": tmp_path / f"{s}.txt" for s in ("train", "val", "test")}
    with pytest.raises(DataError, match=r"nope\.png.*test list.*line 2"):
        FolderSource(tmp_path, **lists)
    with pytest.raises(ConfigError, match="test_list"):
        FolderSource(tmp_path, train_list=lists["train_list"], val_list=lists["val_list"])
    with pytest.raises(DataError, match=r"missing\.txt.*does not exist"):
        FolderSource(tmp_path, **{**lists, "val_list": tmp_path / "missing.txt"})


def test_lists_overlap_warns(tmp_path):
    make_folder(tmp_path, 2)
    for s in ("train", "val", "test"):
        (tmp_path / f"{s}.txt").write_text("img000.png\n" if s != "val" else "img001.png\n")
    lists = {f"{s}_list": tmp_path / f"{s}.txt" for s in ("train", "val", "test")}
    with pytest.warns(UserWarning, match="both the train and the test list"):
        FolderSource(tmp_path, **lists)


def test_partition_file_celeba_format(tmp_path):
    root = tmp_path / "celeba"
    names = [f"{i:06d}.jpg" for i in range(1, 8)]
    for n in names:
        save(root / "img_align_celeba" / n, rgb())
    labels = [0, 0, 0, 0, 1, 2, 2]
    (tmp_path / "list_eval_partition.txt").write_text(
        "".join(f"{n} {k}\n" for n, k in zip(names, labels))
    )
    src = FolderSource(root, partition_file=tmp_path / "list_eval_partition.txt", seed=1)
    got = all_names(src)
    assert got["train"] == [f"img_align_celeba/{n}" for n in names[:4]]
    assert got["val"] == [f"img_align_celeba/{n}" for n in names[4:5]]
    assert got["test"] == [f"img_align_celeba/{n}" for n in names[5:]]
    assert src.describe()["split_mode"] == "partition_file"

    (tmp_path / "bad.txt").write_text("000001.jpg 0\n000002.jpg 5\n")
    with pytest.raises(DataError, match=r"line 2 of partition file .*bad\.txt"):
        FolderSource(root, partition_file=tmp_path / "bad.txt")
    (tmp_path / "ghost.txt").write_text("000001.jpg 0\n999999.jpg 1\n000003.jpg 2\n")
    with pytest.raises(DataError, match=r"999999\.jpg"):
        FolderSource(root, partition_file=tmp_path / "ghost.txt")


def test_train_val_test_subfolders(tmp_path):
    make_folder(tmp_path / "train", 3)
    make_folder(tmp_path / "valid", 2)
    make_folder(tmp_path / "test", 1)
    save(tmp_path / "stray.png", rgb())  # outside the split folders: ignored
    with pytest.warns(UserWarning, match="counts ignored"):
        src = FolderSource(tmp_path, counts=[1, 1, 1])
    got = all_names(src)
    assert got["train"] == ["train/img000.png", "train/img001.png", "train/img002.png"]
    assert got["val"] == ["valid/img000.png", "valid/img001.png"]
    assert got["test"] == ["test/img000.png"]
    assert src.describe()["split_mode"] == "subfolders"


def test_missing_subfolder_is_named(tmp_path):
    make_folder(tmp_path / "train", 3)
    make_folder(tmp_path / "val", 2)
    with pytest.raises(DataError, match=r"no test/.*add a test/ subfolder"):
        FolderSource(tmp_path)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=r"data folder '.*nowhere' does not exist.*data=embedded"):
        FolderSource(tmp_path / "nowhere")


def test_root_with_no_images_lists_extensions(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.csv").write_text("y")
    with pytest.raises(DataError, match=r"no image files.*\.jpeg.*\.png.*data\.source\.root"):
        FolderSource(tmp_path)


def test_undecodable_files_are_skipped_and_reported(tmp_path):
    names = make_folder(tmp_path, 6)
    (tmp_path / "x.png").write_text("I am text")
    truncated_jpeg(tmp_path / "broken.jpg")
    with pytest.warns(SkippedImagesWarning, match=r"skipped 1 file.*x\.png"):
        src = FolderSource(tmp_path)
    splits = all_names(src)
    flat = sum(splits.values(), [])
    assert "x.png" not in flat and sorted(flat) == sorted(names + ["broken.jpg"])
    assert src.describe()["skipped"] == {"count": 1, "examples": ["x.png"]}
    # the truncated JPEG has a readable header, so it is in a split and fails on decode
    split = next(s for s in splits if "broken.jpg" in splits[s])
    images = src.split(split)
    k = images.names.index("broken.jpg")
    with pytest.raises(DataError, match=r"cannot decode image '.*broken\.jpg'"):
        images[k]
    assert all(images[i].shape == (3, 24, 32) for i in range(len(images)) if i != k)


def test_folder_where_nothing_decodes(tmp_path):
    for i in range(7):
        (tmp_path / f"x{i}.png").write_text("text")
    with pytest.raises(DataError, match=r"no decodable image.*7 files.*x0\.png"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            FolderSource(tmp_path)


def test_check_min_size_names_the_first_small_image(tmp_path):
    make_folder(tmp_path, 5)
    save(tmp_path / "img000.png", rgb(10, 40))  # the first file is too small for 16
    src = FolderSource(tmp_path, counts=[3, 1, 1])
    train = src.split("train")
    assert train.sizes()[0] == (10, 40)
    train.check_min_size(10)
    with pytest.raises(DataError) as info:
        train.check_min_size(16)
    msg = str(info.value)
    assert "img000.png" in msg and "10x40" in msg
    assert "data.source.load_size>=16" in msg and "data.crop_size" in msg and "remove" in msg
    # with load_size the shorter side is 16 everywhere and the check passes
    FolderSource(tmp_path, counts=[3, 1, 1], load_size=16).split("train").check_min_size(16)


def test_load_size_in_folder_source(tmp_path):
    save(tmp_path / "a.png", rgb(30, 90))
    save(tmp_path / "b.png", rgb(60, 20))
    save(tmp_path / "c.png", rgb(25, 25))
    src = FolderSource(tmp_path, counts=[1, 1, 1], load_size=10)
    for s, want in zip(("train", "val", "test"), [(10, 30), (30, 10), (10, 10)]):
        images = src.split(s)
        assert images.sizes() == [want]
        assert tuple(images[0].shape) == (3, *want)


def test_channels_one_is_pillow_luma(tmp_path):
    images = {f"{i}.png": rgb(20, 20) for i in range(3)}
    for name, a in images.items():
        save(tmp_path / name, a)
    src = FolderSource(tmp_path, channels=1, counts=[1, 1, 1])
    for s, name in zip(("train", "val", "test"), sorted(images)):
        want = np.array(Image.fromarray(images[name]).convert("L"))
        got = src.split(s)[0]
        assert got.shape == (1, 20, 20) and torch.equal(got[0], torch.from_numpy(want))


def test_folder_source_pickles(tmp_path):
    make_folder(tmp_path, 5)
    src = FolderSource(tmp_path)
    clone = pickle.loads(pickle.dumps(src))
    assert all_names(clone) == all_names(src)
    assert torch.equal(clone.split("val")[0], src.split("val")[0])
    images = pickle.loads(pickle.dumps(src.split("train")))
    assert images.sizes() == src.split("train").sizes()


def test_bad_options_are_config_errors(tmp_path):
    make_folder(tmp_path, 3)
    with pytest.raises(ConfigError):
        FolderSource(tmp_path, fractions=(0.5, 0.5, 0.5))
    with pytest.raises(ConfigError):
        FolderSource(tmp_path, load_size=0)
    with pytest.raises(ConfigError):
        FolderSource(tmp_path, channels=4)


def test_image_list_indexing(tmp_path):
    make_folder(tmp_path, 5)
    train = FolderSource(tmp_path, counts=[3, 1, 1]).split("train")
    assert torch.equal(train[-1], train[2])
    with pytest.raises(IndexError):
        train[3]
    assert len(list(train)) == 3


# =========================================================================== EmbeddedSource

SPLIT_NAMES = ("train", "val", "test")
COLOUR_PHOTOS = [
    "skimage:rocket",
    "skimage:coffee",
    "skimage:hubble_deep_field",
    "skimage:immunohistochemistry",
    "skimage:motorcycle_left",
    "skimage:chelsea",
    "skimage:astronaut",
    "matplotlib:grace_hopper",
]
GREY_PHOTOS = [
    f"skimage:{p}"
    for p in ("brick", "grass", "gravel", "moon", "page", "text", "coins", "clock", "camera")
]


def gap(a, b) -> int:
    """Pixels between two (top, left, height, width) boxes along the axis that separates
    them most (negative: they overlap on both axes)."""
    (ta, la, ha, wa), (tb, lb, hb, wb) = a, b
    return max(tb - (ta + ha), ta - (tb + hb), lb - (la + wa), la - (lb + wb))


def check_regions(src: EmbeddedSource, crop: int) -> None:
    """Every photo in every split; regions inside the photo, >= crop, >= guard apart."""
    want = COLOUR_PHOTOS + (GREY_PHOTOS if src.channels == 1 else [])
    regions = src.regions()
    assert list(regions) == want
    for s in SPLIT_NAMES:
        images = src.split(s)
        assert images.names == [f"{p}#{s}" for p in want]
        images.check_min_size(crop)  # what the DataModule checks
    for photo, r in regions.items():
        h, w = r["size"]
        assert min(h, w) >= (src.load_size or 0)
        for s in SPLIT_NAMES:
            top, left, bh, bw = r[s]
            assert top >= 0 and left >= 0 and top + bh <= h and left + bw <= w, (photo, s)
            assert min(bh, bw) >= crop, (photo, s, r[s])
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            assert gap(r[a], r[b]) >= src.guard, (photo, a, b, r)


def test_region_boxes_pixel_arithmetic():
    # landscape 256x385 (chelsea at load_size 256), 64-px crops, guard 65
    boxes = region_boxes(256, 385, 64, 65)
    assert boxes == {
        "train": (0, 0, 256, 224),  # 385 - 65 = 320 px; eval band round(0.3 * 320) = 96
        "val": (0, 289, 96, 96),  # 224 + 65 = 289; (256 - 65) / 2 = 95.5 -> 96
        "test": (161, 289, 95, 96),  # 96 + 65 = 161; 191 - 96 = 95
    }
    assert gap(boxes["train"], boxes["val"]) == 65 and gap(boxes["val"], boxes["test"]) == 65
    # portrait: the same layout transposed; val_first=False swaps val and test
    assert region_boxes(385, 256, 64, 65, val_first=False) == {
        "train": (0, 0, 224, 256),
        "val": (289, 160, 96, 96),
        "test": (289, 0, 96, 95),
    }
    # a square photo: the eval band grows to hold a crop (round(0.3 * 191) = 57 < 64)
    assert region_boxes(256, 256, 64, 65)["val"] == (0, 192, 96, 64)
    # the smallest photo that fits: 2 * 32 + 33 = 97; one less does not
    assert region_boxes(97, 97, 32, 33)["test"] == (65, 65, 32, 32)
    with pytest.raises(ValueError, match="too small"):
        region_boxes(96, 200, 32, 33)


@pytest.mark.parametrize(
    ("channels", "load_size", "crop"), [(3, 256, 64), (1, 256, 64), (3, 64, 32), (1, 64, 32)]
)
def test_embedded_every_photo_in_every_split(channels, load_size, crop):
    src = EmbeddedSource(channels=channels, load_size=load_size, crop_size=crop)
    assert src.guard == crop + 1  # wider than a crop
    check_regions(src, crop)
    # the regions are the boxes of the resized photo, pixel for pixel
    for s in SPLIT_NAMES:
        images = src.split(s)
        for t, hw in zip(images, images.sizes()):
            assert t.dtype == torch.uint8 and t.shape[0] == channels and tuple(t.shape[1:]) == hw
    chelsea = src.regions()["skimage:chelsea"]
    whole = resize_shorter(to_uint8_chw(skimage.data.chelsea(), channels), min(chelsea["size"]))
    k = COLOUR_PHOTOS.index("skimage:chelsea")
    for s in SPLIT_NAMES:
        top, left, bh, bw = chelsea[s]
        assert torch.equal(src.split(s)[k], whole[:, top : top + bh, left : left + bw])
    # the splits hold different pixels of each photo (not one region three times)
    assert not torch.equal(
        src.split("val")[k][:, :crop, :crop], src.split("test")[k][:, :crop, :crop]
    )
    d = src.describe()
    assert d["kind"] == "embedded" and d["split_mode"] == "regions"
    assert d["fractions"] == [0.7, 0.15, 0.15] and d["guard"] == crop + 1
    assert d["splits"] == {s: len(COLOUR_PHOTOS) + 9 * (channels == 1) for s in SPLIT_NAMES}
    assert d["regions"]["skimage:astronaut"]["val"] == list(
        src.regions()["skimage:astronaut"]["val"]
    )
    json.dumps(d)


def test_stereo_pair_is_used_once():
    names = EmbeddedSource().split("train").names
    assert "skimage:motorcycle_left#train" in names
    assert not any("motorcycle_right" in n for n in names)


@pytest.mark.parametrize(
    "overrides",
    [
        ("experiment=ondemand_inpaint",),
        ("experiment=ondemand_denoise",),  # greyscale
        ("experiment=sr_edsr_x2",),
        ("experiment=sr_edsr_x3",),
        ("experiment=sr_edsr_x4",),
        ("experiment=sr_lapsrn_x4",),  # Y channel: reads RGB
    ],
)
@pytest.mark.parametrize("smoke", [False, True])
def test_data_configs_fit_their_crops(tmp_path, overrides, smoke):
    """The composed data configs: every photo in every split, regions >= the crop the
    DataModule takes, guard wider than that crop; SR photos are never upsampled."""
    cfg = compose_cfg(tmp_path, *overrides, smoke=smoke)
    src = instantiate(cfg.data.source)
    crop = int(cfg.data.crop_size)
    assert src.crop_size == crop and src.guard > crop
    check_regions(src, crop)
    if overrides[0].startswith("experiment=sr_") and not smoke:
        assert src.load_size == 300 and crop == 96  # chelsea's native shorter side
        assert min(src.regions()["skimage:chelsea"]["size"]) == 300


def test_too_small_load_size_is_a_clear_error():
    src = EmbeddedSource(load_size=64, crop_size=32, enlarge=False)
    with pytest.raises(DataError) as info:
        src.split("val")
    msg = str(info.value)
    assert "skimage:rocket" in msg and "2*32+33 = 97" in msg
    assert "data.source.load_size>=97" in msg and "data.crop_size" in msg
    # enlarged (the default): the photos get the smallest shorter side that fits
    assert {
        min(r["size"]) for r in EmbeddedSource(load_size=64, crop_size=32).regions().values()
    } == {97}
    # native size: the greyscale page (191x384) cannot hold 64-px regions (needs 193)
    with pytest.raises(DataError, match=r"skimage:page.*load_size=null.*load_size>=193"):
        EmbeddedSource(channels=1, load_size=None).split("test")
    # enlarging beyond a photo's native size (upsampling) warns and names the fix
    with pytest.warns(UserWarning, match=r"skimage:chelsea.*beyond its native size.*<= 99"):
        regions = EmbeddedSource(load_size=256, crop_size=192).regions()
    assert min(regions["skimage:chelsea"]["size"]) == 577


def test_region_list_too_small_for_a_larger_crop_names_the_source_crop():
    images = EmbeddedSource(load_size=64, crop_size=32).split("val")
    images.check_min_size(32)
    with pytest.raises(DataError, match=r"#val.*load_size.*data\.source\.crop_size"):
        images.check_min_size(48)


def test_bad_region_options_are_config_errors():
    for kw in ({"fractions": (0.7, 0.3, 0.0)}, {"fractions": (0.5, 0.5)}, {"guard": -1},
               {"crop_size": 0}, {"fractions": (0.8, 0.15, 0.15)}):  # fmt: skip
        with pytest.raises(ConfigError):
            EmbeddedSource(**kw)


def test_embedded_is_cached_and_safe_to_modify():
    a = EmbeddedSource().split("test")
    b = EmbeddedSource(channels=3, load_size=256, crop_size=64, guard=65).split("test")
    assert a is b
    img = a[0]
    img.zero_()
    assert a[0].max() > 0  # the cache is unaffected
    clone = pickle.loads(pickle.dumps(EmbeddedSource()))
    assert clone.split("val").names == [f"{p}#val" for p in COLOUR_PHOTOS]
    assert clone.regions() == EmbeddedSource().regions()


def test_embedded_native_size():
    src = EmbeddedSource(load_size=None)
    astronaut = src.regions()["skimage:astronaut"]
    assert astronaut["size"] == [512, 512]  # not resized
    check_regions(src, 64)
