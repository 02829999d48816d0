"""Haze by the atmospheric scattering model (LIRA's new distortion).

``I = J * t + A * (1 - t)`` with transmission ``t = exp(-beta * d)`` (Koschmieder's
model, as in dehazing benchmarks): ``J`` the clean image, ``A`` the global airlight,
``beta`` the scattering coefficient and ``d`` the scene depth.

LIRA draws ``beta`` in [0.05, 0.25] but gives no depth (nor airlight). Our documented
choice (ours): a synthetic depth growing linearly from ``near`` at the bottom row to
``far`` at the top row (a ground plane seen from eye level, farther towards the horizon),
the same for every image; defaults ``near = 2``, ``far = 10``, so ``t`` spans
``exp(-0.25 * 10) = 0.08`` .. ``exp(-0.05 * 2) = 0.90`` over LIRA's beta range. The
airlight is drawn per sample uniformly in [0.8, 1.0] (bright sky, ours).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.errors import ConfigError

#: Defaults of the synthetic depth (scene units; only ``beta * d`` matters).
NEAR, FAR = 2.0, 10.0
#: Default airlight range.
AIRLIGHT = (0.8, 1.0)


def synthetic_depth(
    h: int,
    w: int,
    near: float = NEAR,
    far: float = FAR,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """``(1, 1, H, W)`` depth map: ``far`` on the top row, ``near`` on the bottom row.

    The depth is linear in the row index and constant along each row (``H = 1``: ``far``).
    """
    rows = torch.linspace(float(far), float(near), int(h), device=device, dtype=dtype)
    return rows.view(1, 1, -1, 1).expand(1, 1, int(h), int(w))


def haze(x: Tensor, beta: Tensor, airlight: Tensor, depth: Tensor) -> Tensor:
    """``x * t + A * (1 - t)`` with ``t = exp(-beta * depth)``.

    Args:
        x: ``(B, C, H, W)`` clean images in [0, 1].
        beta: ``(B,)`` scattering coefficients (>= 0; 0 leaves ``x`` unchanged).
        airlight: ``(B,)`` airlight in [0, 1] (grey: the same for every channel).
        depth: ``(1, 1, H, W)`` or ``(B, 1, H, W)`` depths (>= 0), e.g.
            :func:`synthetic_depth`.

    Returns:
        ``(B, C, H, W)`` hazy images in [0, 1], ``x``'s dtype.
    """
    b = x.shape[0]
    t = torch.exp(-beta.to(x.dtype).view(b, 1, 1, 1) * depth.to(x.dtype))
    a = airlight.to(x.dtype).view(b, 1, 1, 1)
    return x * t + a * (1.0 - t)


def check_range(name: str, value: Sequence[float], lo: float, hi: float) -> tuple[float, float]:
    """``value`` as a ``(low, high)`` pair within ``[lo, hi]``, or a :class:`ConfigError`."""
    if value is None or len(value) != 2 or not lo <= float(value[0]) <= float(value[1]) <= hi:
        raise ConfigError(
            f"{name} must be [low, high] with {lo:g} <= low <= high <= {hi:g}, got {value}"
        )
    return float(value[0]), float(value[1])


class Haze(Degradation):
    """Homogeneous haze over a synthetic depth (see the module doc).

    Default levels (beta): 0.05-0.09, 0.09-0.13, 0.13-0.17, 0.17-0.21, 0.21-0.25 (LIRA's
    range in five bins); no extra level by default.

    Args:
        bins: training bins of beta ``[[lo, hi], ...]`` (>= 0).
        extra: the extra test level's bin, or None / ``[]`` for none.
        airlight: ``[low, high]`` within [0, 1]; each sample's airlight is uniform in it.
        near, far: the synthetic depth at the bottom and top rows (``0 <= near <= far``).

    Params: ``severity`` ``(B,)`` (= beta), ``beta`` ``(B,)``, ``airlight`` ``(B,)`` float.
    """

    name = "haze"

    def __init__(
        self,
        bins: Sequence[Sequence[float]] | None = None,
        extra: Sequence[float] | None = None,
        airlight: Sequence[float] = AIRLIGHT,
        near: float = NEAR,
        far: float = FAR,
    ) -> None:
        ladder = Ladder.from_config(
            bins
            if bins is not None
            else [[0.05, 0.09], [0.09, 0.13], [0.13, 0.17], [0.17, 0.21], [0.21, 0.25]],
            extra if extra is not None else [],
            name="haze beta",
        )
        if min(lo for lo, _ in ladder.all_bins()) < 0:
            raise ConfigError("haze beta bins must be >= 0")
        super().__init__(ladder)
        self.airlight = check_range("haze airlight", airlight, 0.0, 1.0)
        if not 0.0 <= float(near) <= float(far):
            raise ConfigError(f"haze depth needs 0 <= near <= far, got near={near}, far={far}")
        self.near, self.far = float(near), float(far)

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        beta = self._severity(levels, generator, severity)
        lo, hi = self.airlight
        u = torch.rand(levels.shape, generator=generator, device=levels.device)
        return {"severity": beta, "beta": beta, "airlight": lo + u * (hi - lo)}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Hazy ``x`` ``(B, C, H, W)`` in [0, 1]."""
        h, w = x.shape[-2:]
        depth = synthetic_depth(h, w, self.near, self.far, x.device, x.dtype)
        return haze(x, params["beta"], params["airlight"], depth)
