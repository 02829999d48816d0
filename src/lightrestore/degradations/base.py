"""The contract every degradation family follows.

A degradation family (inpainting, pixel deletion, blur, noise, ...) has one scalar
*severity* whose range is cut into difficulty bins by a :class:`Ladder`: levels
``1..N`` are the training levels and level ``N+1`` is the unseen "extra credit"
level used only in testing (ODL §6.2). Levels are 1-based everywhere.

All operators are batched torch code with per-sample parameters:

* ``sample(levels, shape, generator)`` draws *every* random quantity of the
  corruption (severities, hole positions, deletion fields, noise) for a batch whose
  ``i``-th sample is at difficulty ``levels[i]``, on ``levels.device``;
* ``apply(x, params)`` is then deterministic, so a pair can be regenerated exactly
  and DL-Net can re-use the same parameters;
* ``operator(x, params)`` is the noiseless forward model ``W x`` where it is linear
  and known (masks, blur), as DL-Net's likelihood needs.

Images are float tensors ``(B, C, H, W)`` with values in ``[0, 1]``.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from lightrestore.errors import ConfigError, LevelError

Params = dict[str, Tensor]


@dataclass(frozen=True)
class Ladder:
    """Difficulty bins of one scalar severity.

    Args:
        bins: ``N`` training bins ``(lo, hi)``, easiest first.
        extra: the bin of the extra test level ``N+1``, or None for a ladder without one
            (e.g. classic single-setting super-resolution).
        name: what the severity is (``"hole side"``, ``"sigma"``, ...), for messages.
        unit: unit of the severity, for tables (``"px"``, ``"%"``, ...).
        integer: severities are integers drawn uniformly from ``lo..hi`` inclusive
            (hole sides); otherwise reals drawn uniformly from ``[lo, hi)``.
        labels: optional names of the levels ``1..N+1`` (LIRA's groups: mild, moderate,
            severe), shown before the range by :meth:`describe` and in results files.
    """

    bins: tuple[tuple[float, float], ...]
    extra: tuple[float, float] | None
    name: str = "severity"
    unit: str = ""
    integer: bool = False
    labels: tuple[str, ...] | None = None
    _tables: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        bins = tuple((float(lo), float(hi)) for lo, hi in self.bins)
        object.__setattr__(self, "bins", bins)
        if self.extra is not None:
            object.__setattr__(self, "extra", (float(self.extra[0]), float(self.extra[1])))
        if not bins:
            raise ConfigError("a ladder needs at least one training bin")
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(str(v) for v in self.labels))
            if len(self.labels) != len(self.all_bins()):
                raise ConfigError(
                    f"a ladder with {len(self.all_bins())} levels needs as many labels, got "
                    f"{len(self.labels)}"
                )
        for lo, hi in self.all_bins():
            if hi < lo:
                raise ConfigError(f"ladder bin ({lo}, {hi}) has hi < lo")

    @classmethod
    def from_config(
        cls, bins: Sequence[Sequence[float]], extra: Sequence[float] | None, **kw
    ) -> Ladder:
        """Build from plain lists, as Hydra passes them; ``extra`` None or ``[]``: no extra
        level (degradation constructors read None as "the default extra level", so
        configs write ``extra: []`` for none)."""
        extra_bin = None if extra is None or len(extra) == 0 else (extra[0], extra[1])
        return cls(bins=tuple((b[0], b[1]) for b in bins), extra=extra_bin, **kw)

    @property
    def n_levels(self) -> int:
        """Number of training levels ``N``."""
        return len(self.bins)

    @property
    def has_extra(self) -> bool:
        return self.extra is not None

    @property
    def extra_level(self) -> int | None:
        """The extra test level ``N+1`` (None when the ladder has none)."""
        return len(self.bins) + 1 if self.extra is not None else None

    @property
    def test_levels(self) -> list[int]:
        """All levels evaluated at test time: ``1..N+1`` (``1..N`` without an extra level)."""
        return list(range(1, len(self.all_bins()) + 1))

    @property
    def max_severity(self) -> float:
        return max(hi for _, hi in self.all_bins())

    def all_bins(self) -> tuple[tuple[float, float], ...]:
        """Bins of levels ``1..N+1`` (``1..N`` without an extra level)."""
        return (*self.bins, self.extra) if self.extra is not None else tuple(self.bins)

    def bounds(self, level: int) -> tuple[float, float]:
        """``(lo, hi)`` of one level (1-based, ``N+1`` allowed)."""
        self.check_levels([level])
        return self.all_bins()[level - 1]

    def describe(self, level: int) -> str:
        """The level's range (``"7-12px"``), after its label where it has one
        (``"mild 9-11"``)."""
        lo, hi = self.bounds(level)
        span = f"{lo:g}{self.unit}" if lo == hi else f"{lo:g}-{hi:g}{self.unit}"
        return f"{self.labels[level - 1]} {span}" if self.labels else span

    def check_levels(self, levels: Iterable[int] | Tensor, *, allow_extra: bool = True) -> None:
        """Raise :class:`LevelError` if any level is outside the ladder.

        Levels ``1..N`` are valid for training, ``N+1`` only where ``allow_extra``.
        """
        if isinstance(levels, Tensor):
            levels = levels.detach().cpu().flatten().tolist()
        top = self.extra_level if allow_extra and self.has_extra else self.n_levels
        bad = sorted({int(v) for v in levels if not 1 <= int(v) <= top})
        if bad:
            if not self.has_extra:
                where = f"1..{self.n_levels} (this ladder has no extra level)"
            elif allow_extra:
                where = (
                    f"1..{self.n_levels} for training and {self.extra_level} (extra) for testing"
                )
            else:
                where = f"1..{self.n_levels} (level {self.extra_level} is test-only)"
            raise LevelError(
                f"level {bad[0] if len(bad) == 1 else bad} is outside the {self.name} ladder: "
                f"valid levels are {where}"
            )

    def level_of(self, severity: float) -> int:
        """The first level whose bin contains ``severity`` (``N+1`` included).

        Raises :class:`LevelError` when the severity lies outside every bin.
        """
        for i, (lo, hi) in enumerate(self.all_bins()):
            if lo <= severity <= hi:
                return i + 1
        lo, hi = self.bins[0][0], self.all_bins()[-1][1]
        raise LevelError(f"{self.name} {severity:g} lies outside the ladder's range {lo:g}..{hi:g}")

    def table(self, device: torch.device | str) -> Tensor:
        """``(L, 2)`` float32 tensor of ``(lo, hi)`` per level (L = N+1, or N), cached per device."""
        key = str(device)
        t = self._tables.get(key)
        if t is None:
            t = torch.tensor(self.all_bins(), dtype=torch.float32).to(device)
            self._tables[key] = t
        return t

    def draw(self, levels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Draw one severity per sample, uniformly within its level's bin.

        Args:
            levels: ``(B,)`` integer levels in ``1..N+1`` (not checked here: this is
                the hot path; validate user input with :meth:`check_levels`).
            generator: a generator on ``levels.device`` (or None for the global one).

        Returns:
            ``(B,)`` float32 severities on ``levels.device``; integers (as floats)
            when the ladder is ``integer``.
        """
        bounds = self.table(levels.device)[levels.long() - 1]
        lo, hi = bounds[:, 0], bounds[:, 1]
        u = torch.rand(levels.shape, generator=generator, device=levels.device)
        if self.integer:
            return torch.minimum(torch.floor(lo + u * (hi - lo + 1)), hi)
        return lo + u * (hi - lo)


class Degradation(abc.ABC):
    """One degradation family with a difficulty ladder.

    Subclasses implement :meth:`_sample` and :meth:`apply`, and :meth:`operator`
    where the forward model is linear and known.

    Attributes:
        name: short name (``"inpaint"``, ``"blur"``, ...).
        ladder: the difficulty bins of the family's severity.
        fixed_keys: the keys :meth:`sample` accepts in ``fixed`` (besides
            ``"severity"``); used by the fixated baselines.
    """

    name: str = "degradation"
    fixed_keys: frozenset[str] = frozenset()

    def __init__(self, ladder: Ladder) -> None:
        self.ladder = ladder

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        levels: Tensor,
        shape: Sequence[int],
        generator: torch.Generator | None = None,
        fixed: Mapping[str, object] | None = None,
    ) -> Params:
        """Draw every random quantity of the corruption for a batch.

        Args:
            levels: ``(B,)`` long tensor of levels in ``1..N+1``; the parameters are
                created on its device.
            shape: ``(C, H, W)`` of the images the parameters will be applied to.
            generator: a ``torch.Generator`` on ``levels.device``, or None.
            fixed: optional overrides, e.g. ``{"severity": 5, "centered": True}``:
                every sample then gets this severity instead of one drawn from its
                bin (the fixated baselines).

        Returns:
            A dict of tensors with leading dimension ``B``. It always holds
            ``"level"`` ``(B,)`` and ``"severity"`` ``(B,)``.
        """
        fixed = dict(fixed or {})
        unknown = set(fixed) - {"severity"} - set(self.fixed_keys)
        if unknown:
            allowed = sorted({"severity", *self.fixed_keys})
            raise ConfigError(
                f"{self.name}: unknown fixed setting(s) {sorted(unknown)}; allowed: {allowed}"
            )
        levels = levels.long()
        c, h, w = (int(v) for v in shape[-3:])
        severity = fixed.pop("severity", None)
        params = self._sample(levels, (c, h, w), generator, severity, fixed)
        params["level"] = levels
        return params

    def _constant(self, levels: Tensor, value: float) -> Tensor:
        return torch.full(levels.shape, float(value), device=levels.device)

    def _severity(self, levels: Tensor, generator, severity: float | None) -> Tensor:
        """Per-sample severities: drawn from the ladder, or the fixed value."""
        if severity is None:
            return self.ladder.draw(levels, generator)
        return self._constant(levels, severity)

    @abc.abstractmethod
    def _sample(
        self,
        levels: Tensor,
        shape: tuple[int, int, int],
        generator: torch.Generator | None,
        severity: float | None,
        fixed: dict,
    ) -> Params:
        """Family-specific sampling; must set ``"severity"``."""

    # ------------------------------------------------------------------ applying
    @abc.abstractmethod
    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Corrupt ``x`` ``(B, C, H, W)`` in ``[0, 1]`` with ``params``; same shape."""

    def operator(self, x: Tensor, params: Params) -> Tensor:
        """The noiseless linear forward model ``W x`` (DL-Net's likelihood)."""
        raise NotImplementedError(f"{self.name} has no known linear forward model")

    def __call__(
        self, x: Tensor, levels: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Params]:
        """Sample parameters for ``levels`` and apply them: ``(degraded, params)``."""
        params = self.sample(levels, x.shape[1:], generator)
        return self.apply(x, params), params

    def __repr__(self) -> str:
        bins = ", ".join(self.ladder.describe(i) for i in self.ladder.test_levels)
        return f"{type(self).__name__}(levels: {bins})"
