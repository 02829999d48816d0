"""The steady-state step benchmark (benchmarks/step_overhead.py): its verdict rule on
hand-worked spreads, and one tiny run of its machinery (the figures themselves belong to
``make bench``, not to tests)."""

from __future__ import annotations

import sys

import pytest
from helpers import REPO

sys.path.insert(0, str(REPO))  # benchmarks/ sits beside the package, not inside it
from benchmarks import step_overhead  # noqa: E402
from benchmarks.step_overhead import Spread, _verdict, per_step  # noqa: E402


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1.02, 1.05, 1.08], True),  # the whole spread within the target
        ([1.05, 1.12, 1.20], None),  # straddles it: no verdict
        ([1.11, 1.15, 1.30], False),  # the whole spread beyond it
    ],
)
def test_a_verdict_only_when_the_spread_is_on_one_side(values, expected):
    spread = Spread.of(values)
    assert (spread.lo, spread.mid, spread.hi) == (values[0], values[1], values[2])
    assert _verdict(spread, 1.10)[0] is expected


def test_per_step_is_the_median_step_on_the_cpu_and_the_mean_on_a_gpu(monkeypatch):
    marks = [0.0, 0.010, 0.020, 0.050, 0.060]  # steps of 10, 10, 30, 10 ms
    monkeypatch.setattr(step_overhead.torch.cuda, "is_available", lambda: False)
    assert per_step(marks) == pytest.approx(0.010)
    monkeypatch.setattr(step_overhead.torch.cuda, "is_available", lambda: True)
    assert per_step(marks) == pytest.approx(0.015)  # asynchronous steps: the window's mean


def test_a_tiny_run_reports_every_row(monkeypatch, one_thread):
    monkeypatch.setitem(step_overhead.WINDOWS, "short", (2, 4))
    monkeypatch.setitem(step_overhead.REGIMES, "short",
                        (*step_overhead.REGIMES["short"][:-1], "data.train_samples_per_epoch=48",
                         "data.val_per_level=2"))  # fmt: skip
    rows = step_overhead.run_regime("short", repeats=1)
    assert [r.id for r in rows] == [
        "P1-short", "P1-short-bare", "P1-short-floor", "P1-short-start", "P1-short-eval"
    ]  # fmt: skip
    assert all(r.value is not None and r.value > 0 for r in rows)
    assert "steps 2-4, batch 8" in rows[0].note


def test_paired_steps_divide_each_lightning_step_by_the_hand_step_beside_it(monkeypatch):
    # step ends and hand-step ends at hand-worked times: window steps 2..4; step 2 only
    # starts the pairing; step 3 took 2.5 - 1.5 = 1.0 s and its hand step 0.5 s (ratio 2),
    # step 4 took 4.0 - 3.0 = 1.0 s and its hand step 1.0 s (ratio 1)
    times = iter([1.0, 1.5, 2.5, 3.0, 4.0, 5.0])
    monkeypatch.setattr(step_overhead.time, "perf_counter", lambda: next(times))
    hand_calls: list[int] = []
    clock = step_overhead.WindowClock(2, 4, hand=lambda: hand_calls.append(1))
    for n in (2, 3, 4):
        clock.tick(n)
    assert len(hand_calls) == 3
    assert clock.light == [1.0, 1.0] and clock.hand_steps == [0.5, 1.0]
    assert clock.ratio() == pytest.approx(1.5)  # the median of 2.0 and 1.0
    assert clock.per_step() == pytest.approx(1.0)


def test_the_profile_reports_each_per_step_entry(monkeypatch, one_thread, capsys):
    monkeypatch.setitem(step_overhead.WINDOWS, "short", (2, 4))
    monkeypatch.setitem(step_overhead.REGIMES, "short",
                        (*step_overhead.REGIMES["short"][:-1], "data.train_samples_per_epoch=48"))  # fmt: skip
    assert step_overhead.main(["--profile", "--regime", "short"]) == []
    out = capsys.readouterr().out
    assert "short steps 1-4, run's callbacks, under cProfile" in out
    # once a step over the 4 steps: the bar's batch-end hook and the method's loss logging
    assert "| progress bar on_train_batch_end | 1.00 |" in out
    assert "| Method.log_train_loss | 1.00 |" in out
    assert out.count("\n| ") == len(step_overhead.PROFILED) + 1  # the header and each entry
