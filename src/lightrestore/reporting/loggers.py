"""Logger factories. CSV always; wandb as the dashboard, offline unless credentials exist."""

from __future__ import annotations

import logging
import netrc
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

log = logging.getLogger(__name__)

WANDB_MODES = ("auto", "online", "offline", "disabled")


def wandb_has_credentials() -> bool:
    """True when wandb could log in without asking: an API key in the environment or ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        auth = netrc.netrc(str(path)).authenticators(
            os.environ.get("WANDB_BASE_URL", "api.wandb.ai").split("//")[-1]
        )
    except (FileNotFoundError, netrc.NetrcParseError, OSError):
        return False
    return bool(auth and auth[2])


def resolve_wandb_mode(mode: str = "auto") -> str:
    """The wandb mode to use.

    ``WANDB_MODE`` in the environment always wins; ``auto`` means ``online`` when
    credentials exist and ``offline`` otherwise (never a prompt, never a hang
    without network). Sync an offline run later with ``wandb sync <run>/wandb/offline-run-*``.
    """
    env = os.environ.get("WANDB_MODE")
    if env:
        return "offline" if env == "dryrun" else env
    if mode not in WANDB_MODES:
        raise ValueError(f"logger wandb mode must be one of {WANDB_MODES}, got {mode!r}")
    if mode == "auto":
        return "online" if wandb_has_credentials() else "offline"
    return mode


def wandb_logger(
    save_dir: str,
    project: str = "lightrestore",
    mode: str = "auto",
    name: str | None = None,
    group: str | None = None,
    job_type: str = "train",
    task_name: str = "train",
    tags: Mapping[str, Any] | Sequence[str] | None = None,
    extra_tags: Sequence[str] = (),
    model_target: str | None = "",
    **kwargs: Any,
):
    """A Lightning ``WandbLogger`` in the resolved mode, writing under ``save_dir``.

    Args:
        save_dir: the run folder (wandb writes ``<save_dir>/wandb/``).
        project: the wandb project.
        mode: ``auto`` (online with credentials, else offline), ``online``, ``offline``,
            ``disabled``; ``WANDB_MODE`` in the environment wins.
        name: the run's name; ``None``: :func:`wandb_run_name` (a sweep's job: the overrides
            that differ between its jobs; a single run: ``task_name``).
        group: the run's group; ``None``: :func:`wandb_group` (every job of a multirun:
            ``<task_name>/<sweep folder name>``; a single run: ``task_name``).
        job_type: wandb's job type (``train``; the sweep summary run is ``sweep-summary``).
        task_name: the experiment's name.
        tags: ``{key: value}`` becomes the tags ``key:value`` (``method:restoration``,
            ``curriculum:ondemand``, ...); keys whose value is missing (``None``, empty: an
            experiment without that config group) are left out; a list is used as given.
        extra_tags: more tags, as given.
        model_target: what the method builds from the ``model`` group (its ``_target_``);
            ``None``: the method names its own networks (Golf's ``f_net`` / ``g_net``) and
            the ``model`` tag is left out, since the group's choice would not describe them.
        kwargs: passed to ``WandbLogger`` (and on to ``wandb.init``: ``entity``, ``notes``...).
    """
    from lightning.pytorch.loggers import WandbLogger

    resolved = resolve_wandb_mode(mode)
    os.environ["WANDB_MODE"] = resolved  # also for DDP child processes
    os.environ.setdefault("WANDB_SILENT", "true")
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    log.info("wandb mode: %s", resolved)
    # jobs of a multirun run one after another in one process: a run left open by the job
    # before would otherwise be reused by this one (Lightning's WandbLogger takes wandb.run)
    finish_open_wandb_run()
    mapping = dict(tags) if isinstance(tags, Mapping) else {}
    if model_target is None:
        mapping.pop("model", None)
    tag_list = key_value_tags(mapping) if isinstance(tags, Mapping) else list(tags or ())
    tag_list += [str(t)[:64] for t in extra_tags if t not in (None, "")]
    sweep = sweep_job()
    init = dict(
        name=name or wandb_run_name(task_name, sweep),
        group=group or wandb_group(task_name, sweep["dir"] if sweep else None),
        job_type=job_type,
        tags=list(dict.fromkeys(tag_list)),
    )
    config = {"choices": {k: v for k, v in mapping.items() if _present(v)}}
    if sweep:
        config["sweep"] = {"dir": str(sweep["dir"]), "job": sweep["num"],
                           "overrides": sweep["overrides"]}  # fmt: skip
    config.update(kwargs.pop("config", None) or {})
    logger = WandbLogger(
        save_dir=save_dir,
        project=project,
        offline=resolved == "offline",
        mode=resolved,
        config=config,
        **init,
        **kwargs,
    )
    # Lightning passes anonymous=None to wandb.init, which wandb >= 0.19 answers with a
    # deprecation warning on every run; leave the setting out unless the caller gave it.
    if "anonymous" not in kwargs:
        getattr(logger, "_wandb_init", {}).pop("anonymous", None)
    return logger


def finish_open_wandb_run() -> None:
    """Finish the wandb run this process still has open (the previous job of a sweep run
    in the same process); nothing when wandb was never imported."""
    wandb = sys.modules.get("wandb")
    run = getattr(wandb, "run", None) if wandb is not None else None
    if run is not None:
        log.info("finishing the wandb run %s left open by an earlier job", getattr(run, "name", ""))
        run.finish()


def _present(value: Any) -> bool:
    return value is not None and str(value) not in ("", "None", "null", "???")


def key_value_tags(values: Mapping[str, Any]) -> list[str]:
    """``{"method": "restoration", "curriculum": None}`` -> ``["method:restoration"]``:
    one ``key:value`` tag per present value (wandb's limit: 64 characters a tag)."""
    return [f"{k}:{v}"[:64] for k, v in values.items() if _present(v)]


def wandb_group(task_name: str, sweep_dir: str | Path | None = None) -> str:
    """The wandb group of a run: ``<task_name>/<sweep folder name>`` for the jobs of a
    multirun (and its summary run), ``task_name`` for a single run."""
    return f"{task_name}/{Path(sweep_dir).name}" if sweep_dir else str(task_name)


def sweep_job() -> dict[str, Any] | None:
    """This process's multirun job: ``{"dir": sweep folder, "num": job number,
    "overrides": the job's overrides that differ between the sweep's jobs}``; ``None``
    outside a Hydra multirun."""
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        if not HydraConfig.initialized():
            return None
        hc = HydraConfig.get()
        if hc.mode != RunMode.MULTIRUN:
            return None
        sweep_dir = Path(str(hc.sweep.dir))
        num = OmegaConf.select(hc, "job.num")
        overrides = [str(o) for o in (OmegaConf.select(hc, "overrides.task") or [])]
    except Exception as e:  # noqa: BLE001  (naming a run must never stop it)
        log.debug("no multirun job information: %s", e)
        return None
    return {"dir": sweep_dir, "num": num, "overrides": differing_overrides(sweep_dir, overrides)}


def differing_overrides(sweep_dir: Path, overrides: Sequence[str]) -> list[str]:
    """The job's ``overrides`` whose key the sweep varies (``curriculum=ondemand`` of
    ``curriculum=ondemand,rigid_joint``), from the sweep's ``multirun.yaml``; empty when
    it is missing or varies nothing."""
    f = Path(sweep_dir) / "multirun.yaml"
    if not f.is_file():
        return []
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        from lightrestore.reporting.report import _canonical  # x=False -> x=false, as typed

        parser = OverridesParser.create()
        master = OmegaConf.load(f)
        swept = [str(o) for o in (OmegaConf.select(master, "hydra.overrides.task") or [])]
        keys = {o.key_or_group for o in parser.parse_overrides(swept) if o.is_sweep_override()}
        out = []
        for text, o in zip(overrides, parser.parse_overrides(list(overrides))):
            if o.key_or_group in keys:
                out.append(_canonical(text))
        return out
    except Exception as e:  # noqa: BLE001
        log.debug("could not read the sweep's overrides from %s: %s", f, e)
        return []


def wandb_run_name(task_name: str, sweep: Mapping[str, Any] | None) -> str:
    """A run's name: in a sweep, the overrides that differ between its jobs
    (``curriculum=ondemand,seed=1``), else ``<task_name>#<job number>``; a single run:
    ``task_name``."""
    if not sweep:
        return str(task_name)
    return ",".join(sweep["overrides"]) or f"{task_name}#{sweep['num']}"


def csv_logger(save_dir: str, name: str = "csv", version: str = ""):
    """A Lightning ``CSVLogger`` writing ``<save_dir>/<name>/<version>/metrics.csv``.

    Lightning's CSV logger deletes an existing ``metrics.csv`` in its folder. That folder
    exists when a SLURM-requeued job continues its own run: the earlier job's folder is
    kept as ``<name>_part<k>`` (k = 1, 2, ...) first, so no logged value is lost.
    """
    from lightning.pytorch.loggers import CSVLogger

    from lightrestore.config import process_rank

    folder = Path(save_dir) / name
    if process_rank() == 0 and folder.is_dir() and any(folder.iterdir()):
        k = 1
        while (Path(save_dir) / f"{name}_part{k}").exists():
            k += 1
        folder.rename(Path(save_dir) / f"{name}_part{k}")
        log.info("continuing a run: its earlier CSV logs are kept in %s_part%d", folder, k)
    return CSVLogger(save_dir=save_dir, name=name, version=version)
