"""``python -m lightrestore.evaluate ckpt=<path> [task=<task>]``: test a checkpoint on
every level of a ladder (levels ``1..N+1`` and the task's test variants).

The model and method are rebuilt from the config stored in the checkpoint; the task,
the data and the seed default to the checkpoint's own, so the test pairs are those
of its run unless overridden (``task=deblur``, ``data=folder data.source.root=...``).
Results go to ``logs/evaluate/runs/<time>_<pid>/results.{json,md,csv}``.

A sweep over checkpoints gives ODL's fixation matrix (train policy × test level):

    python -m lightrestore.evaluate -m ckpt=a.ckpt,b.ckpt,c.ckpt task=inpaint

Whole images at fixed severities on sliding windows (ODL's denoising Table 3), one row per
image in ``whole_images.{json,md,csv}`` (:mod:`lightrestore.cli.whole_images`):

    python -m lightrestore.evaluate ckpt=... whole_images=<folder> severities=[10,30,50]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightrestore.cli.app import report_user_errors, run_app
from lightrestore.config import register_resolvers
from lightrestore.errors import ConfigError

register_resolvers()


def run_evaluate(cfg: Any) -> dict[str, Any]:
    """Evaluate ``cfg.ckpt``; returns ``{"method", "datamodule", "trainer", "results"}``."""
    import lightning.pytorch as pl
    from omegaconf import OmegaConf, open_dict

    from lightrestore.build import build_from_checkpoint, instantiate, trainer_options
    from lightrestore.callbacks.plots import RunPlots
    from lightrestore.callbacks.progress import ThrottledProgressBar
    from lightrestore.callbacks.results import ResultsWriter
    from lightrestore.cli.app import check_fresh_run_folder
    from lightrestore.cli.validation import validate
    from lightrestore.storage.checkpoints import load_checkpoint

    validate(cfg, "evaluate")
    check_fresh_run_folder(cfg.paths.output_dir)
    ckpt_path = Path(str(cfg.ckpt)).expanduser()
    ckpt = load_checkpoint(ckpt_path)
    train_cfg = OmegaConf.create(ckpt["lightrestore"]["config"])
    with open_dict(cfg):
        for key in ("task", "data"):
            if cfg.get(key) is None:
                cfg[key] = train_cfg[key]
        if cfg.get("seed") is None:
            cfg.seed = train_cfg.get("seed", 0)
    validate(cfg, "evaluate")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)

    degradation = instantiate(cfg.task.degradation)
    datamodule = instantiate(
        cfg.data, degradation=degradation, test_variants=cfg.task.get("test_variants")
    )
    method = build_from_checkpoint(ckpt, ckpt_path, task=cfg.task, degradation=degradation,
                                   weights=str(cfg.get("weights") or "raw"),
                                   metrics=cfg.get("metrics"))  # fmt: skip
    channels = method.inference_spec().get("channels")
    if channels is not None and channels != cfg.task.channels:
        raise ConfigError(
            f"the checkpoint's model takes {channels}-channel images but task '{cfg.task.name}' has "
            f"{cfg.task.channels} channels: evaluate it on a task with {channels} channel(s)"
        )
    if cfg.get("whole_images"):  # ODL's Table 3: whole images on sliding windows
        from lightrestore.cli.whole_images import evaluate_whole_images

        doc = evaluate_whole_images(cfg, method, degradation)
        return {"method": method, "datamodule": datamodule, "trainer": None, "results": doc}
    trained = (train_cfg.get("callbacks") or {}).get("results", {}).get("extra", {})
    extra = {
        "experiment": trained.get("experiment", train_cfg.get("task_name")),
        "curriculum": trained.get("curriculum"),
        "trained_task": train_cfg.task.name,
        "task": cfg.task.name,
        "checkpoint": str(ckpt_path.resolve()),
        "checkpoint_epoch": ckpt.get("epoch"),
        "weights": str(cfg.get("weights") or "raw"),
        "method": ckpt["lightrestore"].get("method"),
        "seed": cfg.seed,
    }
    out_dir = cfg.paths.output_dir
    callbacks = [ResultsWriter(out_dir, extra=extra),
                 RunPlots(out_dir, title=f"{extra['experiment']} on {cfg.task.name}")]  # fmt: skip
    if cfg.trainer.get("enable_progress_bar", True):
        callbacks.append(ThrottledProgressBar())
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=False, default_root_dir=out_dir,
                          enable_checkpointing=False, **trainer_options(cfg, method))  # fmt: skip
    datamodule.setup("test")
    trainer.test(method, datamodule=datamodule, verbose=False)
    return {
        "method": method,
        "datamodule": datamodule,
        "trainer": trainer,
        "results": method.test_results,
    }


def _main(cfg: Any) -> None:
    report_user_errors("lightrestore.evaluate", run_evaluate, cfg)


def main() -> None:
    run_app("evaluate", _main)


if __name__ == "__main__":
    main()
