"""The Trainer's profiler when none is asked for."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from lightning.pytorch.profilers import PassThroughProfiler

_NOTHING = nullcontext()


class NoProfiler(PassThroughProfiler):
    """Lightning's default profiler (``PassThroughProfiler``: records nothing) without its
    per-call cost: Lightning wraps every hook of every callback and of the module, and the
    loops' steps, in ``profiler.profile(name)`` (~80 calls a training step with the run's
    callbacks), and the default builds a generator-based context manager for each. Here
    it is one shared no-op context. ``trainer.profiler=simple|advanced|pytorch`` still
    profiles as usual."""

    def profile(self, action_name: str) -> AbstractContextManager[None]:  # type: ignore[override]
        return _NOTHING
