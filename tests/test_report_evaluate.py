"""Sweep summaries (report) and checkpoint evaluation (evaluate)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from helpers import compose_cfg, run_cli

from lightrestore.cli.evaluate import run_evaluate
from lightrestore.cli.train import run
from lightrestore.errors import ConfigError
from lightrestore.reporting.report import find_runs, main, summary_markdown
from lightrestore.storage.checkpoints import CheckpointError


def _fake_run(root: Path, name: str, overrides: list[str], psnr: list[float] | None) -> Path:
    d = root / name
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "config.yaml").write_text("a: 1\n")
    (d / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if psnr is not None:
        levels = {str(i + 1): {"psnr": p, "ssim": 0.5, "l1": 0.1, "l2": 0.01, "count": 4,
                               "extra": i + 1 == len(psnr), "range": ""} for i, p in enumerate(psnr)}  # fmt: skip
        (d / "results.json").write_text(json.dumps({"levels": levels, "extra_level": len(psnr)}))
    return d


def test_summary_labels_means_spread_and_incomplete_runs(tmp_path):
    _fake_run(tmp_path, "0", ["experiment=x", "curriculum=ondemand"], [30, 28, 26, 24, 22, 20])
    _fake_run(tmp_path, "1", ["experiment=x", "curriculum=fixated_hard"], [20, 21, 22, 23, 30, 25])
    _fake_run(tmp_path, "2", ["experiment=x", "curriculum=staged"], None)  # crashed
    runs = find_runs([tmp_path])
    assert [r.label for r in runs] == ["ondemand", "fixated_hard", "staged"]
    md = summary_markdown(runs)
    # mean of levels 1..5 and max-min spread; level 6 is the extra level
    assert "| ondemand | 30.00 | 28.00 | 26.00 | 24.00 | 22.00 | 20.00 | 26.00 | 8.00 |" in md
    assert "| fixated_hard | 20.00 | 21.00 | 22.00 | 23.00 | 30.00 | 25.00 | 23.20 | 10.00 |" in md
    assert "Incomplete runs" in md and "staged" in md.split("Incomplete runs")[1]
    assert main([str(tmp_path)]) == 0
    rows = list(csv.DictReader((tmp_path / "summary.csv").open()))
    assert len(rows) == 6 + 6 + 1 and (tmp_path / "psnr_vs_level.png").is_file()
    assert main([str(tmp_path / "missing")]) == 2


@pytest.mark.slow
def test_multirun_writes_an_equal_budget_summary(tmp_path):
    out = run_cli("-m", "experiment=rigid_joint_interp", "debug=smoke", "trainer.max_epochs=1",
                  "curriculum=rigid_joint,fixated_hard,hard_mining", f"paths.log_dir={tmp_path}", cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    sweep = next((tmp_path / "rigid_joint_interp" / "multiruns").iterdir())
    md = (sweep / "summary.md").read_text()
    lines = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| ")}
    for policy in ("rigid_joint", "fixated_hard", "hard_mining"):
        assert lines[policy].rstrip(" |").endswith("| 16")  # images seen: 1 epoch of 16 patches
    assert (sweep / "summary.csv").is_file() and (sweep / "psnr_vs_level.png").is_file()


@pytest.fixture(scope="module")
def trained_ckpt(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("train")
    out = run(compose_cfg(tmp, "experiment=fixated_easy_inpaint", "trainer.max_epochs=1"))
    return Path(out["trainer"].checkpoint_callback.last_model_path), out


def test_evaluate_rebuilds_the_model_and_reuses_the_test_pairs(tmp_path, trained_ckpt):
    ckpt, train_out = trained_ckpt
    out = run_evaluate(compose_cfg(tmp_path, f"ckpt={ckpt}", config_name="evaluate", smoke=False))
    assert set(out["results"]) == {1, 2, 3, 4, 5, 6}
    assert out["datamodule"].test_set.checksum == train_out["datamodule"].test_set.checksum
    for lv, row in out["results"].items():  # the same weights give the same numbers
        assert row["psnr"] == pytest.approx(train_out["results"][lv]["psnr"], abs=1e-5)
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["curriculum"] == "fixated_easy" and "centered" in doc["variants"]
    # another ladder
    other = run_evaluate(
        compose_cfg(
            tmp_path / "b", f"ckpt={ckpt}", "task=deblur", config_name="evaluate", smoke=False
        )
    )
    assert other["datamodule"].degradation.name == "blur"


def test_evaluate_bad_checkpoints(tmp_path, trained_ckpt):
    ckpt, _ = trained_ckpt
    with pytest.raises(CheckpointError, match="does not exist"):
        run_evaluate(
            compose_cfg(
                tmp_path, f"ckpt={tmp_path / 'x.ckpt'}", config_name="evaluate", smoke=False
            )
        )
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, foreign)
    with pytest.raises(CheckpointError, match="not written by lightrestore"):
        run_evaluate(compose_cfg(tmp_path, f"ckpt={foreign}", config_name="evaluate", smoke=False))
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        run_evaluate(compose_cfg(tmp_path, f"ckpt={garbage}", config_name="evaluate", smoke=False))
    with pytest.raises(ConfigError, match="3-channel"):
        run_evaluate(
            compose_cfg(
                tmp_path, f"ckpt={ckpt}", "task=denoise", config_name="evaluate", smoke=False
            )
        )


def test_evaluate_cli_error_is_one_line(tmp_path):
    out = run_cli(f"ckpt={tmp_path / 'none.ckpt'}", cwd=tmp_path, module="lightrestore.evaluate")
    assert out.returncode == 2 and out.stderr.strip().startswith(
        "lightrestore.evaluate: error: checkpoint"
    )


def test_summary_labels_evaluated_checkpoints_by_their_training(tmp_path):
    for i, (exp, cur) in enumerate(
        [("fixated_easy_inpaint", "fixated_easy"), ("ondemand_inpaint", "ondemand")]
    ):
        d = _fake_run(
            tmp_path,
            str(i),
            [f"ckpt=/runs/{exp}/checkpoints/last.ckpt", "task=inpaint"],
            [30, 25, 20],
        )
        doc = json.loads((d / "results.json").read_text())
        doc.update(experiment=exp, curriculum=cur)
        (d / "results.json").write_text(json.dumps(doc))
    assert [r.label for r in find_runs([tmp_path])] == [
        "fixated_easy_inpaint (fixated_easy)",
        "ondemand_inpaint (ondemand)",
    ]


def test_report_on_a_folder_without_runs_is_an_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert "no runs found under" in err and "give a run folder" in err
    assert not (tmp_path / "empty" / "summary.md").exists()


def test_report_never_mixes_tasks_in_one_table(tmp_path):
    for name, task, protocol, psnr in [("a", "inpaint", "all channels", [30, 28, 20]),
                                       ("b", "inpaint", "all channels", [31, 29, 21]),
                                       ("c", "sr_x2", "Y channel", [33, 32])]:  # fmt: skip
        d = _fake_run(tmp_path, name, [f"experiment={name}"], psnr)
        doc = json.loads((d / "results.json").read_text())
        doc.update(task=task, protocol=protocol)
        (d / "results.json").write_text(json.dumps(doc))
    md = summary_markdown(find_runs([tmp_path]))
    inpaint, sr = md.split("## task: inpaint")[1].split("## task: sr_x2")
    assert "Protocol: all channels" in inpaint and "Protocol: Y channel" in sr
    rows = lambda part: [ln.split("|")[1].strip() for ln in part.splitlines() if ln.startswith("| ") and "run" not in ln]  # noqa: E731
    assert rows(inpaint) == ["a", "b"] and rows(sr) == ["c"]
    assert main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("psnr_vs_level*.png")) == [
        "psnr_vs_level_1_inpaint.png", "psnr_vs_level_2_sr_x2.png"]  # fmt: skip
    tasks = {r["run"]: r["task"] for r in csv.DictReader((tmp_path / "summary.csv").open())}
    assert tasks == {"a": "inpaint", "b": "inpaint", "c": "sr_x2"}


def test_report_reads_non_finite_metrics_written_as_null(tmp_path):
    d = _fake_run(tmp_path, "0", ["experiment=x"], [30, 28, 20])
    doc = json.loads((d / "results.json").read_text())
    doc["levels"]["2"]["psnr"] = None  # results.json holds NaN as null (strict JSON)
    (d / "results.json").write_text(json.dumps(doc))
    md = summary_markdown(find_runs([tmp_path]))
    assert "| 0 | 30.00 | nan | 20.00 | nan | nan | 0.5000 | 0.5000 |" in md
    assert main([str(tmp_path)]) == 0
