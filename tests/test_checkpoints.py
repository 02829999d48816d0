"""Checkpoints that cannot be silently wrong: integrity digests, NaN weights, resume
checks (model/method/task), the method's name, strict results JSON, file permissions."""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from helpers import compose_cfg, run_cli
from omegaconf import open_dict

from lightrestore.cli.evaluate import run_evaluate
from lightrestore.cli.train import resolve_ckpt_path, run
from lightrestore.storage.atomic import atomic_write_json, atomic_write_text
from lightrestore.storage.checkpoint_io import AtomicCheckpointIO
from lightrestore.storage.checkpoints import (
    CheckpointError,
    check_method,
    config_differences,
    load_checkpoint,
)
from lightrestore.storage.integrity import damaged_sections, integrity_record, read_record

EXP = "experiment=rigid_joint_inpaint"
FAST = ("trainer.max_epochs=1", "test=false")


def _train(root: Path, name: str, *overrides: str) -> Path:
    """A smoke run in ``root/logs/rigid_joint_inpaint/runs/<name>`` (where
    ``ckpt_path=last`` looks); returns its ``last.ckpt``."""
    cfg = compose_cfg(root, EXP, *FAST, *overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = str(root / "logs" / "rigid_joint_inpaint" / "runs" / name)
    out = run(cfg)
    return Path(out["trainer"].checkpoint_callback.last_model_path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """An older width-8 run and a newer width-16 run of the same task_name."""
    root = tmp_path_factory.mktemp("runs")
    narrow = _train(root, "a_narrow")
    wide = _train(root, "b_wide", "model.width=16")
    os.utime(narrow, (1e9, 1e9))  # make the order certain: the wide run is the newest
    return {"root": root, "narrow": narrow, "wide": wide}


def _data_offset(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """Where a stored (uncompressed) zip member's bytes start in the file."""
    z.fp.seek(info.header_offset)
    header = z.fp.read(30)
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    return info.header_offset + 30 + name_len + extra_len


def _overwrite_largest_tensor(src: Path, dst: Path, n: int = 2048) -> None:
    """Copy ``src`` to ``dst`` with ``n`` random bytes written over the middle of its
    largest tensor's data (the first of the largest storages: a state_dict weight)."""
    shutil.copy(src, dst)
    with zipfile.ZipFile(dst) as z:
        storages = [i for i in z.infolist() if "/data/" in i.filename]
        biggest = max(storages, key=lambda i: i.file_size)  # first of the largest
        assert biggest.file_size >= 2 * n and biggest.compress_type == zipfile.ZIP_STORED
        start = _data_offset(z, biggest) + biggest.file_size // 2 - n // 2
    with open(dst, "r+b") as f:
        f.seek(start)
        f.write(torch.randint(0, 256, (n,), generator=torch.Generator().manual_seed(0),
                              dtype=torch.uint8).numpy().tobytes())  # fmt: skip
    assert dst.stat().st_size == src.stat().st_size


# ---------------------------------------------------------------- integrity
def test_digest_covers_every_value_and_kind():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    ckpt = {
        "state_dict": {"w": base.t(), "half": torch.ones(3, dtype=torch.bfloat16),
                       "scalar": torch.tensor(2.5), "mask": torch.tensor([True, False])},
        "nested": {"list": [1, 2.0, "x", None, True], "tuple": (0, (1,)), 7: {"deep": [3]}},
    }  # fmt: skip
    rec = integrity_record(ckpt)
    assert damaged_sections(ckpt, rec) == []
    # a non-contiguous view digests as its values
    same = dict(ckpt, state_dict=dict(ckpt["state_dict"], w=base.t().contiguous()))
    assert integrity_record(same)["digest"] == rec["digest"]
    changes = {
        "view value": dict(ckpt, state_dict=dict(ckpt["state_dict"], w=base.t() + 1)),
        "bf16": dict(ckpt, state_dict=dict(ckpt["state_dict"], half=torch.zeros(3).bfloat16())),
        "0-dim": dict(ckpt, state_dict=dict(ckpt["state_dict"], scalar=torch.tensor(2.0))),
        "dtype": dict(ckpt, state_dict=dict(ckpt["state_dict"], scalar=torch.tensor(2.5).double())),
        "shape": dict(ckpt, state_dict=dict(ckpt["state_dict"], w=base.reshape(4, 3))),
        "bool": dict(ckpt, nested=dict(ckpt["nested"], list=[1, 2.0, "x", None, False])),
        "int/float": dict(ckpt, nested=dict(ckpt["nested"], list=[1, 2, "x", None, True])),
        "list/tuple": dict(ckpt, nested=dict(ckpt["nested"], tuple=[0, (1,)])),
        "None/str": dict(ckpt, nested=dict(ckpt["nested"], list=[1, 2.0, "x", "None", True])),
        "deep": dict(ckpt, nested={**ckpt["nested"], 7: {"deep": [4]}}),
    }  # fmt: skip
    for what, changed in changes.items():
        assert damaged_sections(changed, rec) != [], what


def test_save_keeps_the_callers_dict_and_round_trips(tmp_path):
    ckpt = {"state_dict": {"w": torch.randn(4, 4).t(), "b": torch.ones((), dtype=torch.bfloat16)}}
    keys = list(ckpt)
    AtomicCheckpointIO().save_checkpoint(ckpt, tmp_path / "x.ckpt")
    assert list(ckpt) == keys  # not mutated
    assert read_record(tmp_path / "x.ckpt")["algorithm"] in ("sha256", "blake2b")
    loaded = AtomicCheckpointIO().load_checkpoint(tmp_path / "x.ckpt", weights_only=True)
    assert list(loaded) == keys and torch.equal(loaded["state_dict"]["w"], ckpt["state_dict"]["w"])


def test_overwritten_bytes_are_refused_everywhere(tmp_path, runs):
    bad = tmp_path / "bad.ckpt"
    _overwrite_largest_tensor(runs["narrow"], bad)
    # torch alone does not notice: the file loads, with different weights
    loaded = torch.load(bad, map_location="cpu", weights_only=True)
    good = torch.load(runs["narrow"], map_location="cpu", weights_only=True)
    assert any(not torch.equal(loaded["state_dict"][k], v) for k, v in good["state_dict"].items())
    damaged = r"is damaged: .*digest mismatch in state_dict.*use another checkpoint"
    with pytest.raises(CheckpointError, match=damaged):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match=damaged):
        run_evaluate(
            compose_cfg(tmp_path / "e", f"ckpt={bad}", config_name="evaluate", smoke=False)
        )
    with pytest.raises(CheckpointError, match=damaged):  # Lightning's resume path
        run(compose_cfg(tmp_path / "r", EXP, *FAST, f"ckpt_path={bad}"))
    out = run_cli(f"ckpt={bad}", cwd=tmp_path, module="lightrestore.evaluate")
    assert out.returncode == 2 and "is damaged" in out.stderr
    assert not list((tmp_path / "logs").rglob("results.json"))  # no NaN tables


def test_a_damaged_integrity_record_is_refused(tmp_path, runs):
    bad = tmp_path / "bad_record.ckpt"
    shutil.copy(runs["narrow"], bad)
    with zipfile.ZipFile(bad) as z:
        member = next(i for i in z.infolist() if i.filename.endswith("integrity.json"))
        start = _data_offset(z, member) + member.file_size // 2
    with open(bad, "r+b") as f:
        f.seek(start)
        f.write(b"0123456789")
    with pytest.raises(CheckpointError, match=r"is damaged: .*digest mismatch in integrity record"):
        load_checkpoint(bad)


def test_untouched_loads_and_a_hand_saved_copy_warns(tmp_path, runs, caplog):
    with caplog.at_level(logging.WARNING, logger="lightrestore"):
        ckpt = load_checkpoint(runs["narrow"])
    assert ckpt["lightrestore"]["method"] == "restoration" and not caplog.records
    copy = tmp_path / "copy.ckpt"
    torch.save(torch.load(runs["narrow"], map_location="cpu", weights_only=True), copy)
    with caplog.at_level(logging.WARNING, logger="lightrestore"):
        load_checkpoint(copy)
    assert [r.getMessage() for r in caplog.records] == [
        f"checkpoint {copy} has no integrity digest (saved before digests existed, or re-saved "
        "by hand): it cannot be checked for damage"
    ]


def test_nan_weights_are_refused(tmp_path, runs):
    ckpt = torch.load(runs["narrow"], map_location="cpu", weights_only=True)
    names = [
        k for k, v in ckpt["state_dict"].items() if torch.is_tensor(v) and v.is_floating_point()
    ]
    ckpt["state_dict"][names[2]].view(-1)[0] = float("nan")
    ckpt["state_dict"][names[3]].view(-1)[0] = float("inf")
    f = tmp_path / "nan.ckpt"
    AtomicCheckpointIO().save_checkpoint(ckpt, f)  # a valid digest: only the NaN is wrong
    msg = rf"holds non-finite model weights \(NaN in state_dict '{names[2]}'\)"
    with pytest.raises(CheckpointError, match=msg):
        load_checkpoint(f)
    with pytest.raises(CheckpointError, match=msg):
        AtomicCheckpointIO().load_checkpoint(f, weights_only=True)


# ---------------------------------------------------------------- resume checks
def test_last_skips_a_newer_wider_run_and_resumes_the_older(tmp_path, runs, caplog):
    cfg = compose_cfg(runs["root"], EXP, "trainer.max_epochs=2", "test=false", "ckpt_path=last")
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "c")
    with caplog.at_level(logging.WARNING, logger="lightrestore"):
        out = run(cfg)
    skips = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert skips == [
        f"ckpt_path=last: skipping {runs['wide']}, was trained with model.width=16 but this run "
        "has model.width=8"
    ]
    assert out["trainer"].global_step == 4  # 2 steps restored from the narrow run, 2 trained


def test_wider_checkpoint_is_refused_by_file_and_by_last(tmp_path, runs):
    fix = r"model\.width=16 but this run has model\.width=8: resume with the same model"
    with pytest.raises(CheckpointError, match=rf"checkpoint .*b_wide.* was trained with {fix}"):
        run(compose_cfg(tmp_path / "f", EXP, *FAST, f"ckpt_path={runs['wide']}"))
    only_wide = tmp_path / "logs" / "rigid_joint_inpaint" / "runs" / "w" / "checkpoints"
    only_wide.mkdir(parents=True)
    shutil.copy(runs["wide"], only_wide / "last.ckpt")
    for how in ("ckpt_path=last", "resume=true"):
        with pytest.raises(CheckpointError, match=rf"ckpt_path=last: no earlier run .*{fix}"):
            resolve_ckpt_path(compose_cfg(tmp_path, EXP, how))


def test_inpaint_checkpoint_resumed_as_deblur_is_refused(tmp_path, runs):
    cfg = compose_cfg(tmp_path, EXP, "task=deblur", *FAST, f"ckpt_path={runs['narrow']}")
    with pytest.raises(CheckpointError) as err:
        resolve_ckpt_path(cfg)
    msg = str(err.value)
    assert "task.name=inpaint but this run has task.name=deblur" in msg
    assert (
        "task.degradation._target_=lightrestore.degradations.Inpaint but this run has "
        "task.degradation._target_=lightrestore.degradations.GaussianBlur" in msg
    )
    assert "model." not in msg and "method." not in msg


def test_config_differences_plain():
    model, method = {"_target_": "M", "width": 8}, {"_target_": "R"}
    task = {"name": "inpaint", "channels": 3, "degradation": {"bins": [[1, 2]]}}
    saved = {"model": model, "method": method, "task": task}
    now = {
        "model": dict(model),
        "method": dict(method, name="sr"),
        "task": dict(task, degradation={"bins": [[1, 3]]}),
    }
    # a checkpoint from before methods had names is not checked on the name
    assert config_differences(saved, now) == [
        "task.degradation.bins=[[1, 2]] but this run has task.degradation.bins=[[1, 3]]"
    ]
    saved["method"]["name"] = "restoration"
    assert config_differences(saved, now)[0] == (
        "method.name=restoration but this run has method.name=sr"
    )


# ---------------------------------------------------------------- the method's name
def test_sr_checkpoints_are_restoration_and_older_sr_ones_still_count(tmp_path):
    """SR runs are the restoration method with the SR optimiser preset (method/sr was an
    optimiser preset, not a method); checkpoints of older SR runs, recorded as 'sr',
    still pass expect_method=restoration, and expect_method=sr still accepts them."""
    out = run(compose_cfg(tmp_path, "experiment=sr_srcnn_x2", *FAST))
    path = out["trainer"].checkpoint_callback.last_model_path
    ckpt = load_checkpoint(path)
    assert ckpt["lightrestore"]["method"] == "restoration"
    assert ckpt["lightrestore"]["config"]["method"]["optimizer"]["lr"] == 1e-4  # adam_sr
    check_method(ckpt, "restoration", path)
    with pytest.raises(CheckpointError, match="comes from method 'restoration'"):
        check_method(ckpt, "dlnet", path)
    old = dict(ckpt, lightrestore=dict(ckpt["lightrestore"], method="sr"))
    check_method(old, "restoration", path)
    check_method(old, "sr", path)


# ---------------------------------------------------------------- files
def test_results_json_is_strict(tmp_path):
    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    doc = {"psnr": float("nan"), "levels": {"1": [float("inf"), 2.5, -float("inf")]}, "n": 3}
    atomic_write_json(tmp_path / "results.json", doc)
    text = (tmp_path / "results.json").read_text()
    assert json.loads(text, parse_constant=refuse) == {
        "psnr": None,
        "levels": {"1": [None, 2.5, None]},
        "n": 3,
    }


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        AtomicCheckpointIO().save_checkpoint({"w": torch.ones(1)}, tmp_path / "b.ckpt")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.ckpt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name


def test_checkpoints_of_the_earlier_layout_evaluate_restore_and_resume(tmp_path):
    """Before methods named their parts, a checkpoint's config had the network and loss at
    the top level only (the CLI passed them in) and SR runs were method 'sr': such
    checkpoints still evaluate and resume."""
    out = run(compose_cfg(tmp_path / "t", "experiment=sr_srcnn_x2", "trainer.max_epochs=1"))
    ckpt = torch.load(out["trainer"].checkpoint_callback.last_model_path, weights_only=True)
    cfg = ckpt["lightrestore"]["config"]
    method = {k: v for k, v in cfg["method"].items() if k not in ("model", "loss", "param_groups", "frozen")}
    old = dict(ckpt, lightrestore=dict(ckpt["lightrestore"], method="sr",
                                      config=dict(cfg, method=dict(method, name="sr"))))  # fmt: skip
    path = tmp_path / "old.ckpt"
    torch.save(old, path)  # re-saved by hand: loads with a warning (no integrity record)
    ev = run_evaluate(compose_cfg(tmp_path / "e", f"ckpt={path}", config_name="evaluate", smoke=False))
    assert ev["results"] == out["results"]
    assert resolve_ckpt_path(compose_cfg(tmp_path / "r", "experiment=sr_srcnn_x2", *FAST,
                                         f"ckpt_path={path}")) == str(path)  # fmt: skip
