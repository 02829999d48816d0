"""User-facing errors.

Every error a user can fix by changing a path, a file or a config value is a
:class:`UserError`. The CLI prints its message (one paragraph that names the fix)
and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by the user's input, whose message says how to fix it."""


class DataError(UserError):
    """Missing folders, undecodable images, images too small for the crop."""


class LevelError(UserError, ValueError):
    """A difficulty level outside the degradation's ladder."""


class ConfigError(UserError, ValueError):
    """A config value that cannot work (wrong length, wrong method, ...)."""


def find_user_error(exc: BaseException) -> UserError | None:
    """Return the first :class:`UserError` in ``exc``'s cause/context chain.

    Hydra's ``instantiate`` and some Lightning paths wrap exceptions; the CLI uses
    this to report the underlying user error instead of the wrapper.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, UserError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None
