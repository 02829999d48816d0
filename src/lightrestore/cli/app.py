"""Running a Hydra app with the project's error reporting."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from lightrestore.config import config_dir
from lightrestore.errors import find_user_error


def report_user_errors(prog: str, fn: Callable[[Any], Any], cfg: Any) -> None:
    """Run ``fn(cfg)``; a user error (anywhere in the exception chain) is printed as one
    line ``<prog>: error: <message>`` and exits with status 2; other errors propagate."""
    try:
        fn(cfg)
    except Exception as exc:
        user = find_user_error(exc)
        if user is None:
            raise
        print(f"{prog}: error: {user}", file=sys.stderr, flush=True)
        sys.exit(2)


def run_app(config_name: str, task_fn: Callable[[Any], None]) -> None:
    """``hydra.main`` on the package's ``conf/<config_name>.yaml`` with ``task_fn``."""
    import hydra

    hydra.main(version_base="1.3", config_path=str(config_dir()), config_name=config_name)(
        task_fn
    )()
