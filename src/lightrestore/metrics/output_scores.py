"""Per-level metrics keyed by *test set × output*: the reusable evaluator of every method."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from torch import Tensor, nn

from lightrestore.metrics.level_metrics import LevelMetrics

Levels = dict[int, dict[str, float]]


class OutputScores(nn.Module):
    """One :class:`LevelMetrics` per (test set, output), DDP-synced by torchmetrics.

    Args:
        make: ``make() -> LevelMetrics`` (the method's measuring convention).
        outputs: the output names a method scores (``restored``, ``input``, ``after_F``...).
        test_sets: the test sets (``default`` and the task's variants).

    ``update(test_set, outputs, clean, level, region=None)``: ``outputs`` maps every name to
    a ``(B, C, H, W)`` tensor in [0, 1]; ``clean`` is the target, ``level`` ``(B,)``;
    ``region`` ``(B, 1, H, W)`` in {0, 1} adds the region-only measures to every output.
    ``compute()`` returns ``{test set: {output: {level: {"psnr", "ssim", "l1", "l2",
    "count"}}}}`` for the pairs seen; ``reset()`` clears every metric.
    """

    def __init__(
        self,
        make: Callable[[], LevelMetrics],
        outputs: Sequence[str],
        test_sets: Sequence[str],
    ) -> None:
        super().__init__()
        if not outputs or len(set(outputs)) != len(outputs):
            raise ValueError(f"scored outputs must be distinct and non-empty, got {list(outputs)}")
        self.outputs, self.test_sets = list(outputs), list(test_sets)
        self.metrics = nn.ModuleDict(
            {self._key(t, o): make() for t in self.test_sets for o in self.outputs}
        )

    @staticmethod
    def _key(test_set: str, output: str) -> str:
        return f"{test_set}/{output}".replace(".", "_")

    def update(
        self,
        test_set: str,
        outputs: Mapping[str, Tensor],
        clean: Tensor,
        level: Tensor,
        region: Tensor | None = None,
    ) -> None:
        if set(outputs) != set(self.outputs):
            raise ValueError(
                f"the method returned outputs {sorted(outputs)} but declares {self.outputs} "
                "(scored_outputs): return exactly the declared ones"
            )
        for name, pred in outputs.items():
            self.metrics[self._key(test_set, name)].update(pred, clean, level, region)

    def compute(self) -> dict[str, dict[str, Levels]]:
        out: dict[str, dict[str, Levels]] = {}
        for t in self.test_sets:
            by_output = {o: self.metrics[self._key(t, o)].compute() for o in self.outputs}
            if any(by_output.values()):
                out[t] = by_output
        return out

    def reset(self) -> None:
        for m in self.metrics.values():
            m.reset()
