"""``python -m lightrestore.restore``: safe outputs, image kinds, tiling in bounded memory."""

from __future__ import annotations

import io
import logging
import struct
import zlib
from pathlib import Path

import helpers
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import compose_cfg, run_cli
from PIL import Image

from lightrestore.cli.restore import run_restore
from lightrestore.cli.train import run
from lightrestore.errors import ConfigError, DataError, UserError
from lightrestore.inference.tiling import restore_tiled

IDENTITY = ("model._target_=helpers.IdentityModel", "optimizer.lr=0")


def _train(tmp: Path, experiment: str, *overrides: str) -> Path:
    cfg = compose_cfg(tmp, f"experiment={experiment}", "trainer.max_epochs=1", "test=false", *overrides)  # fmt: skip
    return Path(run(cfg)["trainer"].checkpoint_callback.last_model_path)


@pytest.fixture(scope="module")
def odl_ckpt(tmp_path_factory) -> Path:
    """ODL's autoencoder (fixed 32-pixel input: tiled), 3 channels."""
    return _train(tmp_path_factory.mktemp("odl"), "rigid_joint_deblur")


@pytest.fixture(scope="module")
def rgb_identity(tmp_path_factory) -> Path:
    """An identity "restoration" of 3-channel images (takes whole images)."""
    return _train(tmp_path_factory.mktemp("id3"), "rigid_joint_deblur", *IDENTITY)


@pytest.fixture(scope="module")
def grey_identity(tmp_path_factory) -> Path:
    """An identity "restoration" of 1-channel (greyscale) images."""
    return _train(tmp_path_factory.mktemp("id1"), "rigid_joint_denoise", *IDENTITY)


def _restore(tmp_path: Path, ckpt: Path, inp: Path, *overrides: str) -> list[Path]:
    cfg = compose_cfg(tmp_path, f"ckpt={ckpt}", f"input={inp}", *overrides, config_name="restore", smoke=False)  # fmt: skip
    return run_restore(cfg)


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img).copy()


# ---------------------------------------------------------------- unreadable files
def test_restore_writes_images_and_skips_non_images(tmp_path, odl_ckpt, caplog, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_rgb(50, 70)).save(folder / "photo.jpg")
    (folder / "notes.png").write_text("not an image")
    with caplog.at_level(logging.WARNING):
        written = _restore(tmp_path, odl_ckpt, folder, f"output={tmp_path / 'out'}")
    assert [p.name for p in written] == ["photo.png"]
    assert Image.open(written[0]).size == (70, 50)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png"]
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert (
        summary == f"restored 1 image(s) into {tmp_path / 'out'}; skipped 1 unreadable: notes.png"
    )
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([m for m in warned if "notes.png" in m]) == 1
    # a single unreadable file, or a folder where nothing can be read, is an error
    with pytest.raises(DataError, match="notes.png' is not an image lightrestore can read"):
        _restore(tmp_path, odl_ckpt, folder / "notes.png", f"output={tmp_path / 'o2'}")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DataError, match=r"none of the 2 image file\(s\) .* could be read"):
        _restore(tmp_path, odl_ckpt, folder, f"output={tmp_path / 'o3'}")
    out = run_cli(
        f"ckpt={odl_ckpt}", f"input={folder / 'notes.png'}", f"output={tmp_path / 'o4'}",
        cwd=tmp_path, module="lightrestore.restore",
    )  # fmt: skip
    assert out.returncode == 2 and "is not an image" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_skips_unreadable_with_exit_0_and_reports_bad_settings_in_one_line(
    tmp_path, rgb_identity
):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_rgb(9, 11)).save(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    out = run_cli(
        f"ckpt={rgb_identity}", f"input={folder}", f"output={tmp_path / 'out'}",
        cwd=tmp_path, module="lightrestore.restore",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"restored 1 image(s) into {tmp_path / 'out'}; skipped 1 unreadable: b.png" in out.stdout
    assert np.array_equal(_pixels(tmp_path / "out" / "a.png"), _pixels(folder / "a.png"))
    bad = run_cli(
        f"ckpt={rgb_identity}", f"input={folder}", "batch_size=0",
        cwd=tmp_path, module="lightrestore.restore",
    )  # fmt: skip
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lightrestore.restore: error: batch_size=0")


# ---------------------------------------------------------------- outputs never destroy inputs
def test_output_equal_to_or_inside_the_input_folder_is_refused(tmp_path, rgb_identity):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(_rgb(8, 8)).save(folder / "a.png")
    Image.fromarray(_rgb(8, 8, 1)).save(folder / "b.jpg")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    refusals = [(folder,), (folder / "restored",), (folder / "." / "x" / "..",)]
    refusals.append((folder, "overwrite=true"))  # overwrite=true never touches inputs
    for output, *extra in refusals:
        with pytest.raises(UserError, match="input folder .* Choose another folder, e.g. output="):
            _restore(tmp_path, rgb_identity, folder, f"output={output}", *extra)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    # a single file: its own folder is fine unless the result would replace it
    for extra in ((), ("overwrite=true",)):
        with pytest.raises(UserError, match="over the input .* choose another output="):
            _restore(tmp_path, rgb_identity, folder / "a.png", f"output={folder}", *extra)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    written = _restore(tmp_path, rgb_identity, folder / "b.jpg", f"output={folder}")
    assert written == [folder / "b.png"] and (folder / "a.png").read_bytes() == before["a.png"]


def test_output_names_are_unique_and_existing_files_need_overwrite(tmp_path, rgb_identity):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    names = ["a.jpg", "a.png", "b.png", "B.bmp", "c.bmp", "sub/a.png"]
    for i, name in enumerate(names):
        Image.fromarray(_rgb(6 + i, 7, seed=i)).save(folder / name)
    out = tmp_path / "out"
    written = _restore(tmp_path, rgb_identity, folder, f"output={out}")
    expected = ["a_jpg.png", "a_png.png", "b_png.png", "B_bmp.png", "c.png", "sub/a.png"]
    assert sorted(p.relative_to(out).as_posix() for p in written) == sorted(expected)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == sorted(expected)
    for name, want in zip(names, expected):  # each result is its own input (identity model)
        assert np.array_equal(_pixels(out / want), _pixels(folder / name)), name
    # a rerun into the same folder is refused before anything is written
    stamp = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    with pytest.raises(
        UserError, match="6 output file.* already exist .* overwrite=true .* output="
    ):
        _restore(tmp_path, rgb_identity, folder, f"output={out}")
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamp
    # one clash is enough to refuse the whole run, and nothing else is written
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "c.png").write_bytes(b"mine")
    with pytest.raises(UserError, match=r"1 output file\(s\) already exist .*\(c.png\)"):
        _restore(tmp_path, rgb_identity, folder, f"output={fresh}")
    assert [p.name for p in fresh.rglob("*")] == ["c.png"]
    assert (fresh / "c.png").read_bytes() == b"mine"
    _restore(tmp_path, rgb_identity, folder, f"output={fresh}", "overwrite=true")
    assert np.array_equal(_pixels(fresh / "c.png"), _pixels(folder / "c.bmp"))


def test_output_name_counter_fallback_and_case_insensitive_clashes():
    from lightrestore.inference.image_files import plan_outputs

    files = [Path(n) for n in ("x/a.jpg", "x/a.png", "x/a_jpg.png", "x/A.JPG", "x/d.TIF")]
    got = [p.as_posix() for p in plan_outputs(files, Path("x"))]
    assert got == ["a_jpg_2.png", "a_png.png", "a_jpg.png", "A_JPG_3.png", "d.png"]
    assert len({g.casefold() for g in got}) == len(got)
    assert plan_outputs([Path("/data/p/q.webp")], None) == [Path("q.png")]


# ---------------------------------------------------------------- what viewers show
def _jpeg_with_orientation(path: Path, pixels: np.ndarray, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(path, quality=95, exif=exif)


@pytest.mark.parametrize("orientation, turns", [(6, -1), (8, 1), (3, 2)])
def test_exif_orientation_is_applied(tmp_path, rgb_identity, orientation, turns):
    pixels = np.zeros((24, 40, 3), dtype=np.uint8)
    pixels[:8, :10] = (255, 0, 0)  # a red block in the top left corner
    src = tmp_path / f"o{orientation}.jpg"
    _jpeg_with_orientation(src, pixels, orientation)
    (dst,) = _restore(tmp_path, rgb_identity, src, f"output={tmp_path / 'out'}")
    stored = _pixels(src)  # the decoded pixels as stored, before orientation
    want = np.rot90(stored, turns)  # 6: turn 90° clockwise to view, 8: anticlockwise, 3: 180°
    got = _pixels(dst)
    assert got.shape == want.shape == ((40, 24, 3) if orientation != 3 else (24, 40, 3))
    assert np.array_equal(got, want)


# ---------------------------------------------------------------- grey, alpha, depth
def _png16_grey(path: Path, values: np.ndarray) -> None:
    """A 16-bit greyscale PNG written by hand (independent of Pillow's encoder)."""
    h, w = values.shape
    raw = b"".join(b"\x00" + values[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def test_grey_stays_grey_alpha_is_kept_and_16_bit_warns(tmp_path, rgb_identity, caplog):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    rgb = _rgb(10, 12)
    alpha = np.random.default_rng(5).integers(0, 256, (10, 12), dtype=np.uint8)
    grey = rgb[..., 0]
    Image.fromarray(grey).save(folder / "grey.png")
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "rgba.png")
    Image.fromarray(np.dstack([grey, alpha])).save(folder / "la.png")
    pal = Image.fromarray(rgb).quantize(8)
    pal.info["transparency"] = 3
    pal.save(folder / "pal.png", transparency=3)
    deep = np.random.default_rng(6).integers(0, 65536, (10, 12)).astype(np.uint16)
    _png16_grey(folder / "deep.png", deep)
    with caplog.at_level(logging.WARNING):
        _restore(tmp_path, rgb_identity, folder, f"output={out}")
    modes = {p.name: Image.open(p).mode for p in out.iterdir()}
    assert modes == {
        "grey.png": "L", "rgba.png": "RGBA", "la.png": "LA", "pal.png": "RGBA", "deep.png": "L",
    }  # fmt: skip
    assert np.array_equal(_pixels(out / "grey.png"), grey)
    assert np.array_equal(_pixels(out / "rgba.png"), np.dstack([rgb, alpha]))
    assert np.array_equal(_pixels(out / "la.png"), np.dstack([grey, alpha]))
    pal_alpha = np.asarray(Image.open(folder / "pal.png").convert("RGBA"))[..., 3]
    assert (pal_alpha == 0).any() and (pal_alpha == 255).any()
    assert np.array_equal(_pixels(out / "pal.png"), np.asarray(pal.convert("RGBA")))
    assert np.array_equal(_pixels(out / "deep.png"), ((deep.astype(np.uint32) + 128) // 257))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [m for m in warned if "8-bit" in m] == [
        "deep.png has more than 8 bits per sample: written as 8-bit"
    ]


def test_colour_through_a_greyscale_model_warns_once(tmp_path, grey_identity, caplog):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    rgb = _rgb(9, 13)
    alpha = np.full((9, 13), 77, dtype=np.uint8)
    Image.fromarray(rgb).save(folder / "a.png")
    Image.fromarray(np.dstack([rgb, alpha])).save(folder / "b.png")
    Image.fromarray(rgb[..., 1]).save(folder / "c.png")
    with caplog.at_level(logging.WARNING):
        _restore(tmp_path, grey_identity, folder, f"output={out}")
    luma = np.asarray(Image.fromarray(rgb).convert("L"))  # Pillow's BT.601 as the reference
    assert Image.open(out / "a.png").mode == "L"
    assert np.array_equal(_pixels(out / "a.png"), luma)
    assert np.array_equal(_pixels(out / "b.png"), np.dstack([luma, alpha]))
    assert np.array_equal(_pixels(out / "c.png"), rgb[..., 1])
    grey_model = "model is greyscale: colour input restored as grey"
    warned = [r.getMessage() for r in caplog.records if grey_model in r.getMessage()]
    assert len(warned) == 1


def test_colour_result_of_a_grey_input_is_written_as_pillow_luma():
    from lightrestore.inference.image_files import SourceImage, output_image

    rgb = _rgb(7, 300)  # wider than one conversion band
    restored = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
    img = output_image(restored, SourceImage(restored, grey=True))
    assert img.mode == "L"
    assert np.array_equal(np.asarray(img), np.asarray(Image.fromarray(rgb).convert("L")))


# ---------------------------------------------------------------- settings
def test_bad_settings_are_one_line_user_errors(tmp_path, odl_ckpt, monkeypatch):
    img = tmp_path / "a.png"
    Image.fromarray(_rgb(8, 8)).save(img)
    cases = {
        "tile_stride=0": r"tile_stride=0 is invalid: give tile_stride=<an integer in 1\.\.32>",
        "tile_stride=33": r"tile_stride=33 is invalid: give tile_stride=<an integer in 1\.\.32>",
        "batch_size=0": r"batch_size=0 is invalid: give batch_size=<an integer >= 1>",
        "device=tpu7": r"unknown device 'tpu7': use device=auto .* device=cpu",
        "tile_overlap=512": r"tile_overlap=512 is invalid: give tile_overlap=<an integer in 0\.\.511>",  # noqa: E501
    }
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cases["device=cuda"] = r"CUDA is not available on this machine .* use device=cpu or device=auto"
    for override, message in cases.items():
        with pytest.raises(ConfigError, match=message) as err:
            _restore(tmp_path, odl_ckpt, img, override, f"output={tmp_path / 'out'}")
        assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- progress
class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_show_on_a_terminal(tmp_path, odl_ckpt, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a.png", "b.png"):
        Image.fromarray(_rgb(40, 40)).save(folder / name)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    _restore(tmp_path, odl_ckpt, folder, f"output={tmp_path / 'out'}", "batch_size=1")
    shown = terminal.getvalue()
    assert "2/2" in shown and "image" in shown  # over files
    assert "0/4" in shown and "tile" in shown  # over the 2x2 tiles of each image, one per call


# ---------------------------------------------------------------- tiling
def reference_restore_tiled(fn, image, tile, stride, batch_size=64):
    """The previous implementation (every window unfolded at once): the reference."""
    c, h, w = image.shape
    ph = max(tile, h + (-(h - tile) % stride if h > tile else 0)) - h
    pw = max(tile, w + (-(w - tile) % stride if w > tile else 0)) - w
    x = F.pad(image[None], (0, pw, 0, ph), mode="replicate")
    hh, ww = x.shape[-2:]
    cols = F.unfold(x, tile, stride=stride)  # (1, C*tile*tile, L)
    n = cols.shape[-1]
    windows = cols[0].T.reshape(n, c, tile, tile)
    out = torch.cat([fn(windows[i : i + batch_size]) for i in range(0, n, batch_size)])
    out_cols = out.reshape(n, -1).T[None]
    summed = F.fold(out_cols, (hh, ww), tile, stride=stride)
    count = F.fold(torch.ones_like(out_cols), (hh, ww), tile, stride=stride)
    return (summed / count)[0, :, :h, :w]


def test_tiling_covers_every_pixel_once_averaged():
    image = torch.rand(3, 45, 70)
    assert torch.allclose(restore_tiled(lambda t: t, image, tile=32, stride=7), image, atol=1e-6)
    assert torch.allclose(
        restore_tiled(lambda t: 2 * t, image, tile=32, stride=16), 2 * image, atol=1e-6
    )
    small = torch.rand(1, 20, 25)  # smaller than a tile: padded, then cropped
    assert restore_tiled(lambda t: t, small, tile=32, stride=16).shape == small.shape


@pytest.mark.parametrize(
    "h, w, tile, stride, batch",
    [(45, 70, 32, 7, 64), (20, 25, 32, 16, 3), (100, 37, 16, 16, 5), (64, 64, 16, 5, 1),
     (33, 129, 8, 3, 7), (1, 1, 4, 1, 2), (17, 50, 16, 1, 50)],
)  # fmt: skip
def test_band_tiling_equals_the_unfold_everything_algorithm(h, w, tile, stride, batch, monkeypatch):
    monkeypatch.setattr("lightrestore.inference.tiling._CHUNK", 7)  # rows are finished 7 columns at a time
    torch.manual_seed(h * w + stride)
    conv = torch.nn.Conv2d(3, 3, 3, padding=1)  # output depends on the window's content

    def fn(t: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(conv(t))

    image = torch.rand(3, h, w)
    with torch.no_grad():
        want = reference_restore_tiled(fn, image, tile, stride, batch)
        got = restore_tiled(fn, image, tile, stride, batch)
        assert got.shape == want.shape and got.dtype == torch.float32
        assert (got - want).abs().max() <= 1e-6
        u8 = (image * 255).round().byte()  # compact input and output
        out = torch.zeros(3, h, w, dtype=torch.uint8)
        restore_tiled(fn, u8, tile, stride, batch, out=out)
        want8 = (reference_restore_tiled(fn, u8.float() / 255, tile, stride, batch) * 255).round()
    assert (out.float() - want8).abs().max() <= 1  # equal but for .5 ties of float rounding
    assert (out.float() != want8).float().mean() < 1e-3


def test_tiling_with_an_upscaling_model():
    image = torch.rand(1, 23, 30)

    def nearest2(t: torch.Tensor) -> torch.Tensor:
        return t.repeat_interleave(2, -1).repeat_interleave(2, -2)

    got = restore_tiled(nearest2, image, tile=8, stride=3, batch_size=5, scale=2)
    want = image.repeat_interleave(2, -1).repeat_interleave(2, -2)
    assert got.shape == (1, 46, 60) and torch.allclose(got, want, atol=1e-6)


def test_tiling_memory_is_bounded_by_a_batch_and_a_band(monkeypatch):
    """The largest window batch, unfolded block and folded block do not depend on the
    image height (the old algorithm unfolded every window of the image at once)."""
    seen: dict[str, list[int]] = {"model": [], "unfold": [], "fold": []}
    unfold, fold = F.unfold, F.fold

    def rec(name, f):
        def wrapped(*a, **k):
            out = f(*a, **k)
            seen[name].append(out.numel())
            return out

        return wrapped

    monkeypatch.setattr(F, "unfold", rec("unfold", unfold))
    monkeypatch.setattr(F, "fold", rec("fold", fold))

    def model(t: torch.Tensor) -> torch.Tensor:
        seen["model"].append(t.shape[0])
        return t.clone()

    tile, stride, batch, width = 16, 4, 8, 120
    peaks = []
    for height in (40, 400):
        for v in seen.values():
            v.clear()
        image = torch.rand(3, height, width)
        assert torch.allclose(restore_tiled(model, image, tile, stride, batch), image, atol=1e-6)
        assert max(seen["model"]) <= batch
        assert max(seen["unfold"]) <= batch * 3 * tile * tile
        assert max(seen["fold"]) <= 3 * tile * (width + tile)  # one band at most
        peaks.append({k: max(v) for k, v in seen.items()})
    assert peaks[0] == peaks[1]


def test_models_without_a_fixed_size_run_on_tiles_beyond_the_pixel_budget(
    tmp_path, rgb_identity, monkeypatch
):
    shapes = []
    forward = helpers.IdentityModel.forward

    def recording(self, x):
        shapes.append(tuple(x.shape))
        return forward(self, x)

    monkeypatch.setattr(helpers.IdentityModel, "forward", recording)
    img = tmp_path / "big.png"
    rgb = _rgb(30, 41)
    Image.fromarray(rgb).save(img)
    out = tmp_path / "out"
    overrides = ("whole_image_max_pixels=600", "tile_size=16", "tile_overlap=4")
    (dst,) = _restore(tmp_path, rgb_identity, img, f"output={out}", *overrides)
    assert np.array_equal(_pixels(dst), rgb)
    assert shapes and all(s[0] * s[2] * s[3] <= 600 and s[2:] == (16, 16) for s in shapes)
    shapes.clear()
    _restore(tmp_path, rgb_identity, img, f"output={tmp_path / 'o2'}")  # default budget
    assert shapes == [(1, 3, 30, 41)]
    from lightrestore.cli.restore import Plan

    plan = Plan(None, 16, 64, 1, 3, max_pixels=1000, tile_size=16, overlap=4)
    assert plan.tiling(20, 50) is None  # 1000 pixels: one call
    assert plan.tiling(20, 51) == (16, 12, 3)  # 3 tiles of 256 pixels per call
