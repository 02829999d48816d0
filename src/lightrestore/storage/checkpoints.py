"""Loading lightrestore checkpoints safely (``weights_only=True``) with clear errors.

Every load checks the checkpoint's integrity record (a damaged file is refused, see
:mod:`lightrestore.storage.integrity`) and its model weights (NaN/Inf refused); resuming
checks that the checkpoint was trained with this run's model, method and task.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from lightrestore.errors import UserError
from lightrestore.storage.integrity import damaged_sections, first_non_finite, read_record

log = logging.getLogger("lightrestore")

#: the config entries a resumed run must share with its checkpoint
RESUME_KEYS = (
    "model",
    "method._target_",
    "method.name",
    "task.name",
    "task.channels",
    "task.degradation",
)
_ABSENT = object()


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable, or not what the command needs."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Lightning checkpoint written by lightrestore (tensors and plain containers).

    Raises :class:`CheckpointError` when the file is missing, is not a torch
    checkpoint, was not written by lightrestore (no ``"lightrestore"`` record), is
    damaged (see :func:`verify_checkpoint`) or holds NaN/Inf weights.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint '{path}' does not exist: give the path of a .ckpt file "
            "(e.g. logs/<experiment>/runs/<run>/checkpoints/last.ckpt)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated zip archives, foreign objects
        raise unreadable(path, e) from e
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise CheckpointError(f"'{path}' is not a Lightning checkpoint (no state_dict)")
    info = ckpt.get("lightrestore")
    if not isinstance(info, dict) or not info.get("config"):
        raise CheckpointError(
            f"'{path}' was not written by lightrestore (it has no 'lightrestore' record with the "
            "run's config), so its model cannot be rebuilt: use a checkpoint from a "
            "lightrestore run folder"
        )
    verify_checkpoint(ckpt, path)
    return ckpt


def unreadable(path: str | os.PathLike, exc: BaseException) -> CheckpointError:
    """The error for a file ``torch.load`` cannot read."""
    return CheckpointError(
        f"cannot read checkpoint '{path}' ({type(exc).__name__}: {str(exc)[:200]}): "
        "is it a .ckpt written by lightrestore, and complete?"
    )


def verify_checkpoint(ckpt: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Check a loaded checkpoint against the integrity record stored in its file ``path``
    and check its model weights are finite; raise :class:`CheckpointError` if not. A file
    without a record (saved before records existed, or re-saved by hand) loads with a
    warning."""
    record, damaged = None, []
    try:
        record = read_record(path) if Path(path).is_file() else None
    except ValueError as e:  # the record is there but unreadable
        damaged = [f"integrity record ({e})"]
    if record is not None:
        damaged = damaged_sections(ckpt, record)
    if damaged:
        raise CheckpointError(
            f"checkpoint {path} is damaged: its contents do not match the digest saved with it "
            f"(digest mismatch in {', '.join(damaged)}; bytes changed on disk or in a copy): "
            "use another checkpoint, e.g. the run's other checkpoint in the same checkpoints/ "
            "folder or an earlier copy"
        )
    if record is None:
        log.warning(
            "checkpoint %s has no integrity digest (saved before digests existed, or re-saved "
            "by hand): it cannot be checked for damage",
            path,
        )
    bad = first_non_finite(ckpt.get("state_dict") or {})
    if bad is not None:
        raise CheckpointError(
            f"checkpoint {path} holds non-finite model weights ({bad[1]} in state_dict "
            f"'{bad[0]}'): training had diverged when it was saved; use an earlier checkpoint "
            "of that run, or train again (e.g. with a lower learning rate)"
        )


def check_method(ckpt: dict[str, Any], expected: str | None, path: str | Path = "") -> None:
    """Raise :class:`CheckpointError` unless the checkpoint's method is ``expected``."""
    from lightrestore.build import LEGACY_METHOD_NAMES

    info = ckpt["lightrestore"]
    method = LEGACY_METHOD_NAMES.get(info.get("method"), info.get("method"))
    if expected is not None and method != expected and info.get("method") != expected:
        raise CheckpointError(
            f"checkpoint {path} comes from method '{info.get('method')}' "
            f"(model {info.get('model')}), not '{expected}': pass a checkpoint of a "
            f"'{expected}' run, or drop the method expectation"
        )


def load_into(module: torch.nn.Module, state: Mapping[str, Any], strict: bool = True) -> str | None:
    """Load ``state`` into ``module``; ``None`` when it fits, else what does not fit (a
    shape mismatch, or with ``strict`` missing / unexpected keys), for an error message."""
    try:
        result = module.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        return (lines[1] if len(lines) > 1 else lines[0])[:300]
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if strict and (missing or unexpected):
        return (
            f"{len(missing)} missing keys (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]})"
        )
    return None


def load_weights(module: torch.nn.Module, ckpt: dict[str, Any], path: str | Path = "") -> None:
    """Load ``ckpt["state_dict"]`` into ``module`` strictly, with a readable mismatch error."""
    info = ckpt["lightrestore"]
    problem = load_into(module, ckpt["state_dict"])
    if problem:
        raise CheckpointError(
            f"checkpoint {path} (method '{info.get('method')}', model {info.get('model')}) does not "
            f"fit this {type(module).__name__}: {problem}. Evaluate it with the model it was "
            "trained with"
        )


# ---------------------------------------------------------------- resuming
def _select(cfg: Any, key: str) -> Any:
    """``cfg``'s entry at the dotted ``key`` as plain values (interpolations resolved),
    or ``_ABSENT``. ``cfg`` is an OmegaConf config or plain dicts."""
    from omegaconf import DictConfig, OmegaConf

    if isinstance(cfg, DictConfig):
        node = OmegaConf.select(cfg, key, default=_ABSENT)
        return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    node = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _ABSENT
        node = node[part]
    return node


def _flatten(key: str, value: Any) -> dict[str, Any]:
    """``{"model.width": 8, ...}`` for a nested dict at ``key``; a leaf as itself."""
    if isinstance(value, Mapping) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{key}.{k}", v))
        return out
    return {key: value}


def _show(value: Any) -> str:
    if value is _ABSENT:
        return "<absent>"
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def _network_keys(saved_cfg: Any, cfg: Any) -> list[str]:
    """``method.<name>`` for every sub-network a method's config names besides ``model``
    (already in :data:`RESUME_KEYS`): ``method.f_net``, ``method.generator``, ..."""
    keys: dict[str, None] = {}
    for c in (saved_cfg, cfg):
        method = _select(c, "method")
        if not isinstance(method, Mapping):
            continue
        for name, value in method.items():
            is_net = isinstance(value, Mapping) and "_target_" in value and not value.get("_partial_")
            if is_net and name not in ("model", "loss"):
                keys[f"method.{name}"] = None
    return list(keys)


def config_differences(saved_cfg: Any, cfg: Any) -> list[str]:
    """How the config a checkpoint was trained with (``saved_cfg``) differs from this
    run's (``cfg``) in what resuming needs to share (:data:`RESUME_KEYS` and the method's
    other sub-networks): one entry per
    differing key, ``"model.width=8 but this run has model.width=16"``. A checkpoint that
    records no ``method.name`` (saved before methods had names) is not checked on it."""
    out = []
    for key in (*RESUME_KEYS, *_network_keys(saved_cfg, cfg)):
        old, new = _select(saved_cfg, key), _select(cfg, key)
        if key == "method.name" and old is _ABSENT:
            continue
        if key == "method.name":  # renamed methods (SR runs were method 'sr')
            from lightrestore.build import LEGACY_METHOD_NAMES

            old = LEGACY_METHOD_NAMES.get(old, old)
        old_flat, new_flat = _flatten(key, old), _flatten(key, new)
        for k in dict.fromkeys([*old_flat, *new_flat]):
            a, b = old_flat.get(k, _ABSENT), new_flat.get(k, _ABSENT)
            if a != b:
                out.append(f"{k}={_show(a)} but this run has {k}={_show(b)}")
    return out


def read_saved_config(path: str | os.PathLike) -> dict[str, Any]:
    """The resolved config recorded in the checkpoint at ``path``, read without loading
    its tensors (``mmap``). Raises :class:`CheckpointError` when the file cannot be read
    or has no lightrestore record."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # mmap needs torch's zip format: try the whole file once
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # damaged, truncated, foreign objects
            raise unreadable(path, e) from e
    info = ckpt.get("lightrestore") if isinstance(ckpt, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("config"), dict):
        raise CheckpointError(
            f"checkpoint {path} has no 'lightrestore' record of the config it was trained with, "
            "so it cannot be checked against this run: resume from a checkpoint of a "
            "lightrestore run, or start a new run (ckpt_path=null)"
        )
    return info["config"]


def _resume_hint() -> str:
    return "resume with the same model/method/task, or start a new run (ckpt_path=null)"


def check_resume_compatible(path: str | os.PathLike, cfg: Any) -> None:
    """Raise :class:`CheckpointError` naming every differing key unless the checkpoint at
    ``path`` was trained with this run's model, method and task."""
    diffs = config_differences(read_saved_config(path), cfg)
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} was trained with {'; '.join(diffs)}: {_resume_hint()}"
        )


def newest_compatible(paths: Iterable[str | os.PathLike], cfg: Any) -> Path:
    """The newest (by modification time) of ``paths`` trained with this run's model,
    method and task. Newer ones skipped are logged, one line each, with why; when none
    fits, raises :class:`CheckpointError` naming the newest's differences."""
    ordered = sorted(map(Path, paths), key=lambda p: p.stat().st_mtime, reverse=True)
    reasons: list[str] = []
    for path in ordered:
        try:
            diffs = config_differences(read_saved_config(path), cfg)
        except CheckpointError as e:
            reasons.append(f"{path}, cannot be used ({str(e)[:300]})")
        else:
            if not diffs:
                return path
            reasons.append(f"{path}, was trained with {'; '.join(diffs)}")
        log.warning("ckpt_path=last: skipping %s", reasons[-1])
    if not reasons:
        raise CheckpointError("ckpt_path=last: no checkpoint to choose from")
    raise CheckpointError(
        f"ckpt_path=last: no earlier run of this task_name was trained with this run's model, "
        f"method and task; the newest, {reasons[0]}: {_resume_hint()}, or give "
        "ckpt_path=<file>"
    )
