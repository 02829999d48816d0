"""Blended distortions: Gaussian blur -> AWGN -> JPEG (RL-Restore's and LIRA's data).

Facts from RL-Restore's ``data/train/generate_train.m`` and ``noise_combination.m``
(code), which LIRA follows (paper §4.1):

* **Factors, in this order**: Gaussian blur (``fspecial('gaussian', 21, sigma)``,
  ``imfilter(..., 'replicate')``), additive white Gaussian noise (``imnoise(...,
  'gaussian', 0, (sigma/255)^2)``, clipped to [0, 1]) and JPEG (``imwrite(..., 'Quality',
  q)``, read back as 8-bit).
* **Sub-levels**: each factor's range is cut into 10 sub-levels on the grids blur sigma
  ``0:0.5:5``, noise sigma ``0:5:50`` (0-255 scale) and JPEG quality
  ``[100 80 60 50 40 35 30 25 20 15 10]``; sub-level ``k`` (1..10) draws its value
  uniformly between ``grid[k-1]`` and ``grid[k]`` (1-based ``grid(k)`` .. ``grid(k+1)``
  in MATLAB).
* **Groups**: a sample's sub-level triple ``(k, m, n)`` (blur, noise, JPEG) has the
  combined index ``k + m + n - 2`` (1..28). ``noise_combination(10, lo, hi)`` lists every
  ordered triple whose index lies in ``lo..hi`` once and the generator picks one row
  uniformly: within a group every such triple is equally likely. RL-Restore's groups:
  mild 9-11, moderate 12-17 (the training set), severe 18-20.

Here a level is a range of the combined index (default: the three groups, ``bins
[[9, 11], [12, 17], [18, 20]]``); the same class with other bins gives ODL-style ladders
over the combined index. Sampling is vectorised: the 1000 triples are enumerated once
and, per level, a padded table of the triples in its bin is cached per device; each
sample draws a row uniformly below its level's count.

``mode="single"`` is LIRA's fork stage ("individual degradation factor is randomly
added"): level 1 is blur alone, 2 noise alone, 3 JPEG alone, at a sub-level drawn
uniformly in 1..10 (the severity); the other factors are off (sigma 0, no JPEG).

``extra_factors`` adds LIRA's new distortions (``"haze"``, ``"darkness"``) with values
drawn uniformly over their whole ranges, independently of the level (the groups stay
defined by the three base factors). They are applied *before* the base chain (ours:
scene and exposure effects precede the camera's blur, noise and compression; LIRA does
not say). ``old_fraction`` switches them off for a random fraction of the samples (a
joint-training baseline mixing old- and new-task samples); ``fixed={"new_task": 0}``
switches them off for every sample (the old task's test set), ``{"new_task": 1}`` on.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.degradations.blur import gaussian_kernels, separable_filter
from lightrestore.degradations.darkness import darken
from lightrestore.degradations.haze import AIRLIGHT, FAR, NEAR, check_range, haze, synthetic_depth
from lightrestore.degradations.jpeg import BACKENDS, jpeg_compress
from lightrestore.errors import ConfigError

#: Sub-level grids (RL-Restore's ``generate_train.m``): sub-level k spans grid[k-1]..grid[k].
BLUR_GRID = tuple(0.5 * i for i in range(11))
NOISE_GRID = tuple(5.0 * i for i in range(11))
JPEG_GRID = (100.0, 80.0, 60.0, 50.0, 40.0, 35.0, 30.0, 25.0, 20.0, 15.0, 10.0)
#: Number of sub-levels per factor, and the range of the combined index k + m + n - 2.
N_SUB = 10
MIN_INDEX, MAX_INDEX = 1, 3 * N_SUB - 2
#: ``fspecial('gaussian', 21, sigma)``: 21 taps, radius 10.
BLUR_RADIUS = 10
#: The base factors in the order they are applied.
BASE_FACTORS = ("blur", "noise", "jpeg")
NEW_FACTORS = ("haze", "darkness")
#: Full ranges of the new factors (LIRA §4.1; the airlight and depth are ours, see haze.py).
HAZE_DEFAULTS = {"beta": (0.05, 0.25), "airlight": AIRLIGHT, "near": NEAR, "far": FAR}
DARKNESS_DEFAULTS = {"gamma": (1.5, 2.5)}

_TRIPLES_CACHE: dict[str, Tensor] = {}


def all_triples(device: torch.device | str = "cpu") -> Tensor:
    """``(1000, 3)`` long: every sub-level triple ``(k, m, n)`` in ``1..10``, cached per device."""
    key = str(device)
    t = _TRIPLES_CACHE.get(key)
    if t is None:
        rng = range(1, N_SUB + 1)
        t = torch.tensor(list(itertools.product(rng, rng, rng)), dtype=torch.long).to(device)
        _TRIPLES_CACHE[key] = t
    return t


def combined_index(triples: Tensor) -> Tensor:
    """``k + m + n - 2`` of ``(..., 3)`` sub-level triples."""
    return triples.sum(-1) - 2


def triple_table(ranges: Sequence[tuple[float, float]], device) -> tuple[Tensor, Tensor]:
    """Per range ``(lo, hi)`` of the combined index, the ordered triples whose index lies in it.

    Returns:
        ``counts`` ``(L,)`` long and ``table`` ``(L, max_count, 3)`` long (rows past a
        level's count repeat its first triple; they are never drawn).
    """
    triples = all_triples("cpu")
    idx = combined_index(triples)
    rows = [triples[(idx >= lo) & (idx <= hi)] for lo, hi in ranges]
    width = max(len(r) for r in rows)
    table = torch.stack([torch.cat([r, r[:1].expand(width - len(r), 3)]) for r in rows])
    counts = torch.tensor([len(r) for r in rows], dtype=torch.long)
    return counts.to(device), table.to(device)


def gaussian_blur21(x: Tensor, sigma: Tensor) -> Tensor:
    """``imfilter(x, fspecial('gaussian', 21, sigma), 'replicate')`` per sample.

    Args:
        x: ``(B, C, H, W)``.
        sigma: ``(B,)`` widths in px; 0 (or below 1e-2) gives the identity (a unit
            impulse, no NaN).

    Returns:
        ``(B, C, H, W)``: the 2-D kernel ``exp(-(u^2 + v^2) / 2 sigma^2)``, normalised, is
        the outer product of two normalised 1-D kernels, applied as two grouped 1-D
        convolutions with replicate borders.
    """
    k = gaussian_kernels(sigma, BLUR_RADIUS)
    return separable_filter(x, k, k, "replicate")


_GRID_CACHE: dict[tuple, Tensor] = {}


def _grid_values(grid: tuple[float, ...], sub: Tensor, u: Tensor) -> Tensor:
    """``grid[k-1] + u * (grid[k] - grid[k-1])`` per sample (``sub`` = k in 1..10)."""
    key = (grid, str(sub.device))
    g = _GRID_CACHE.get(key)
    if g is None:
        g = _GRID_CACHE[key] = torch.tensor(grid, dtype=torch.float32).to(sub.device)
    k = sub.clamp(1, N_SUB)
    lo, hi = g[k - 1], g[k]
    return lo + u * (hi - lo)


class BlendedDistortions(Degradation):
    """LIRA / RL-Restore blended distortions (see the module doc).

    Args:
        bins: levels as ranges ``[lo, hi]`` of the combined index (integers within
            1..28); level ``i`` draws uniformly among the ordered triples whose index lies
            in ``bins[i]``. Ignored in ``mode="single"``.
        extra: the extra test level's range of the combined index, or ``[]`` / None for
            none. Ignored in ``mode="single"``.
        names: display names of the levels (stored as ``level_names``), or None; one per
            level (extra included). ``mode="single"`` names its levels
            ``["blur", "noise", "jpeg"]`` whatever is given.
        mode: ``"blended"`` (all three factors) or ``"single"`` (one factor per sample:
            level 1 blur, 2 noise, 3 JPEG, severity = its sub-level 1..10).
        extra_factors: a subset of ``["haze", "darkness"]``, applied in this order before
            the base chain; values drawn uniformly over their ranges.
        haze: overrides of the haze ranges: ``beta`` ``[lo, hi]`` (default [0.05, 0.25]),
            ``airlight`` ``[lo, hi]`` ([0.8, 1.0]), ``near``, ``far`` (the synthetic depth,
            2 and 10; see :mod:`.haze`).
        darkness: overrides of the darkness range: ``gamma`` ``[lo, hi]`` ([1.5, 2.5]).
        jpeg_backend: ``"kornia"`` (batched, on the device) or ``"pillow"`` (exact codec,
            CPU loop); see :func:`~lightrestore.degradations.jpeg.jpeg_compress`.
        old_fraction: probability in [0, 1] that a sample carries no extra factor (an
            old-task sample); 0 when there are none.

    ``sample(..., fixed={"severity": s})``: every sample gets a triple of combined index
    exactly ``s`` (uniform among them; single mode: sub-level ``s``).
    ``fixed={"new_task": 0 | 1}``: extra factors off / on for every sample.

    Params (leading dim ``B``):
        ``level`` long; ``severity`` float (the combined index; single mode: the
        sub-level); ``sublevels`` ``(B, 3)`` long (blur, noise, JPEG sub-levels; 0 = factor
        off); ``blur_sigma`` (px); ``noise_sigma`` (0-255 scale); ``noise`` ``(B, C, H, W)``
        float32, already scaled by ``noise_sigma / 255``; ``jpeg_quality`` (integers
        1..100; 100 where JPEG is off); ``jpeg_on`` float (1.0 / 0.0: JPEG applied or
        skipped); ``new_task`` float32 (1.0 where the sample carries the extra factors);
        ``haze_beta``, ``haze_airlight`` when haze is configured (beta 0 where off);
        ``darkness_gamma`` when darkness is configured (1 where off); ``factor`` long
        (single mode: 0 blur, 1 noise, 2 JPEG). Where a factor is off its value is the
        neutral one (sigma 0, beta 0, gamma 1; JPEG skipped through ``jpeg_on``), so
        :meth:`apply` reads only the params.
    """

    name = "blended"
    fixed_keys = frozenset({"new_task"})

    def __init__(
        self,
        bins: Sequence[Sequence[float]] = ((9, 11), (12, 17), (18, 20)),
        extra: Sequence[float] | None = (),
        names: Sequence[str] | None = ("mild", "moderate", "severe"),
        mode: str = "blended",
        extra_factors: Sequence[str] = (),
        haze: Mapping[str, object] | None = None,
        darkness: Mapping[str, object] | None = None,
        jpeg_backend: str = "kornia",
        old_fraction: float = 0.0,
    ) -> None:
        if mode not in ("blended", "single"):
            raise ConfigError(f"mode must be 'blended' or 'single', got {mode!r}")
        self.mode = mode
        extra_factors = [str(f) for f in extra_factors or ()]
        bad = [f for f in extra_factors if f not in NEW_FACTORS]
        if bad or len(set(extra_factors)) != len(extra_factors):
            raise ConfigError(
                f"extra_factors must be distinct names from {list(NEW_FACTORS)}, got {extra_factors}"
            )
        if mode == "single" and extra_factors:
            raise ConfigError(
                "mode='single' (the fork stage) takes no extra_factors: set extra_factors: []"
            )
        if jpeg_backend not in BACKENDS:
            raise ConfigError(f"jpeg_backend must be one of {BACKENDS}, got {jpeg_backend!r}")
        if not 0.0 <= float(old_fraction) <= 1.0:
            raise ConfigError(f"old_fraction must lie in [0, 1], got {old_fraction}")
        if mode == "single":
            ladder = Ladder.from_config(
                [[1, N_SUB]] * 3, [], name="single-factor sub-level", integer=True
            )
            names = list(BASE_FACTORS)
        else:
            ladder = Ladder.from_config(
                [list(b) for b in bins],
                list(extra or []),
                name="combined level index",
                integer=True,
            )
            for lo, hi in ladder.all_bins():
                if lo != int(lo) or hi != int(hi) or lo < MIN_INDEX or hi > MAX_INDEX:
                    raise ConfigError(
                        f"blended bins are integer ranges of the combined index within "
                        f"{MIN_INDEX}..{MAX_INDEX}, got [{lo:g}, {hi:g}]"
                    )
        if names is not None:
            names = [str(n) for n in names]
            if len(names) != len(ladder.test_levels):
                raise ConfigError(
                    f"names has {len(names)} entries for {len(ladder.test_levels)} levels: "
                    "give one name per level (extra included) or names: null"
                )
            ladder = dataclasses.replace(ladder, labels=tuple(names))
        super().__init__(ladder)
        self.level_names: list[str] | None = names
        self.new_factors: list[str] = extra_factors
        self.factors: list[str] = [*extra_factors, *BASE_FACTORS]
        self.jpeg_backend = jpeg_backend
        self.old_fraction = float(old_fraction)
        self.haze = self._ranges("haze", haze, HAZE_DEFAULTS)
        self.darkness = self._ranges("darkness", darkness, DARKNESS_DEFAULTS)
        self._tables: dict[tuple, tuple[Tensor, Tensor]] = {}

    @staticmethod
    def _ranges(what: str, given: Mapping | None, defaults: Mapping) -> dict:
        given = dict(given or {})
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ConfigError(f"{what}: unknown key(s) {unknown}; allowed: {sorted(defaults)}")
        out = {**defaults, **given}
        if what == "haze":
            out["beta"] = check_range("haze beta", out["beta"], 0.0, float("inf"))
            out["airlight"] = check_range("haze airlight", out["airlight"], 0.0, 1.0)
            out["near"], out["far"] = float(out["near"]), float(out["far"])
            if not 0.0 <= out["near"] <= out["far"]:
                raise ConfigError(
                    f"haze depth needs 0 <= near <= far, got {out['near']}, {out['far']}"
                )
        else:
            out["gamma"] = check_range("darkness gamma", out["gamma"], 1e-6, float("inf"))
        return out

    # ------------------------------------------------------------------ sampling
    def _table(self, key, ranges, device) -> tuple[Tensor, Tensor]:
        full = (key, str(device))
        t = self._tables.get(full)
        if t is None:
            t = triple_table(ranges, device)
            self._tables[full] = t
        return t

    def _draw_triples(self, levels: Tensor, generator, severity) -> Tensor:
        """``(B, 3)`` long sub-level triples (blended mode)."""
        dev = levels.device
        if severity is None:
            counts, table = self._table("levels", self.ladder.all_bins(), dev)
            rows = levels - 1
        else:
            s = float(severity)
            if s != int(s) or not MIN_INDEX <= s <= MAX_INDEX:
                raise ConfigError(
                    f"a fixed blended severity is a combined index, an integer in "
                    f"{MIN_INDEX}..{MAX_INDEX}; got {severity}"
                )
            counts, table = self._table(("fixed", int(s)), [(s, s)], dev)
            rows = torch.zeros_like(levels)
        u = torch.rand(levels.shape, generator=generator, device=dev)
        n = counts[rows]
        j = torch.minimum((u * n).long(), n - 1)
        return table[rows, j]

    def _sample(self, levels, shape, generator, severity, fixed) -> Params:
        c, h, w = shape
        dev = levels.device
        b = levels.shape[0]
        params: Params = {}
        if self.mode == "single":
            if severity is not None and (
                float(severity) != int(severity) or not 1 <= severity <= N_SUB
            ):
                raise ConfigError(
                    f"a fixed single-mode severity is a sub-level, an integer in 1..{N_SUB}; "
                    f"got {severity}"
                )
            sub = self._severity(levels, generator, severity).long()
            factor = (levels - 1).clamp(0, 2)
            sublevels = torch.zeros(b, 3, dtype=torch.long, device=dev)
            sublevels.scatter_(1, factor.view(-1, 1), sub.view(-1, 1))
            params["severity"] = sub.float()
            params["factor"] = factor
        else:
            sublevels = self._draw_triples(levels, generator, severity)
            params["severity"] = combined_index(sublevels).float()
        on = sublevels > 0
        u = torch.rand((b, 3), generator=generator, device=dev)
        blur = _grid_values(BLUR_GRID, sublevels[:, 0], u[:, 0])
        noise_sigma = _grid_values(NOISE_GRID, sublevels[:, 1], u[:, 1])
        quality = _grid_values(JPEG_GRID, sublevels[:, 2], u[:, 2]).round()
        params["sublevels"] = sublevels
        params["blur_sigma"] = torch.where(on[:, 0], blur, 0.0)
        params["noise_sigma"] = torch.where(on[:, 1], noise_sigma, 0.0)
        params["jpeg_quality"] = torch.where(on[:, 2], quality, 100.0)
        params["jpeg_on"] = on[:, 2].float()
        noise = torch.randn((b, c, h, w), generator=generator, device=dev)
        params["noise"] = noise * (params["noise_sigma"] / 255.0).view(-1, 1, 1, 1)
        params.update(self._sample_new(levels, generator, fixed))
        return params

    def _sample_new(self, levels: Tensor, generator, fixed: dict) -> Params:
        """``new_task`` and the extra factors' values (neutral where a sample has none)."""
        dev = levels.device
        b = levels.shape[0]
        if not self.new_factors:
            if "new_task" in fixed and _flag(fixed["new_task"]):
                raise ConfigError(
                    "fixed new_task=1 needs extra_factors (haze / darkness); this task has none"
                )
            return {"new_task": torch.zeros(b, device=dev)}
        u = torch.rand((b, 4), generator=generator, device=dev)
        if "new_task" in fixed:
            new = torch.full((b,), float(_flag(fixed["new_task"])), device=dev)
        else:
            new = (u[:, 0] >= self.old_fraction).float()
        out: Params = {"new_task": new}
        on = new > 0
        if "haze" in self.new_factors:
            (blo, bhi), (alo, ahi) = self.haze["beta"], self.haze["airlight"]
            out["haze_beta"] = torch.where(on, blo + u[:, 1] * (bhi - blo), 0.0)
            out["haze_airlight"] = alo + u[:, 2] * (ahi - alo)
        if "darkness" in self.new_factors:
            glo, ghi = self.darkness["gamma"]
            out["darkness_gamma"] = torch.where(on, glo + u[:, 3] * (ghi - glo), 1.0)
        return out

    # ------------------------------------------------------------------ applying
    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Corrupt ``x`` ``(B, C, H, W)`` in [0, 1]: extra factors, blur, noise, JPEG.

        Returns ``(B, C, H, W)`` in [0, 1], ``x``'s dtype (8-bit values where JPEG ran).
        """
        y = x
        for f in self.new_factors:
            if f == "haze":
                h, w = x.shape[-2:]
                depth = synthetic_depth(
                    h, w, self.haze["near"], self.haze["far"], x.device, x.dtype
                )
                y = haze(y, params["haze_beta"], params["haze_airlight"], depth)
            else:
                y = darken(y, params["darkness_gamma"])
        y = gaussian_blur21(y, params["blur_sigma"])
        y = (y + params["noise"].to(y.dtype)).clamp(0.0, 1.0)
        z = jpeg_compress(y, params["jpeg_quality"], self.jpeg_backend)
        return torch.where(params["jpeg_on"].view(-1, 1, 1, 1) > 0, z, y)

    def __repr__(self) -> str:
        base = super().__repr__()
        return f"{base[:-1]}, mode={self.mode}, factors={self.factors})"


def _flag(value: object) -> bool:
    """A fixed ``new_task`` value: 0 / 1 / False / True."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and float(value) in (0.0, 1.0):
        return bool(value)
    raise ConfigError(f"fixed new_task must be 0 or 1 (or false / true), got {value!r}")
