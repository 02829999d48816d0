"""``RealPairs``: the "degradation" of a paired data set (GoPro's real motion blur).

The degraded images come from files (:mod:`lightrestore.data.sources.paired_folder`), so
there is nothing to sample or apply: one level, no extra level, no forward model. It
gives the task a ladder (one level, named after what the data holds) so per-level results,
reports and the rest of the core treat paired data like any other task.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.errors import ConfigError


class RealPairs(Degradation):
    """One level, the real degradation of a paired data set.

    Args:
        what: what the degraded images hold, for tables (``"real motion blur"``).
    """

    name = "real"

    def __init__(self, what: str = "real degradation") -> None:
        super().__init__(Ladder(bins=((0.0, 0.0),), extra=None, name=str(what)))
        self.what = str(what)

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        return {"severity": torch.zeros(levels.shape, device=levels.device)}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        raise ConfigError(
            f"this task's images come degraded ({self.what}) from a paired data set: it "
            "cannot corrupt clean images itself. Use data=gopro (a paired source) with it, "
            "or a synthetic task (e.g. task=motion_blur) for clean images"
        )
