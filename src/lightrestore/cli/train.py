"""``python -m lightrestore``: train, then test on every level, in a unique run folder.

    python -m lightrestore experiment=ondemand_inpaint
    python -m lightrestore experiment=rigid_joint_deblur data=folder data.source.root=/data/celeba
    python -m lightrestore -m experiment=ondemand_inpaint curriculum=ondemand,rigid_joint
    python -m lightrestore --help          # config groups and options

The run folder (``logs/<task_name>/runs/<time>_<pid>/``) holds the resolved config
(``.hydra/``), ``checkpoints/``, ``results.{json,md,csv}``, ``allocation.csv``,
``images/`` and the CSV / wandb logs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

from lightrestore.build import build, init_weights, instantiate, metric_settings
from lightrestore.cli.app import check_fresh_run_folder, report_user_errors, run_app
from lightrestore.config import register_resolvers
from lightrestore.errors import UserError

log = logging.getLogger("lightrestore")

register_resolvers()


def run(cfg: Any) -> dict[str, Any]:
    """Train and test one configuration.

    Returns the objects of :func:`build` plus ``results`` (the test metrics per level).
    """
    import lightning.pytorch as pl

    from lightrestore.cli.validation import validate

    validate(cfg, "train")
    check_fresh_run_folder(cfg.paths.output_dir)
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    objs = build(cfg)
    datamodule, method, trainer = objs["datamodule"], objs["method"], objs["trainer"]
    # Check the data before the Trainer starts (missing folders, undecodable or
    # too-small images fail here with a clear message).
    datamodule.setup("fit")
    datamodule.setup("test")
    if trainer.is_global_zero:
        log.info("run folder: %s", cfg.paths.output_dir)
        log.info("degradation: %r", objs["degradation"])
        log.info(
            "val set checksum %s, test set checksum %s",
            datamodule.val_set.checksum[:16],
            datamodule.test_set.checksum[:16],
        )
    for logger in objs["loggers"]:
        logger.log_hyperparams(
            {
                "val_set_checksum": datamodule.val_set.checksum,
                "test_set_checksum": datamodule.test_set.checksum,
            }
        )
    ckpt_path = resolve_ckpt_path(cfg)
    if ckpt_path and trainer.is_global_zero:
        log.info("resuming from %s", ckpt_path)
    if cfg.get("init_from"):
        if ckpt_path:  # the resumed checkpoint holds every weight
            log.info("resuming: init_from=%s is not applied", cfg.init_from)
        else:
            init_weights(method, Path(str(cfg.init_from)).expanduser(),
                         _init_networks(cfg.get("init_from_networks")),
                         strict=bool(cfg.get("init_from_strict", True)))  # fmt: skip
    if cfg.get("train", True):
        # weights_only: checkpoints hold only tensors and plain containers
        trainer.fit(method, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        _drop_requeue_checkpoints(trainer)
    if cfg.get("test", True):
        trainer.test(method, datamodule=datamodule, verbose=False)
    return {**objs, "results": method.test_results}


def _init_networks(value: Any) -> Any:
    """``init_from_networks``: null (every network), a list, or a mapping (plain values)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def _drop_requeue_checkpoints(trainer: Any) -> None:
    """Training finished: the SLURM requeue checkpoints (``hpc_ckpt_N.ckpt``) are
    superseded by ``last.ckpt``; remove them, or Lightning's ``test()`` would evaluate
    the requeue snapshot instead of the trained weights when running under SLURM."""
    if trainer.interrupted:
        return
    if trainer.is_global_zero:
        for f in Path(str(trainer.default_root_dir)).glob("hpc_ckpt_*.ckpt"):
            log.info("training finished: removing the requeue checkpoint %s", f)
            f.unlink(missing_ok=True)
    trainer.strategy.barrier()


def resolve_ckpt_path(cfg: Any) -> str | None:
    """The checkpoint to resume from.

    ``ckpt_path=<file>``; ``ckpt_path=last`` (or ``resume=true``): the newest
    ``checkpoints/last.ckpt`` among the earlier runs of this ``task_name``;
    ``ckpt_path=hpc``: Lightning's SLURM requeue checkpoint in this run's folder
    (also picked automatically when a requeued SLURM job finds one). A file or ``last``
    must have been trained with this run's model, method and task
    (:func:`lightrestore.storage.checkpoints.check_resume_compatible`); ``last`` skips newer runs
    that were not, logging why.
    """
    from lightrestore.storage.checkpoints import check_resume_compatible, newest_compatible

    ckpt = cfg.get("ckpt_path")
    if not ckpt and cfg.get("resume", False):
        ckpt = "last"
    if not ckpt or ckpt == "hpc":
        return ckpt or None
    if ckpt == "last":
        runs = Path(str(cfg.paths.log_dir)) / str(cfg.task_name) / "runs"
        here = Path(str(cfg.paths.output_dir)).resolve()
        found = [p for p in runs.glob("*/checkpoints/last.ckpt") if p.parents[1].resolve() != here]
        if not found:
            raise UserError(
                f"ckpt_path=last: no earlier run of '{cfg.task_name}' has a checkpoints/last.ckpt "
                f"under {runs}: give the checkpoint file with ckpt_path=<file>"
            )
        return str(newest_compatible(found, cfg))
    if not Path(str(ckpt)).expanduser().is_file():
        raise UserError(
            f"checkpoint '{ckpt}' does not exist: give the path of a .ckpt file, "
            "ckpt_path=last (the newest run of this experiment) or ckpt_path=null"
        )
    check_resume_compatible(Path(str(ckpt)).expanduser(), cfg)
    return str(Path(str(ckpt)).expanduser())


def _train(cfg: Any) -> None:
    """:func:`run`, with the exit status of an interruption: 143 after SIGTERM and 130
    after Ctrl-C (both at a step boundary, with ``last.ckpt`` saved), 130 after a second
    Ctrl-C (aborted at once, nothing saved) or a Ctrl-C outside training."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from lightrestore.callbacks.reliability import received

    last = f"{cfg.paths.output_dir}/checkpoints/last.ckpt"
    try:
        run(cfg)
    except SIGTERMException:  # stopped at a step boundary; SaveOnInterrupt saved last.ckpt
        sigint = received["signal"] == "SIGINT"
        _stop(f"interrupted by {'Ctrl-C (SIGINT)' if sigint else 'SIGTERM'}; resume with "
              f"ckpt_path={last}", 130 if sigint else 143)  # fmt: skip
    except KeyboardInterrupt:
        _stop("interrupted by Ctrl-C", 130)
    except SystemExit as e:  # Lightning exits 1 after a KeyboardInterrupt (a second Ctrl-C)
        if received["signal"] != "SIGINT-abort":
            raise
        saved = f"; the last checkpoint is {last}" if Path(last).is_file() else ""
        _stop(f"aborted by a second Ctrl-C, the current step was not saved{saved}", 130, e)


def _stop(message: str, code: int, cause: BaseException | None = None) -> None:
    """Print ``message`` (console and log file) and exit with ``code``."""
    from lightrestore.cli.app import log_to_files

    print(f"lightrestore: {message}", file=sys.stderr, flush=True)
    log_to_files(logging.WARNING, f"lightrestore: {message}")
    raise SystemExit(code) from cause


def _main(cfg: Any) -> None:
    report_user_errors("lightrestore", _train, cfg)


def main() -> None:
    """Console entry point (``lightrestore`` / ``python -m lightrestore``)."""
    run_app("train", _main)


__all__ = ["build", "instantiate", "metric_settings", "run", "main", "UserError"]
