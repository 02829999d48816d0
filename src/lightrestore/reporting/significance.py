"""Statistics over seeds: mean ± standard error, and the paired t-test between two policies.

The ODL paper reports 20 trials and a paired t-test. Here a trial is a seed: the seed
fixes the evaluation pairs (``seed`` seeds the test set, checked through the runs'
``test_set.checksum``), so two policies trained with the same seed are scored on the same
test pairs and their per-seed values form the pairs of the test.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

NEEDS_TWO = "n/a (needs ≥ 2 seeds)"


class PairingError(ValueError):
    """Two runs of the same seed were not scored on the same test pairs."""


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (sample std with ddof=1, over sqrt(n)); the SE
    is NaN for fewer than two values (and both are NaN for none)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


@dataclass(frozen=True)
class PairedTest:
    """A two-sided paired t-test of ``a - b`` over ``seeds`` (t and p are None for n < 2)."""

    seeds: tuple[int, ...]
    mean_diff: float
    se_diff: float
    t: float | None
    p: float | None

    @property
    def n(self) -> int:
        return len(self.seeds)


def paired_ttest(a: Mapping[int, float], b: Mapping[int, float]) -> PairedTest:
    """Paired t-test (:func:`scipy.stats.ttest_rel`, two-sided) of ``a`` against ``b``,
    two ``{seed: value}`` maps, over the seeds both hold."""
    seeds = tuple(sorted(set(a) & set(b)))
    xa = [float(a[s]) for s in seeds]
    xb = [float(b[s]) for s in seeds]
    mean, se = mean_se([x - y for x, y in zip(xa, xb)])
    if len(seeds) < 2:
        return PairedTest(seeds, mean, se, None, None)
    from scipy.stats import ttest_rel

    with warnings.catch_warnings():  # identical pairs: t = 0/0, scipy warns and says nan
        warnings.simplefilter("ignore", RuntimeWarning)
        res = ttest_rel(xa, xb)
    return PairedTest(seeds, mean, se, float(res.statistic), float(res.pvalue))


def check_same_test_pairs(
    a: Mapping[int, str | None], b: Mapping[int, str | None], names: tuple[str, str] = ("A", "B")
) -> None:
    """Refuse to pair two policies (``{seed: test-set checksum}`` each) unless, for every
    seed both hold, both runs recorded the same test-set checksum."""
    for seed in sorted(set(a) & set(b)):
        ca, cb = a[seed], b[seed]
        if not ca or not cb:
            raise PairingError(
                f"seed {seed}: no test-set checksum recorded for "
                f"{names[0] if not ca else names[1]}; cannot check the test pairs are the same"
            )
        if ca != cb:
            raise PairingError(
                f"seed {seed}: test-set checksums differ ({names[0]} `{ca[:12]}`, "
                f"{names[1]} `{cb[:12]}`): not the same test pairs"
            )
