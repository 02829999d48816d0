"""DL-Net's test-settings tables in the sweep summary (method x test setting, cells
ℓ1 / ℓ2 / PSNR) and experiments/dlnet_tables.sh (its commands, under DRY_RUN and with a
stand-in Python)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

from lightrestore.reporting.report import find_runs, main, summary_markdown

SCRIPT = REPO / "experiments" / "dlnet_tables.sh"


def _row(l1: float, l2: float, psnr: float, missing: tuple[float, float, float] | None) -> dict:
    """A results row: whole-image l1, l2, psnr (+ the missing-region ones when given)."""
    row = {"psnr": psnr, "ssim": 0.5, "l1": l1, "l2": l2, "count": 4, "range": ""}
    if missing is not None:
        row.update(missing_l1=missing[0], missing_l2=missing[1], missing_psnr=missing[2])
    return row


def _run(root: Path, name: str, overrides: list[str], levels: dict[int, dict],
         variants: dict[str, tuple[dict, dict[int, dict]]], extra_level: int | None,
         **fields) -> Path:  # fmt: skip
    """A fabricated run folder: its default test set's ``levels``, and ``variants``
    ``{name: (definition, {level: row})}`` in the order of ``data.test_variants``."""
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text("a: 1\n")
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    doc = {
        "levels": {str(lv): {**row, "extra": lv == extra_level} for lv, row in levels.items()},
        "extra_level": extra_level,
        "data": {"test_variants": {v: definition for v, (definition, _) in variants.items()}},
        "variants": {v: {"levels": {str(lv): row for lv, row in rows.items()}}
                     for v, (_, rows) in variants.items()},  # fmt: skip
        **fields,
    }
    (d / "results.json").write_text(json.dumps(doc))
    return d


def _table(md: str) -> list[list[str]]:
    """The cells of the test-settings table (header first)."""
    block = md.split("Test settings:")[1].split("\n\n")
    lines = next(b for b in block if b.startswith("| ")).splitlines()
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if not ln.startswith("|---")]


# inpainting, levels 1..2 + the extra level 3; two settings besides the plain `centered`
# variant, defined in the order s=20 then s=10 (not sorted); each scored at level 2
CENTERED = ({"centered": True}, {lv: _row(0.9, 0.9, 1.0, (0.9, 0.9, 1.0)) for lv in (1, 2, 3)})


def _inpaint_sweep(root: Path) -> None:
    for name, exp, m1, m2, s20, s10 in [
        ("0", "dlnet_inpaint_joint", (0.02, 0.002, 30.0), (0.04, 0.004, 26.0),
         (0.0123, 0.0012, 31.25), (0.0456, 0.0045, 24.5)),
        ("1", "dlnet_inpaint", (0.01, 0.001, 32.0), (0.03, 0.003, 29.0),
         (0.0111, 0.0011, 33.33), (0.0222, 0.0022, 28.75)),
    ]:  # fmt: skip
        levels = {1: _row(0.5, 0.5, 10.0, m1), 2: _row(0.5, 0.5, 10.0, m2),
                  3: _row(0.5, 0.5, 10.0, (0.7, 0.6, 5.0))}  # fmt: skip
        variants = {
            "s=20": ({"severity": 20, "max_shift": 10, "levels": [2]}, {2: _row(0.5, 0.5, 10.0, s20)}),
            "centered": CENTERED,
            "s=10": ({"severity": 10, "max_shift": 10, "levels": [2]}, {2: _row(0.5, 0.5, 10.0, s10)}),
        }
        _run(root, name, [f"experiment={exp}"], levels, variants, 3, task="inpaint", protocol="p")


def test_settings_table_cells_are_the_rows_missing_region_and_the_mean_without_extra(tmp_path):
    _inpaint_sweep(tmp_path)
    md = summary_markdown(find_runs([tmp_path]))
    assert "## Test settings: ℓ1 / ℓ2 / PSNR (dB)" in md
    assert "over the missing pixels only (DL-Net's protocol)" in md
    assert "the extra level 3 excluded" in md
    assert _table(md) == [
        ["run", "s=20", "s=10", "levels 1-2"],  # the definition's order; not `centered`
        # levels 1-2: (0.02 + 0.04) / 2, (0.002 + 0.004) / 2, (30 + 26) / 2; level 3 left out
        ["dlnet_inpaint_joint", "0.0123 / 0.0012 / 31.25", "0.0456 / 0.0045 / 24.50",
         "0.0300 / 0.0030 / 28.00"],
        ["dlnet_inpaint", "0.0111 / 0.0011 / 33.33", "0.0222 / 0.0022 / 28.75",
         "0.0200 / 0.0020 / 30.50"],
    ]  # fmt: skip
    assert main([str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "summary_settings.csv").open()))
    assert [(r["run"], r["setting"], r["severity"], r["level"]) for r in rows] == [
        ("dlnet_inpaint_joint", "s=20", "20", "2"), ("dlnet_inpaint_joint", "s=10", "10", "2"),
        ("dlnet_inpaint_joint", "levels 1-2", "", "1-2"),
        ("dlnet_inpaint", "s=20", "20", "2"), ("dlnet_inpaint", "s=10", "10", "2"),
        ("dlnet_inpaint", "levels 1-2", "", "1-2"),
    ]  # fmt: skip
    assert {(r["task"], r["region"], r["n"]) for r in rows} == {("inpaint", "missing", "1")}
    first = rows[0]
    assert [float(first[k]) for k in ("l1", "l2", "psnr")] == [0.0123, 0.0012, 31.25]
    mean = rows[2]
    assert [float(mean[k]) for k in ("l1", "l2", "psnr")] == pytest.approx([0.03, 0.003, 28.0])


def test_settings_fall_back_to_the_whole_image_without_missing_region_measures(tmp_path):
    # super-resolution: settings u = 0 (a falsy severity), 1.3, 2.6, each at level 1
    for name, k, u0, u13, u26 in [
        ("0", 1, (0.031, 0.0021, 30.5), (0.032, 0.0022, 29.5), (0.0425, 0.0033, 27.25)),
        ("1", 5, (0.0301, 0.002, 31.0), (0.0302, 0.0021, 30.0), (0.0403, 0.0031, 28.0)),
    ]:  # fmt: skip
        levels = {1: _row(0.01, 0.001, 34.0, None), 2: _row(0.03, 0.004, 30.0, None),
                  3: _row(0.9, 0.9, 1.0, None)}  # fmt: skip
        variants = {f"u={u}": ({"severity": u}, {1: _row(*row, None)})
                    for u, row in ((0, u0), (1.3, u13), (2.6, u26))}  # fmt: skip
        _run(tmp_path, name, ["experiment=dlnet_sr_vdsr_x2", f"method.k={k}"], levels, variants, 3,
             task="sr_x2", protocol="Y")  # fmt: skip
    md = summary_markdown(find_runs([tmp_path]))
    assert "over the whole image" in md and "missing pixels" not in md
    assert _table(md) == [
        ["run", "u=0", "u=1.3", "u=2.6", "levels 1-2"],
        ["method.k=1", "0.0310 / 0.0021 / 30.50", "0.0320 / 0.0022 / 29.50",
         "0.0425 / 0.0033 / 27.25", "0.0200 / 0.0025 / 32.00"],
        ["method.k=5", "0.0301 / 0.0020 / 31.00", "0.0302 / 0.0021 / 30.00",
         "0.0403 / 0.0031 / 28.00", "0.0200 / 0.0025 / 32.00"],
    ]  # fmt: skip
    assert main([str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "summary_settings.csv").open()))
    assert {r["region"] for r in rows} == {"whole"}
    assert [r["severity"] for r in rows[:3]] == ["0", "1.3", "2.6"]


def test_settings_use_the_whole_image_when_some_runs_lack_the_missing_region(tmp_path):
    for name, missing in (("a", (0.01, 0.001, 40.0)), ("b", None)):
        _run(tmp_path, name, [f"experiment={name}"], {1: _row(0.1, 0.01, 20.0, missing)},
             {"r=15%": ({"severity": 0.15}, {1: _row(0.2, 0.04, 14.0, missing)})}, None)  # fmt: skip
    md = summary_markdown(find_runs([tmp_path]))
    assert "over the whole image (some runs lack the missing-region measures" in md
    assert _table(md)[1:] == [["a", "0.2000 / 0.0400 / 14.00", "0.1000 / 0.0100 / 20.00"],
                              ["b", "0.2000 / 0.0400 / 14.00", "0.1000 / 0.0100 / 20.00"]]  # fmt: skip


def test_settings_are_the_mean_over_seeds(tmp_path):
    # per seed: s=10 at level 2 and the missing-region rows of levels 1, 2 (+ extra 3)
    values = {
        ("joint", 1): ((0.01, 0.001, 30.0), (30.0, 28.0)),
        ("joint", 2): ((0.03, 0.003, 32.0), (32.0, 30.0)),
        ("dlnet", 1): ((0.02, 0.004, 35.0), (33.0, 31.0)),
        ("dlnet", 2): ((0.04, 0.002, 36.0), (34.0, 33.0)),
    }
    for i, ((method, seed), (s10, (p1, p2))) in enumerate(values.items()):
        levels = {1: _row(0.5, 0.5, 10.0, (0.01 * seed, 0.001, p1)),
                  2: _row(0.5, 0.5, 10.0, (0.03 * seed, 0.003, p2)),
                  3: _row(0.5, 0.5, 10.0, (0.9, 0.9, 1.0))}  # fmt: skip
        _run(tmp_path, str(i), [f"experiment=dlnet_inpaint_{method}", f"seed={seed}"], levels,
             {"s=10": ({"severity": 10}, {2: _row(0.5, 0.5, 10.0, s10)})}, 3, task="inpaint",
             seed=seed, test_set={"checksum": f"c{seed}"})  # fmt: skip
    md = summary_markdown(find_runs([tmp_path]))
    assert "Rows are policies: the mean over 2 seeds." in md
    # joint s=10: (0.01 + 0.03) / 2, (0.001 + 0.003) / 2, (30 + 32) / 2
    # joint levels 1-2: seed 1 (0.01 + 0.03) / 2 = 0.02, seed 2 (0.02 + 0.06) / 2 = 0.04
    #   -> 0.03; l2 0.002; PSNR seed 1 29, seed 2 31 -> 30
    # dlnet s=10: 0.03, 0.003, 35.5; levels 1-2: 0.03, 0.002, PSNR (32 + 33.5) / 2 = 32.75
    assert _table(md) == [
        ["policy", "s=10", "levels 1-2", "n"],
        ["dlnet_inpaint_joint", "0.0200 / 0.0020 / 31.00", "0.0300 / 0.0020 / 30.00", "2"],
        ["dlnet_inpaint_dlnet", "0.0300 / 0.0030 / 35.50", "0.0300 / 0.0020 / 32.75", "2"],
    ]
    assert main([str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "summary_settings.csv").open()))
    assert [(r["run"], r["setting"], r["n"]) for r in rows] == [
        ("dlnet_inpaint_joint", "s=10", "2"), ("dlnet_inpaint_joint", "levels 1-2", "2"),
        ("dlnet_inpaint_dlnet", "s=10", "2"), ("dlnet_inpaint_dlnet", "levels 1-2", "2"),
    ]  # fmt: skip
    assert float(rows[3]["psnr"]) == pytest.approx(32.75)


def test_no_settings_block_without_settings(tmp_path):
    levels = {1: _row(0.1, 0.01, 30.0, (0.2, 0.02, 25.0)), 2: _row(0.2, 0.02, 20.0, (0.3, 0.03, 15.0))}  # fmt: skip
    for name in ("a", "b"):
        _run(tmp_path, name, [f"experiment={name}"], levels, {"centered": CENTERED}, 2)
    md = summary_markdown(find_runs([tmp_path]))
    assert "Test settings" not in md and "test variant: centered" in md
    assert main([str(tmp_path)]) == 0
    assert not (tmp_path / "summary_settings.csv").exists()


def test_labels_leave_out_the_task_name_and_init_from_when_runs_stay_apart(tmp_path):
    common = ["trainer.max_epochs=2"]
    _run(tmp_path / "ref", "0", ["experiment=dlnet_inpaint_default",
         "task_name=dlnet_tables_inpaint_reference", *common], {1: _row(0.1, 0.01, 30.0, None)}, {}, None)  # fmt: skip
    for i, exp in enumerate(("dlnet_inpaint_joint", "dlnet_inpaint")):
        _run(tmp_path / "sweep", str(i), [f"experiment={exp}", "init_from=/r/checkpoints/last.ckpt",
             "task_name=dlnet_tables_inpaint", *common], {1: _row(0.1, 0.01, 30.0, None)}, {}, None)  # fmt: skip
    labels = [r.label for r in find_runs([tmp_path / "ref", tmp_path / "sweep"])]
    assert labels == ["dlnet_inpaint_default", "dlnet_inpaint_joint", "dlnet_inpaint"]
    # the task name is all that tells these two apart: it stays
    other = tmp_path / "other"
    for name in ("a", "b"):
        _run(other, name, ["experiment=x", f"task_name={name}"], {1: _row(0.1, 0.01, 30.0, None)}, {}, None)  # fmt: skip
    assert [r.label for r in find_runs([other])] == ["task_name=a", "task_name=b"]


# ---------------------------------------------------------------- the script


def _script(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("DRY_RUN", "REFERENCE", "EPOCHS")}
    full.update(PYTHON=env.pop("PYTHON", sys.executable), **env)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=60)  # fmt: skip


def _commands(out: subprocess.CompletedProcess) -> list[str]:
    assert out.returncode == 0, out.stderr
    return [ln[2:] for ln in out.stdout.splitlines() if ln.startswith("+ ")]


def _finished_run(run_dir: Path) -> Path:
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run_dir / "results.json").write_text("{}")
    return run_dir


def test_script_dry_run_trains_the_reference_then_fine_tunes_from_it(tmp_path):
    logs = tmp_path / "L"
    out = _script("inpaint", "debug=smoke", f"paths.log_dir={logs}", cwd=tmp_path, DRY_RUN="1")
    train, sweep, report = _commands(out)
    py = f"{sys.executable} -m"
    ref = f"{logs}/dlnet_tables_inpaint_reference/runs/NEW_RUN"
    multirun = f"{logs}/dlnet_tables_inpaint/multiruns/NEWEST"
    assert train == (f"{py} lightrestore experiment=dlnet_inpaint_default "
                     "task_name=dlnet_tables_inpaint_reference trainer.max_epochs=2 debug=smoke "
                     f"paths.log_dir={logs}")  # fmt: skip
    assert sweep == (f"{py} lightrestore -m experiment=dlnet_inpaint_joint,dlnet_inpaint,"
                     f"dlnet_inpaint_naive,dlnet_inpaint_multitask init_from={ref}/checkpoints/last.ckpt "
                     f"task_name=dlnet_tables_inpaint trainer.max_epochs=2 debug=smoke paths.log_dir={logs}")  # fmt: skip
    assert report == f"{py} lightrestore.report {ref} {multirun} --out {multirun} --title 'DL-Net inpaint'"
    assert out.stdout.splitlines()[-1] == f"summary: {multirun}/summary.md"
    # without paths.log_dir: ./logs (the working directory's)
    default = _commands(_script("interp", cwd=tmp_path, DRY_RUN="1", EPOCHS="5"))
    assert "init_from=./logs/dlnet_tables_interp_reference/runs/NEW_RUN/checkpoints/last.ckpt" in default[1]
    assert all("trainer.max_epochs=5" in c for c in default[:2])


def test_script_dry_run_skips_the_reference_when_given_or_finished(tmp_path):
    given = _finished_run(tmp_path / "my ref")  # a space: quoted for Hydra
    ckpt = given / "checkpoints" / "last.ckpt"
    sweep, report = _commands(_script("interp", f"paths.log_dir={tmp_path}/L", cwd=tmp_path,
                                      DRY_RUN="1", REFERENCE=str(ckpt)))  # fmt: skip
    assert "experiment=dlnet_interp_joint,dlnet_interp,dlnet_interp_naive,dlnet_interp_multitask" in sweep
    assert f"'init_from='\\''{ckpt}'\\''' task_name=dlnet_tables_interp" in sweep
    assert report.startswith(f"{sys.executable} -m lightrestore.report '{given}' {tmp_path}/L/")
    # a finished reference run under the log folder: the newest is used, not retrained
    runs = tmp_path / "L" / "dlnet_tables_inpaint_reference" / "runs"
    _finished_run(runs / "2024-01-01_00-00-00_1")
    newest = _finished_run(runs / "2024-01-02_00-00-00_2")
    (runs / "2024-01-03_00-00-00_3").mkdir()  # unfinished: no results, no checkpoint
    cmds = _commands(_script("inpaint", f"paths.log_dir={tmp_path}/L", cwd=tmp_path, DRY_RUN="1"))
    assert len(cmds) == 2 and f"init_from={newest}/checkpoints/last.ckpt " in cmds[0]
    assert f"lightrestore.report {newest} " in cmds[1]
    missing = _script("inpaint", cwd=tmp_path, DRY_RUN="1", REFERENCE=str(tmp_path / "none.ckpt"))
    assert missing.returncode == 2 and "REFERENCE" in missing.stderr


def test_script_dry_run_sr_sweeps_scales_and_k(tmp_path):
    sweep, report = _commands(_script("sr_drrn", "paths.root_dir=/data/r", cwd=tmp_path, DRY_RUN="1"))
    assert sweep.endswith(" lightrestore -m experiment=dlnet_sr_drrn_x2,dlnet_sr_drrn_x3,dlnet_sr_drrn_x4 "
                          "method.k=1,5 task_name=dlnet_tables_sr_drrn trainer.max_epochs=2 paths.root_dir=/data/r")  # fmt: skip
    multirun = "/data/r/logs/dlnet_tables_sr_drrn/multiruns/NEWEST"
    assert report.endswith(f" lightrestore.report {multirun} --out {multirun} --title 'DL-Net sr_drrn'")
    bad = _script("sr_foo", cwd=tmp_path, DRY_RUN="1")
    assert bad.returncode == 2 and "unknown study" in bad.stderr


FAKE_PYTHON = """#!/usr/bin/env bash
# stands in for Python: records its arguments, makes the folders Hydra would
echo "$*" >> "$CALLS"
[ "$2" = lightrestore ] || exit 0
for a in "$@"; do
    case "$a" in task_name=*) tn=${a#task_name=} ;; paths.log_dir=*) ld=${a#paths.log_dir=} ;; esac
done
if [ "$3" = -m ]; then
    mkdir -p "$ld/$tn/multiruns/2030-01-01_00-00-00_7/0"
else
    d="$ld/$tn/runs/2030-01-01_00-00-00_7"
    mkdir -p "$d/checkpoints" && touch "$d/checkpoints/last.ckpt" && echo '{}' > "$d/results.json"
fi
"""


def test_script_finds_the_new_reference_and_the_newest_multirun(tmp_path):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    logs, calls = tmp_path / "L", tmp_path / "calls"
    (logs / "dlnet_tables_inpaint" / "multiruns" / "2020-01-01_00-00-00_1").mkdir(parents=True)
    out = _script("inpaint", f"paths.log_dir={logs}", cwd=tmp_path, PYTHON=str(fake), CALLS=str(calls))
    assert out.returncode == 0, out.stderr
    ref = logs / "dlnet_tables_inpaint_reference" / "runs" / "2030-01-01_00-00-00_7"
    sweep = logs / "dlnet_tables_inpaint" / "multiruns" / "2030-01-01_00-00-00_7"
    train, multirun, report = calls.read_text().splitlines()
    assert "experiment=dlnet_inpaint_default" in train
    assert f"init_from={ref}/checkpoints/last.ckpt " in multirun
    assert report == f"-m lightrestore.report {ref} {sweep} --out {sweep} --title DL-Net inpaint"
    assert out.stdout.splitlines()[-1] == f"summary: {sweep}/summary.md"


def test_boolean_overrides_are_spelt_alike(tmp_path):
    """A run given x=false and a multirun job whose overrides.yaml says x=False share it."""
    from lightrestore.reporting.report import _canonical

    assert _canonical("trainer.enable_progress_bar=False") == "trainer.enable_progress_bar=false"
    assert _canonical("init_from=None") == "init_from=null"
    assert _canonical("task_name=Falsehood") == "task_name=Falsehood"
    assert _canonical("~method.gamma") == "~method.gamma"
