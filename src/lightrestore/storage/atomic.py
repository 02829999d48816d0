"""Atomic file writes: a reader never sees a half-written file."""

from __future__ import annotations

import json
import math
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any


def _create_temp(path: Path) -> tuple[int, str]:
    """Create a new empty file beside ``path`` (a hidden ``.tmp`` name) and return its
    descriptor (read and write) and name. The mode is ``0o666`` less the umask, as for a
    file made by ``open()`` (``tempfile.mkstemp`` would make it ``0o600``)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = str(path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def atomic_write(
    path: str | os.PathLike, write: Callable[[IO], None], binary: bool = False
) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, flush it to disk, then
    rename it over ``path`` (``os.replace`` is atomic). On any error the temporary file
    is removed and ``path`` is left as it was. Binary files are opened for reading too
    (``w+b``), so ``write`` may read back what it wrote. The file's permissions follow
    the umask, as with ``open()``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path)
    try:
        with os.fdopen(
            fd, "w+b" if binary else "w", **({} if binary else {"encoding": "utf-8"})
        ) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text))


def finite_or_none(obj: Any) -> Any:
    """``obj`` with every NaN/Inf float (in dicts, lists and tuples) replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (RFC 8259): NaN and Inf, which JSON cannot express,
    become ``null``, so every JSON reader accepts the file."""
    text = json.dumps(finite_or_none(obj), indent=2, sort_keys=False, allow_nan=False)
    return atomic_write_text(path, text + "\n")
