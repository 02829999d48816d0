"""Running a Hydra app (train, evaluate, restore) with the project's error reporting,
logging and up-front config checks.

- A user error (a :class:`~lightrestore.errors.UserError` anywhere in the exception
  chain, or a config Hydra cannot compose) is printed as one line
  ``<prog>: error: <message>`` on stderr, written to the run's log file, and the
  process exits with status 2; a run folder that holds nothing but Hydra's
  bookkeeping is removed again.
- :class:`CheckConfig` (a Hydra callback) validates the composed config and the output
  folder before Hydra creates the run folder (``lightrestore.cli.validation``).
- :func:`configure_logging` makes the run's log file hold what the console shows
  (results tables, warnings, errors), once, and silences noise at its source.
"""

from __future__ import annotations

import difflib
import functools
import logging
import os
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lightrestore.config import config_dir, process_rank
from lightrestore.errors import UserError, find_user_error

log = logging.getLogger("lightrestore")

#: the program name each config prints in its messages
PROGS = {"train": "lightrestore", "evaluate": "lightrestore.evaluate",
         "restore": "lightrestore.restore"}  # fmt: skip


# ----------------------------------------------------------------------------- logging
class _DropLightningTips(logging.Filter):
    """Lightning advertises its cloud products ("💡 Tip: ...") on every run, with no
    switch to turn it off; nothing else is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def configure_logging() -> None:
    """Set up logging for a CLI run, after Hydra configured its console and file handlers.

    - Lightning's own console handler is removed, its records reach Hydra's handlers once
      (otherwise every Lightning line is printed twice);
    - Python warnings go through logging (``py.warnings``), so the run's log file holds them;
    - DDP ranks other than 0 log only warnings and errors (no repeated data-set lines);
    - Lightning's product tips are dropped, and the deprecation warning torch 2.13 raises
      inside Lightning's own pytree helper (nothing a user can change) is ignored.
    """
    import lightning.pytorch  # noqa: F401  (installs Lightning's handlers, removed below)

    if logging.getLogger().handlers:
        for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
            lg = logging.getLogger(name)
            for handler in list(lg.handlers):
                lg.removeHandler(handler)
            lg.propagate = True
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLightningTips) for f in rank_zero.filters):
        rank_zero.addFilter(_DropLightningTips())
    warnings.filterwarnings(
        "ignore", category=FutureWarning, module=r"lightning\.pytorch\.utilities\._pytree"
    )
    logging.captureWarnings(True)
    if process_rank() != 0:
        for name in ("lightrestore", "lightning.pytorch", "lightning.fabric", "py.warnings"):
            logging.getLogger(name).setLevel(logging.WARNING)


def log_to_files(level: int, message: str, exc_info: Any = None) -> None:
    """Write one record to the run's log file(s) only (the console already showed it)."""
    record = log.makeRecord(log.name, level, __file__, 0, message, (), exc_info)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


# ----------------------------------------------------------------------------- run folders
def holds_nothing(run_dir: str | os.PathLike) -> bool:
    """True when ``run_dir`` holds only Hydra's bookkeeping (``.hydra/``) and the job's
    log file (``train.log``, ``evaluate.log``, ``restore.log``): a run that failed before
    it wrote anything of its own."""
    folder = Path(run_dir)
    if not folder.is_dir():
        return False
    logs = {f"{name}.log" for name in PROGS}
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if path.is_file() and rel.parts[0] != ".hydra" and str(rel) not in logs:
            return False
    return True


def check_fresh_run_folder(output_dir: str | Path) -> None:
    """Refuse to write a new run into a folder that already holds one (its results or
    checkpoints); a SLURM-requeued job continuing its own run (``hpc_ckpt_*.ckpt``) is
    the exception. Only rank 0 checks: DDP children share the parent's folder."""
    out = Path(str(output_dir))
    if process_rank() != 0 or any(out.glob("hpc_ckpt_*.ckpt")):
        return
    if (out / "results.json").exists() or any((out / "checkpoints").glob("*.ckpt")):
        raise UserError(
            f"run folder {out} already holds a run (results.json or checkpoints) and runs never "
            "share a folder: drop the hydra.run.dir override or choose a new folder; to continue "
            f"that run, resume from its checkpoint (ckpt_path={out}/checkpoints/last.ckpt) in a new folder"
        )


def remove_unused_run_folder(cfg: Any) -> None:
    """Remove this run's folder when it holds nothing (rank 0, never another run's)."""
    out = (cfg.get("paths") or {}).get("output_dir") if hasattr(cfg, "get") else None
    if not out or process_rank() != 0:
        return
    try:
        if holds_nothing(out):
            logging.shutdown()  # close the log file before its folder goes
            shutil.rmtree(out, ignore_errors=True)
    except Exception:  # cleaning up must never hide the error being reported
        pass


# ----------------------------------------------------------------------------- errors
def report_user_errors(prog: str, fn: Callable[[Any], Any], cfg: Any) -> None:
    """Run ``fn(cfg)`` with :func:`configure_logging`; a user error (anywhere in the
    exception chain) is printed as one line ``<prog>: error: <message>``, written to the
    log file, and exits with status 2 (the run folder is removed if ``fn`` wrote nothing
    into it). Other errors are written to the log file with their traceback and propagate."""
    configure_logging()
    try:
        fn(cfg)
    except Exception as exc:
        user = find_user_error(exc)
        if user is None:
            log_to_files(logging.ERROR, f"{prog}: unexpected error", exc_info=exc)
            raise
        print(f"{prog}: error: {user}", file=sys.stderr, flush=True)
        log_to_files(logging.ERROR, f"{prog}: error: {user}")
        remove_unused_run_folder(cfg)
        sys.exit(2)


def _config_keys(cfg: Any, prefix: str = "") -> dict[str, Any]:
    """Every dotted key of a composed config (nodes and leaves, ``hydra`` excluded)."""
    from omegaconf import DictConfig

    keys: dict[str, Any] = {}
    if not isinstance(cfg, DictConfig):
        return keys
    for k in cfg.keys():
        if not prefix and k == "hydra":
            continue
        key = f"{prefix}{k}"
        value = cfg._get_node(k)
        keys[key] = value
        keys.update(_config_keys(value, key + "."))
    return keys


def suggest_key(bad: str, cfg: Any) -> str | None:
    """The config key closest to the mistyped ``bad`` (``trainer.max_epoch`` ->
    ``trainer.max_epochs``): among its siblings first, then among the keys as deep."""
    keys = _config_keys(cfg)
    parent, _, leaf = bad.rpartition(".")
    siblings = [k.rpartition(".")[2] for k in keys if k.rpartition(".")[0] == parent]
    match = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.6)
    if match:
        return f"{parent}.{match[0]}" if parent else match[0]
    same_depth = [k for k in keys if k.count(".") == bad.count(".")]  # a mistyped parent
    match = difflib.get_close_matches(bad, same_depth, n=1, cutoff=0.6)
    return match[0] if match else None


def _compose_without(config_name: str, overrides: list[str], drop: str) -> Any:
    """The app's config composed from the command line without the override of ``drop``
    (sweeps and other failing overrides are left out in turn)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    kept = [o for o in overrides if o.partition("=")[0].lstrip("+~") != drop]
    plain = [o for o in kept if "," not in o and "(" not in o]
    for attempt in (kept, plain, []):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(str(config_dir()), version_base="1.3"):
                return compose(config_name, overrides=attempt)
        except Exception:
            continue
    return None


def hydra_error_message(exc: BaseException, config_name: str, argv: list[str]) -> str | None:
    """A one-paragraph message for an error Hydra raised before the run started (a config
    it could not compose, an unknown option), or None for other errors."""
    from hydra.errors import ConfigCompositionException, HydraException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(exc, (HydraException, OmegaConfBaseException)):
        return None
    text = str(exc).strip()
    if isinstance(exc, ConfigCompositionException) and text.startswith("Could not override '"):
        bad = text.split("'")[1]
        value = next((a.partition("=")[2] for a in argv if a.partition("=")[0] == bad), "...")
        cfg = _compose_without(config_name, [a for a in argv if "=" in a], bad)
        good = suggest_key(bad, cfg) if cfg is not None else None
        hint = (f"did you mean {good}={value}?" if good else
                f"run `python -m {PROGS.get(config_name, 'lightrestore')} --cfg job` to list the keys.")  # fmt: skip
        return (f"'{bad}' is not a key of this config: {hint} (Hydra's '+{bad}={value}' would "
                "add a new key that nothing reads)")  # fmt: skip
    cause = exc.__cause__
    if isinstance(cause, OmegaConfBaseException) and not isinstance(exc, OverrideParseException):
        text += "\n" + str(cause).strip()
    return text


def run_app(config_name: str, task_fn: Callable[[Any], None]) -> None:
    """``hydra.main`` on the package's ``conf/<config_name>.yaml`` with ``task_fn``.

    Errors Hydra raises before the run starts (an override of a key that does not exist,
    an unknown config option) are reported as ``<prog>: error: ...`` with exit status 2;
    ``HYDRA_FULL_ERROR=1`` shows Hydra's own traceback instead.
    """
    import hydra

    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra's exceptions reach us, we report them
    started = []

    @functools.wraps(task_fn)  # Hydra names the job (and its log file) after task_fn's module
    def task(cfg: Any) -> None:
        started.append(True)
        task_fn(cfg)

    try:
        hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)(
            task
        )()
    except Exception as exc:
        if started or full_error:  # the task reports its own errors
            raise
        message = hydra_error_message(exc, config_name, sys.argv[1:])
        if message is None:
            raise
        print(f"{PROGS.get(config_name, 'lightrestore')}: error: {message}", file=sys.stderr)
        sys.exit(2)


# ----------------------------------------------------------------------------- config check
try:  # Hydra callback (hydra-core is a dependency)
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[misc,assignment]


class CheckConfig(_HydraCallback):
    """Hydra callback: validate the composed config and its output folder *before* Hydra
    creates the run folder (a single run) or the sweep folder (a multirun); a problem is
    printed as one line and the process exits with status 2, having written nothing.
    Each job of a multirun is validated again when it starts (``validation.validate``)."""

    def on_run_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, kwargs.get("config_name"), "hydra.run.dir", fresh=True)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._check(config, kwargs.get("config_name"), "hydra.sweep.dir", fresh=False)

    @staticmethod
    def _check(config: Any, config_name: str | None, dir_key: str, fresh: bool) -> None:
        from omegaconf import OmegaConf

        from lightrestore.cli.validation import output_folder, problems

        app = config_name if config_name in PROGS else "train"
        found = problems(config, app)
        try:
            out = OmegaConf.select(config, dir_key)
        except Exception:  # an interpolation Hydra fills later: checked when the run starts
            out = None
        if out is not None and process_rank() == 0:
            found += output_folder(out)
            if fresh and not found and app in ("train", "evaluate"):
                try:
                    check_fresh_run_folder(out)
                except UserError as e:
                    found.append(str(e))
        if found:
            print(f"{PROGS[app]}: error: {'; '.join(found)}", file=sys.stderr, flush=True)
            sys.exit(2)
