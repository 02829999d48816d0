"""wandb, sweep-shaped: groups, names and tags of a multirun's runs, the per-level results
Table and headline values, the sweep summary run, and nothing at all without wandb or with
``mode: disabled``. What reached wandb is read back from the offline runs' transaction
logs (``offline-run-*/run-*.wandb``) and media files."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import compose_cfg, run_cli
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from lightrestore.callbacks.wandb_results import COLUMNS, WandbResults, headline, results_table
from lightrestore.reporting.loggers import wandb_group
from lightrestore.reporting.report import MultirunSummary
from lightrestore.reporting.wandb_summary import log_sweep_summary

FAMILIES = {  # experiment: the tags every run of it must carry
    "ondemand_inpaint": ["method:restoration", "task:inpaint", "curriculum:ondemand", "loss:mse",
                         "seed:12345", "model:odl_autoencoder"],
    "sr_vdsr_x2": ["method:restoration", "task:sr_x2", "curriculum:rigid_joint", "loss:mse",
                   "seed:12345", "model:sr_vdsr"],
    "sr_vdsr_x2_pspl": ["method:restoration", "task:sr_x2", "curriculum:rigid_joint",
                        "loss:pspl", "seed:12345", "model:sr_vdsr"],
    "dlnet_inpaint": ["method:dlnet", "task:dlnet_inpaint", "curriculum:rigid_joint", "loss:mse",
                      "seed:12345", "model:odl_autoencoder"],
    "golf_f": ["method:golf", "task:motion_blur", "curriculum:rigid_joint", "loss:perceptual",
               "seed:12345"],  # Golf's networks are its own: no model tag
    "lira_fork": ["method:lira_fork", "task:blended_single", "curriculum:rigid_joint", "loss:l1",
                  "seed:12345", "model:lira_fork"],
}  # fmt: skip


# ------------------------------------------------------------------ reading offline runs
def _records(path: Path):
    """The protobuf records of a wandb transaction log (LevelDB log format: 32 KiB blocks,
    7-byte record headers ``crc32, length, type``, a record split FIRST/MIDDLE/LAST
    across blocks; the file starts with ``:W&B`` + magic + version)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, head = path.read_bytes(), 32768, 7
    assert data[:4] == b":W&B", path
    pos, parts = 7, b""
    while pos + head <= len(data):
        left = block - pos % block
        if left < head:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + head])
        if kind == 0 and n == 0:
            pos += left
            continue
        chunk, pos = data[pos + head : pos + head + n], pos + head + n
        if kind == 2:
            parts = chunk
        elif kind == 3:
            parts += chunk
        elif kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(parts + chunk if kind == 4 else chunk)
            parts = b""
            yield rec


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(folder: Path) -> dict:
    """``{"run": the run record, "config", "summary", "history" (keys), "files"}`` of an
    offline run folder ``.../wandb/offline-run-*``."""
    (log,) = folder.glob("run-*.wandb")
    out = {"run": None, "config": {}, "summary": {}, "history": set(), "artifacts": []}
    for rec in _records(log):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["run"] = rec.run
            out["config"].update({_key(u): json.loads(u.value_json) for u in rec.run.config.update})
        elif kind == "config":
            out["config"].update({_key(u): json.loads(u.value_json) for u in rec.config.update})
        elif kind == "summary":
            out["summary"].update({_key(u): json.loads(u.value_json) for u in rec.summary.update})
        elif kind == "history":
            out["history"] |= {_key(u) for u in rec.history.item}
        elif kind == "artifact":
            out["artifacts"].append(rec.artifact)
    out["files"] = folder / "files"
    return out


def _offline_runs(root: Path) -> list[Path]:
    return sorted(root.glob("wandb/offline-run-*"))


def _table(run: dict, key: str) -> dict:
    """A logged ``wandb.Table`` (its media file: ``{"columns", "data"}``)."""
    ref = run["summary"][f"{key}/path"]
    return json.loads((run["files"] / ref).read_text())


def _level_tables(doc: dict) -> list[dict]:
    """Every per-level table of a results.json, however it nests them."""
    tables = [doc, *(doc.get("variants") or {}).values()]
    tables += [t for by_set in (doc.get("outputs") or {}).values() for t in by_set.values()]
    return [t for t in tables if t.get("levels")]


# ------------------------------------------------------------------ one sweep, end to end
@pytest.mark.slow
def test_a_sweep_logs_grouped_named_tagged_runs_with_results_and_a_summary_run(tmp_path):
    logs = tmp_path / "logs"
    out = run_cli("-m", "experiment=ondemand_inpaint", "debug=smoke", "logger=default",
                  "trainer.max_epochs=1", "curriculum=ondemand,rigid_joint", f"paths.log_dir={logs}",
                  cwd=tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    (sweep,) = logs.glob("ondemand_inpaint/multiruns/*")
    group = f"ondemand_inpaint/{sweep.name}"
    assert group == wandb_group("ondemand_inpaint", sweep)

    names = {}
    for job in ("0", "1"):
        (folder,) = _offline_runs(sweep / job)  # one run per job: no job reuses another's run
        run = read_offline_run(folder)
        r = run["run"]
        assert r.run_group == group and r.job_type == "train"
        curriculum = r.display_name.removeprefix("curriculum=")
        assert r.display_name == f"curriculum={curriculum}"
        names[job] = curriculum
        assert set(r.tags) == set(FAMILIES["ondemand_inpaint"]) - {"curriculum:ondemand"} | {
            f"curriculum:{curriculum}"
        }
        # the resolved config, and the keys the dashboard charts
        cfg = OmegaConf.load(sweep / job / ".hydra" / "config.yaml")
        assert run["config"]["task_name"] == "ondemand_inpaint"
        assert run["config"]["seed"] == cfg.seed
        assert run["config"]["method"]["_target_"] == cfg.method._target_
        assert run["config"]["choices"]["curriculum"] == curriculum
        assert run["config"]["sweep"]["job"] == int(job)
        for key in ("train/loss_step", "val/psnr/level_1", "val/psnr/mean",
                    "alloc/weight/level_1", "test/psnr/level_6", "plots/test_psnr/_type"):  # fmt: skip
            assert key in run["history"], key

        # the Table: one row per (test set, output, level), numbers from results.json
        doc = json.loads((sweep / job / "results.json").read_text())
        table = _table(run, "results/table")
        assert table["columns"][: len(COLUMNS)] == list(COLUMNS)
        assert {"missing_psnr", "missing_l1", "missing_l2"} <= set(table["columns"])
        assert len(table["data"]) == sum(len(t["levels"]) for t in _level_tables(doc))
        rows = [dict(zip(table["columns"], row)) for row in table["data"]]
        assert {(r["test_set"], r["output"]) for r in rows} >= {("default", "restored"),
                ("centered", "restored"), ("default", "input"), ("default", "restored_known")}  # fmt: skip
        for row in rows:
            if (row["test_set"], row["output"]) == ("default", "restored"):
                ref = doc["levels"][str(row["level"])]
                assert row["psnr"] == pytest.approx(ref["psnr"]) and row["count"] == ref["count"]
                assert row["input_psnr"] == pytest.approx(ref["input_psnr"])
                assert row["range"] == ref["range"] and row["extra"] == ref["extra"]
        # headline values in the run summary
        s = run["summary"]
        assert s["results/psnr/mean"] == pytest.approx(doc["mean_train_levels"]["psnr"])
        assert s["results/ssim/mean"] == pytest.approx(doc["mean_train_levels"]["ssim"])
        for lv, row in doc["levels"].items():
            assert s[f"results/psnr/level_{lv}"] == pytest.approx(row["psnr"])
        centered = doc["variants"]["centered"]["mean_train_levels"]["psnr"]
        assert s["results/centered/restored/psnr/mean"] == pytest.approx(centered)
        # plots once (RunPlots sends them; WandbResults does not again)
        images = list((run["files"] / "media" / "images" / "plots").glob("test_psnr_*.png"))
        assert len(images) == 1
    assert sorted(names.values()) == ["ondemand", "rigid_joint"]

    # the sweep summary: one more run of the same group, under <sweep>/wandb/
    (folder,) = _offline_runs(sweep)
    summary = read_offline_run(folder)
    r = summary["run"]
    assert (r.run_group, r.job_type, r.display_name) == (group, "sweep-summary", f"{group} summary")
    lines = (sweep / "summary.csv").read_text().splitlines()
    table = _table(summary, "summary/table")
    assert table["columns"] == lines[0].split(",") and len(table["data"]) == len(lines) - 1
    assert summary["summary"]["runs"] == 2
    for job, name in names.items():
        mean = json.loads((sweep / job / "results.json").read_text())["mean_train_levels"]["psnr"]
        assert summary["summary"][f"mean_psnr/{name}"] == pytest.approx(mean)
    assert list((summary["files"] / "media" / "images" / "summary").glob("psnr_vs_level_*.png"))
    (md,) = (summary["files"] / "media" / "html" / "summary").glob("markdown_*.html")
    assert "PSNR (dB) per level" in md.read_text()
    assert "sweep-summary" in [a.type for a in summary["artifacts"]]


# ------------------------------------------------------------------ tags of every family
@pytest.mark.parametrize("experiment", sorted(FAMILIES))
def test_every_experiment_family_gets_its_tags_group_and_name(tmp_path, experiment):
    cfg = compose_cfg(tmp_path, f"experiment={experiment}", "logger=wandb")
    from lightrestore.build import instantiate

    logger = instantiate(cfg.logger.wandb)  # no run is started until it is used
    init = logger._wandb_init
    assert sorted(init["tags"]) == sorted(FAMILIES[experiment])
    # a single run: its group and name are the task name
    assert init["group"] == init["name"] == cfg.task_name == experiment
    assert init["job_type"] == "train"
    assert init["config"]["choices"]["method"] == cfg.method.name


def test_a_missing_config_group_leaves_its_tag_out(tmp_path):
    cfg = compose_cfg(tmp_path, "experiment=ondemand_inpaint", "logger=wandb", "~curriculum")
    from lightrestore.build import instantiate

    tags = instantiate(cfg.logger.wandb)._wandb_init["tags"]
    assert not [t for t in tags if t.startswith("curriculum")] and "task:inpaint" in tags
    assert not [t for t in tags if t.endswith((":None", ":null", ":"))]


# ------------------------------------------------------------------ the Table's shape
def _doc() -> dict:
    row = {"range": "1-6px", "extra": False, "psnr": 20.0, "ssim": 0.5, "l1": 0.1, "l2": 0.01,
           "count": 4, "input_psnr": 15.0, "lpips": 0.3}  # fmt: skip
    levels = {"1": row, "2": {**row, "psnr": 22.0, "range": "7-12px", "extra": True}}
    plain = {k: v for k, v in row.items() if k not in ("input_psnr", "lpips")}
    return {
        "levels": levels,
        "mean_train_levels": {"psnr": 20.0, "ssim": 0.5, "l1": 0.1, "l2": 0.01},
        "variants": {"centered": {"levels": {"1": plain}, "mean_train_levels": {"psnr": 19.0}}},
        "outputs": {"after_F": {"default": {"levels": {"1": plain, "2": plain},
                                            "mean_train_levels": {"psnr": 18.0}}}},
    }  # fmt: skip


def test_the_results_table_holds_every_numeric_measure_and_one_row_per_level():
    columns, rows = results_table(_doc())
    assert columns == [*COLUMNS, "lpips"]
    assert len(rows) == 2 + 1 + 2  # restored x 2 levels, centered x 1, after_F x 2
    first = dict(zip(columns, rows[0]))
    assert first == {"test_set": "default", "output": "restored", "level": 1, "range": "1-6px",
                     "extra": False, "psnr": 20.0, "ssim": 0.5, "l1": 0.1, "l2": 0.01,
                     "count": 4, "input_psnr": 15.0, "lpips": 0.3}  # fmt: skip
    assert [(r[0], r[1], r[2]) for r in rows] == [("default", "restored", 1),
            ("default", "restored", 2), ("centered", "restored", 1), ("default", "after_F", 1),
            ("default", "after_F", 2)]  # fmt: skip
    assert dict(zip(columns, rows[2]))["lpips"] is None
    values = headline(_doc())
    assert values["results/psnr/mean"] == 20.0 and values["results/psnr/level_2"] == 22.0
    assert values["results/lpips/level_1"] == 0.3
    assert values["results/centered/restored/psnr/mean"] == 19.0
    assert values["results/default/after_F/psnr/mean"] == 18.0


# ------------------------------------------------------------------ nothing without wandb
def test_without_a_wandb_logger_the_callback_sends_nothing(tmp_path, monkeypatch):
    (tmp_path / "results.json").write_text(json.dumps(_doc()))

    def fail(*_a, **_k):
        raise AssertionError("sent to wandb without a WandbLogger")

    monkeypatch.setattr(WandbResults, "send", fail)
    cb = WandbResults(str(tmp_path))
    trainer = SimpleNamespace(loggers=[CSVLogger(str(tmp_path))], callbacks=[cb],
                              is_global_zero=True, global_step=3)  # fmt: skip
    module = SimpleNamespace(run_config={"seed": 1})
    cb.setup(trainer, module, "fit")
    cb.teardown(trainer, module, "test")
    assert not (tmp_path / "wandb").exists()


def _sweep_with_one_run(root: Path) -> Path:
    sweep = root / "sweep"
    run = sweep / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- curriculum=ondemand\n")
    doc = {**_doc(), "task": "inpaint", "protocol": "p", "extra_level": 2}
    (run / "results.json").write_text(json.dumps(doc))
    return sweep


def _master(sweep: Path, logger: dict) -> object:
    return OmegaConf.create({"task_name": "t", "logger": logger,
                             "hydra": {"sweep": {"dir": str(sweep)}}})  # fmt: skip


def test_a_sweep_without_wandb_gets_no_summary_run(tmp_path):
    sweep = _sweep_with_one_run(tmp_path)
    csv = {"csv": {"_target_": "lightrestore.reporting.loggers.csv_logger", "save_dir": "x"}}
    MultirunSummary().on_multirun_end(_master(sweep, csv))
    assert (sweep / "summary.csv").is_file() and not (sweep / "wandb").exists()


def test_mode_disabled_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    sweep = _sweep_with_one_run(tmp_path)
    target = "lightrestore.reporting.loggers.wandb_logger"
    MultirunSummary().on_multirun_end(
        _master(sweep, {"wandb": {"_target_": target, "mode": "disabled"}})
    )
    assert (sweep / "summary.csv").is_file() and not (sweep / "wandb").exists()
    assert log_sweep_summary(sweep, group="g", mode="disabled") is None

    from lightrestore.reporting.loggers import wandb_logger

    run_dir = tmp_path / "run"
    logger = wandb_logger(str(run_dir), mode="disabled", task_name="t")
    logger.experiment.log({"x": 1.0})
    WandbResults(str(run_dir)).send([logger], _doc())
    logger.experiment.finish()
    assert list(run_dir.iterdir()) == []


def test_a_wandb_summary_run_that_fails_does_not_fail_the_sweep(tmp_path, monkeypatch, caplog):
    sweep = _sweep_with_one_run(tmp_path)
    wandb = {"wandb": {"_target_": "lightrestore.reporting.loggers.wandb_logger", "mode": "bogus"}}
    monkeypatch.delenv("WANDB_MODE", raising=False)
    MultirunSummary().on_multirun_end(_master(sweep, wandb))  # an invalid mode: a warning
    assert (sweep / "summary.csv").is_file() and not (sweep / "wandb").exists()
    assert "could not log the sweep summary to wandb" in caplog.text
