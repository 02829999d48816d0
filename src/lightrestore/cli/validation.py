"""One up-front check of a composed config, so a value that cannot work fails in one line
(exit 2) before a run folder, a checkpoint or a log is written.

Every problem found is named by its config key together with the fix; several problems
are reported together. The checks are cheap (no data is read, no model is built) and
tolerate configs in which a group is absent (``evaluate`` fills ``task``/``data`` from
the checkpoint and validates again afterwards).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightrestore.errors import ConfigError

SEED_MAX = 2**32 - 1  # numpy's seed range, used by lightning's seed_everything

Check = Callable[[Any], Iterable[str]]


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    """``cfg.<key>`` (dotted) or ``default`` when any part is absent or null."""
    value = OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
    return default if value is None else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive(cfg: Any, key: str, nullable: bool = False, what: str = "") -> list[str]:
    value = OmegaConf.select(cfg, key, default=None, throw_on_missing=False)
    if value is None and nullable:
        return []
    if not _is_int(value) or value < 1:
        null = " (or null for the default)" if nullable else ""
        return [f"{key}={value} must be a positive integer{null}{what}"]
    return []


# ----------------------------------------------------------------------------- checks
def missing_values(cfg: Any) -> list[str]:
    """Mandatory values (``???``) nobody gave, e.g. ``ckpt=`` for evaluate and restore
    (interpolations are not resolved: Hydra fills some of them only when the run starts)."""
    return [f"{k} is required: give {k}=<value> on the command line" for k in _missing(cfg)]


def _missing(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, DictConfig):
        return []
    found = []
    for key in node.keys():
        if not prefix and key == "hydra":
            continue
        if OmegaConf.is_missing(node, key):
            found.append(f"{prefix}{key}")
        elif not OmegaConf.is_interpolation(node, key):
            found += _missing(node._get_node(key), f"{prefix}{key}.")
    return found


def seed(cfg: Any) -> list[str]:
    value = OmegaConf.select(cfg, "seed", default=None, throw_on_missing=False)
    if value is None:
        return []
    if not _is_int(value) or not 0 <= value <= SEED_MAX:
        return [f"seed={value} is outside 0..{SEED_MAX}: give a non-negative integer seed"]
    return []


def epochs(cfg: Any) -> list[str]:
    """``trainer.max_epochs`` >= 1, or -1 (Lightning: no epoch limit) with ``max_steps``."""
    if not _get(cfg, "train", True) or OmegaConf.select(cfg, "trainer") is None:
        return []
    value = OmegaConf.select(cfg, "trainer.max_epochs", default=None)
    steps = _get(cfg, "trainer.max_steps", -1)
    if value == -1:
        if _is_int(steps) and steps >= 1:
            return []
        return [
            "trainer.max_epochs=-1 means no epoch limit and would train forever without "
            "trainer.max_steps: give trainer.max_epochs>=1 or set trainer.max_steps=<steps>"
        ]
    if not _is_int(value) or value < 1:
        return [
            f"trainer.max_epochs={value} trains nothing: give trainer.max_epochs>=1 "
            "(to test a trained checkpoint use python -m lightrestore.evaluate ckpt=<file>)"
        ]
    return []


def data(cfg: Any) -> list[str]:
    """Counts, batch sizes, level lists and the crop size of ``cfg.data``."""
    if OmegaConf.select(cfg, "data") is None:
        return []
    out = _positive(cfg, "data.batch_size") + _positive(cfg, "data.eval_batch_size", True)
    out += _positive(cfg, "data.train_samples_per_epoch", True, " (patches per epoch)")
    out += _positive(cfg, "data.val_per_level", what=" (validation pairs per level)")
    out += _positive(cfg, "data.test_per_level", what=" (test pairs per level)")
    for key in ("data.val_levels", "data.test_levels"):
        levels = OmegaConf.select(cfg, key, default=None)
        if levels is not None and len(levels) == 0:
            out.append(f"{key}=[] lists no level: give levels such as [1,2,3], or null for all")
    out += crop_size(cfg)
    return out


def crop_size(cfg: Any) -> list[str]:
    """``data.crop_size`` >= 1 and a multiple of what the model needs (``size_multiple``)."""
    crop = OmegaConf.select(cfg, "data.crop_size", default=None)
    if crop is None:
        return []
    if not _is_int(crop) or crop < 1:
        return [f"data.crop_size={crop} must be a positive integer (the patch side in pixels)"]
    multiple = _model_size_multiple(cfg)
    if multiple and crop % multiple:
        name = str(_get(cfg, "model._target_", "the model")).rsplit(".", 1)[-1]
        up = crop + multiple - crop % multiple
        return [f"data.crop_size={crop} must be a multiple of {multiple} for {name} (e.g. {up})"]
    return []


def _model_size_multiple(cfg: Any) -> int:
    """The model class's ``size_multiple`` when its input size is the crop size."""
    target = _get(cfg, "model._target_")
    raw = OmegaConf.to_container(cfg.model, resolve=False) if target else {}
    if not target or "data.crop_size" not in str(raw.get("image_size", "")):
        return 0
    try:
        from hydra.utils import get_class

        return int(getattr(get_class(target), "size_multiple", 0))
    except Exception:  # an unknown target fails later, at instantiation, with its own message
        return 0


def accelerator(cfg: Any) -> list[str]:
    """The Trainer's accelerator exists on this machine (``trainer=gpu`` without a GPU)."""
    acc = str(_get(cfg, "trainer.accelerator", "auto")).lower()
    if acc not in ("gpu", "cuda", "mps"):
        return []
    import torch

    if acc == "mps":
        ok = torch.backends.mps.is_available()
        count = 1 if ok else 0
    else:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        return [
            f"trainer.accelerator={acc} but this machine has no {acc.upper()} device visible to "
            "torch: use trainer=default (auto) or trainer=cpu"
        ]
    devices = _get(cfg, "trainer.devices", "auto")
    if _is_int(devices) and devices > count:
        return [f"trainer.devices={devices} but only {count} {acc.upper()} device(s) are visible"]
    return []


def output_folder(path: str | os.PathLike, key: str = "paths.log_dir") -> list[str]:
    """The folder can be created and written: no path component is longer than the file
    system allows, and its nearest existing parent is a folder we can write into."""
    path = Path(os.path.abspath(os.fspath(path)))
    existing = _nearest_existing(path)
    if not existing.is_dir():
        return [f"cannot create the output folder {path}: {existing} is a file; set {key}"]
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    long = [p for p in path.parts if len(os.fsencode(p)) > name_max]
    if long or len(os.fsencode(str(path))) >= path_max:
        what = f"a folder name of {len(long[0])} characters (at most {name_max})" if long else (
            f"a path longer than {path_max} bytes")  # fmt: skip
        return [f"cannot create the output folder {str(path)[:60]}...: {what}; set a shorter {key}"]
    reason = _not_writable(existing)
    if reason:
        return [f"cannot write into {existing} ({reason}): set {key} to a writable folder "
                "(or the LIGHTRESTORE_ROOT environment variable)"]  # fmt: skip
    return []


def _nearest_existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (a name too long to test counts as absent)."""
    while True:
        try:
            if path.exists():
                return path
        except OSError:
            pass
        path = path.parent


def _not_writable(folder: Path) -> str | None:
    """Why nothing can be created in ``folder``, or None. A real probe, since ``os.access``
    says yes to root on a read-only mount: create and remove an empty temporary folder."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return "no write permission"
    import tempfile

    try:
        tempfile.TemporaryDirectory(dir=folder, prefix=".lightrestore-probe-").cleanup()
    except OSError as e:
        return os.strerror(e.errno) if e.errno else str(e)
    return None


# ----------------------------------------------------------------------------- entry points
def curriculum(cfg: Any) -> list[str]:
    """The curriculum's settings resolve against the task (the fixated baselines need the
    task's ``fixated.easy`` / ``fixated.hard``, which single-level tasks do not define)."""
    from omegaconf.errors import InterpolationResolutionError

    node = OmegaConf.select(cfg, "curriculum", default=None)
    if node is None:
        return []
    try:
        OmegaConf.to_container(node, resolve=True)
    except InterpolationResolutionError as e:
        key = str(e).split("'")[1] if "'" in str(e) else str(e)
        task = _get(cfg, "task.name", "this task")
        return [
            f"the curriculum needs {key}, which task '{task}' does not define (the fixated "
            f"baselines need a ladder with easy and hard settings): use another curriculum, "
            f"e.g. curriculum=rigid_joint"
        ]
    return []


def perceptual_weights(cfg: Any) -> list[str]:
    """Training with the perceptual loss needs its VGG weights file (checked before the
    run starts; ``evaluate`` and ``restore`` never need it)."""
    node = OmegaConf.select(cfg, "loss.perceptual", default=None)
    if not _get(cfg, "train", True) or node is None or "random_weights" not in node:
        return []
    if node.get("random_weights"):
        return []
    weights = node.get("weights")
    if weights and Path(str(weights)).expanduser().is_file():
        return []
    what = "is not set" if not weights else f"'{weights}' does not exist"
    return [
        f"the perceptual loss needs VGG-11-BN ImageNet weights and loss.perceptual.weights "
        f"{what}: download torchvision's vgg11_bn-8dd8db1b.pth (https://download.pytorch.org/"
        "models/vgg11_bn-8dd8db1b.pth) beforehand and give loss.perceptual.weights=<path>, or "
        "train with loss=mse (loss.perceptual.random_weights=true for smoke runs only)"
    ]


def chained_phase(cfg: Any) -> list[str]:
    """A method's later phase (Golf's phase g) starts from the earlier phase's weights."""
    if not _get(cfg, "train", True) or _get(cfg, "method.phase") != "g":
        return []
    if _get(cfg, "init_from") or _get(cfg, "ckpt_path") or _get(cfg, "resume"):
        return []
    return [
        "method.phase=g trains G on a trained F: give init_from=<phase f's "
        "checkpoints/last.ckpt> (experiments/golf.sh chains the two phases)"
    ]


#: LIRA's stages that start from an earlier stage's weights, and that stage
LIRA_CHAINED = {
    "LiraReplayGAN": "the base network of lira_join",
    "LiraIncremental": "the base network, replay generator and Fisher of lira_replay_gan",
}


def chained_stage(cfg: Any) -> list[str]:
    """LIRA's replay-GAN and incremental stages need the earlier stage's checkpoint."""
    target = str(_get(cfg, "method._target_") or "").rsplit(".", 1)[-1]
    if target not in LIRA_CHAINED or not _get(cfg, "train", True):
        return []
    if _get(cfg, "init_from") or _get(cfg, "ckpt_path") or _get(cfg, "resume"):
        return []
    return [
        f"{target} starts from {LIRA_CHAINED[target]}: give init_from=<that run's "
        "checkpoints/last.ckpt> (experiments/lira_pipeline.sh chains the stages)"
    ]


TRAIN_CHECKS: tuple[Check, ...] = (
    missing_values, seed, epochs, data, curriculum, accelerator, perceptual_weights,
    chained_phase, chained_stage,
)  # fmt: skip
EVALUATE_CHECKS: tuple[Check, ...] = (missing_values, seed, data, accelerator)
RESTORE_CHECKS: tuple[Check, ...] = (missing_values,)
CHECKS = {"train": TRAIN_CHECKS, "evaluate": EVALUATE_CHECKS, "restore": RESTORE_CHECKS}


def problems(cfg: DictConfig, app: str = "train") -> list[str]:
    """Every problem of ``cfg`` for ``app`` (train, evaluate, restore), as messages."""
    found: list[str] = []
    for check in CHECKS[app]:
        found += check(cfg)
    return found


def validate(cfg: DictConfig, app: str = "train") -> None:
    """Raise one :class:`ConfigError` listing every problem of ``cfg`` for ``app``."""
    found = problems(cfg, app)
    if found:
        raise ConfigError("; ".join(found))
