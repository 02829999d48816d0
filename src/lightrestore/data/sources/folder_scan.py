"""Finding and reading the files of a folder source (no pixels are decoded here).

Recursive, sorted, hidden-file-free listings of a folder; the image files among them;
image headers (sizes) read in order with failures collected; list / partition files
found relative to the working directory or the data root and read as text lines; the
data root checked; and :func:`_examples`, the short file lists used in messages.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from lightrestore.data.images import read_size
from lightrestore.errors import ConfigError, DataError

_MAX_EXAMPLES = 5


def _examples(items: Sequence[str], limit: int = _MAX_EXAMPLES) -> str:
    """``'a', 'b', 'c'`` (at most ``limit`` of them, then ``...``)."""
    shown = ", ".join(f"'{x}'" for x in items[:limit])
    return shown + (", ..." if len(items) > limit else "")


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk_files(folder: Path) -> list[str]:
    """Relative POSIX paths of all non-hidden files under ``folder``, sorted.

    Follows symlinked folders (datasets are often linked in) but visits each real
    folder once, so link loops terminate. Hidden files and folders (``.name``,
    including macOS ``._*`` resource forks) are skipped.
    """
    found: list[str] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not _is_hidden(d)]
        rel_dir = Path(dirpath).relative_to(folder)
        for f in filenames:
            if not _is_hidden(f):
                found.append((rel_dir / f).as_posix())
    return sorted(found)


def _scan_images(folder: Path, extensions: frozenset[str], what: str) -> list[str]:
    """Sorted relative paths of the image files under ``folder`` (recursive).

    Raises:
        DataError: ``folder`` holds no file with one of ``extensions``.
    """
    files = _walk_files(folder)
    images = [f for f in files if os.path.splitext(f)[1].lower() in extensions]
    if images:
        return images
    others = f" (it holds {len(files)} other files, e.g. {_examples(files, 3)})" if files else ""
    raise DataError(
        f"no image files in {what} '{folder}'{others}; searched recursively for "
        f"{', '.join(sorted(extensions))}. Point data.source.root at a folder of images, "
        f"set data.source.extensions, or use data=embedded for the bundled photos."
    )


def _read_headers(
    paths: Sequence[str], load_size: int | None, stop_after: int | None = None
) -> tuple[list[int], list[tuple[int, int]], list[int]]:
    """Read image headers in order: ``(ok indices, their (h, w) sizes, failed indices)``.

    Stops once ``stop_after`` headers have been read successfully (``None``: read all).
    """
    ok: list[int] = []
    sizes: list[tuple[int, int]] = []
    failed: list[int] = []
    for i, path in enumerate(paths):
        if stop_after is not None and len(ok) >= stop_after:
            break
        try:
            sizes.append(read_size(path, load_size))
            ok.append(i)
        except DataError:
            failed.append(i)
    return ok, sizes, failed


def _resolve_aux_file(path: str | os.PathLike, root: Path, key: str, what: str) -> Path:
    """Find a list / partition file: as given (``~`` expanded), else relative to ``root``."""
    p = Path(path).expanduser()
    if p.is_file():
        return p.resolve()
    if not p.is_absolute() and (root / p).is_file():
        return (root / p).resolve()
    also = "" if p.is_absolute() else f" (also looked in '{root}')"
    raise DataError(
        f"{what} '{p}' does not exist{also}: set data.source.{key} to an existing text file, "
        f"or leave it unset."
    )


def _read_lines(path: Path) -> list[tuple[int, str]]:
    """``(line number, stripped text)`` of the non-blank, non-``#`` lines of a text file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read '{path}' ({exc}): make it a UTF-8 text file.") from exc
    lines = [(n, raw.strip()) for n, raw in enumerate(text.splitlines(), start=1)]
    return [(n, s) for n, s in lines if s and not s.startswith("#")]


def _check_root(root: str | os.PathLike | None) -> Path:
    """Absolute path of an existing data folder, else :class:`DataError` naming the fix."""
    if root is None or os.fspath(root) == "":
        raise ConfigError(
            "data.source.root is not set: set data.source.root=<folder of images>, or use "
            "data=embedded for the bundled photos."
        )
    path = Path(root).expanduser().absolute()
    if not path.exists():
        raise DataError(
            f"data folder '{path}' does not exist: set data.source.root=<folder of images>, "
            f"or use data=embedded for the bundled photos."
        )
    if not path.is_dir():
        raise DataError(
            f"data folder '{path}' is a file, not a folder: set data.source.root=<folder of "
            f"images> (use data.source.train_list/val_list/test_list for lists of files)."
        )
    return path
