"""Seeds and significance in the sweep summary: mean ± SE over seeds, the paired t-test,
and the Table 1 script's SEEDS."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO
from scipy import stats
from test_report_evaluate import _fake_run

from lightrestore.reporting.report import find_runs, main, summary_markdown
from lightrestore.reporting.significance import (
    NEEDS_TWO,
    PairingError,
    check_same_test_pairs,
    mean_se,
    paired_ttest,
)

# per-seed PSNR of levels 1, 2 and the extra level 3; training-level means per seed:
# ondemand 29, 30, 31; staged 28, 28, 28 -> differences 1, 2, 3
ONDEMAND = {1: [30, 28, 20], 2: [31, 29, 21], 3: [32, 30, 22]}
STAGED = {1: [29, 27, 19], 2: [28, 28, 20], 3: [27, 29, 21]}


def _seed_run(root: Path, name: str, curriculum: str, seed: int | None, psnr: list[float],
              checksum: str | None = "same", overrides: list[str] | None = None) -> Path:  # fmt: skip
    if overrides is None:
        overrides = ["experiment=ondemand_inpaint", f"curriculum={curriculum}", f"seed={seed}"]
    d = _fake_run(root, name, overrides, psnr)
    doc = json.loads((d / "results.json").read_text())
    doc.update(task="inpaint", curriculum=curriculum, seed=seed,
               test_set={"checksum": None if checksum is None else f"{checksum}-{seed}", "per_level": 4})  # fmt: skip
    (d / "results.json").write_text(json.dumps(doc))
    return d


def _sweep(root: Path, staged_checksum: dict[int, str] | None = None) -> None:
    i = 0
    for seed in (1, 2, 3):
        _seed_run(root, str(i), "ondemand", seed, ONDEMAND[seed])
        _seed_run(root, str(i + 1), "staged", seed, STAGED[seed],
                  (staged_checksum or {}).get(seed, "same"))  # fmt: skip
        i += 2
    _seed_run(root, str(i), "fixated_hard", 1, [25, 24, 23])  # one seed only


def _row(md: str, first: str, second: str | None = None) -> str:
    rows = [ln for ln in md.splitlines() if ln.startswith(f"| {first} |")]
    if second is not None:
        rows = [ln for ln in rows if ln.startswith(f"| {first} | {second} |")]
    assert len(rows) == 1, (first, second, md)
    return rows[0]


def test_mean_se_by_hand():
    mean, se = mean_se([1, 2, 3, 6])  # deviations -2 -1 0 3: var 14/3, SE sqrt(14/3/4)
    assert mean == 3 and se == pytest.approx(math.sqrt(7 / 6), rel=1e-12)
    assert mean_se([5.0])[0] == 5.0 and math.isnan(mean_se([5.0])[1])
    assert all(math.isnan(v) for v in mean_se([]))


def test_paired_ttest_by_hand_and_against_scipy():
    a, b = {1: 29.0, 2: 30.0, 3: 31.0, 9: 40.0}, {1: 28.0, 2: 28.0, 3: 28.0}  # seed 9: unpaired
    res = paired_ttest(a, b)
    # differences 1, 2, 3: mean 2, sample std 1, SE 1/sqrt(3), t = 2 sqrt(3), df 2;
    # Student's t with 2 df: two-sided p = 1 - t / sqrt(2 + t^2) = 1 - sqrt(12/14)
    assert res.seeds == (1, 2, 3) and res.n == 3
    assert res.mean_diff == pytest.approx(2.0) and res.se_diff == pytest.approx(1 / math.sqrt(3))
    assert res.t == pytest.approx(2 * math.sqrt(3), rel=1e-12)
    assert res.p == pytest.approx(1 - math.sqrt(6 / 7), rel=1e-9)
    ref = stats.ttest_rel([29.0, 30.0, 31.0], [28.0, 28.0, 28.0])
    assert res.t == pytest.approx(ref.statistic) and res.p == pytest.approx(ref.pvalue)
    one = paired_ttest({1: 29.0}, {1: 28.0, 2: 27.0})
    assert one.n == 1 and one.t is None and one.p is None and one.mean_diff == 1.0


def test_seeds_aggregate_into_mean_se_rows_and_a_paired_test(tmp_path):
    _sweep(tmp_path)
    runs = find_runs([tmp_path])
    assert {r.policy for r in runs} == {"ondemand", "staged", "fixated_hard"}
    md = summary_markdown(runs)
    # L1 30,31,32 -> 31 ± 1/sqrt(3); training means 29,30,31 -> 30 ± 0.58; spread 2 each
    assert _row(md.split("## Paired")[0], "ondemand") == (
        "| ondemand | 31.00 ± 0.58 | 29.00 ± 0.58 | 21.00 ± 0.58 | 30.00 ± 0.58 | 2.00 "
        "| 0.5000 | 0.5000 |  | 3 |"
    )
    # staged: training means 28, 28, 28 -> SE 0; spreads 2, 0, 2 -> 1.33
    assert _row(md.split("## Paired")[0], "staged") == (
        "| staged | 28.00 ± 0.58 | 28.00 ± 0.58 | 20.00 ± 0.58 | 28.00 ± 0.00 | 1.33 "
        "| 0.5000 | 0.5000 |  | 3 |"
    )
    assert _row(md.split("## Paired")[0], "fixated_hard").endswith("| 24.50 | 1.00 | 0.5000 | 0.5000 |  | 1 |")  # fmt: skip
    assert "## Paired t-test (per seed, mean PSNR levels 1..N)" in md
    assert "same test pairs" in md and "20 trials" in md and "against ondemand" in md
    p = 1 - math.sqrt(6 / 7)  # see test_paired_ttest_by_hand_and_against_scipy
    assert _row(md, "ondemand", "staged") == f"| ondemand | staged | 3 | 2.00 ± 0.58 | 3.464 | {p:.4g} |"  # fmt: skip
    assert _row(md, "ondemand", "fixated_hard") == f"| ondemand | fixated_hard | 1 | 4.50 | n/a | {NEEDS_TWO} |"  # fmt: skip
    assert "staged | fixated_hard" not in md  # against ondemand only
    assert main([str(tmp_path)]) == 0
    seeds = list(csv.DictReader((tmp_path / "summary_seeds.csv").open()))
    mean = next(r for r in seeds if r["policy"] == "ondemand" and r["level"] == "mean_1-N"
                and r["variant"] == "default")  # fmt: skip
    assert (mean["n"], mean["seeds"], float(mean["psnr_mean"])) == ("3", "1 2 3", 30.0)
    assert float(mean["psnr_se"]) == pytest.approx(1 / math.sqrt(3))
    tt = list(csv.DictReader((tmp_path / "summary_ttest.csv").open()))
    row = next(r for r in tt if r["policy_b"] == "staged" and r["level"] == "mean_1-N")
    assert float(row["p"]) == pytest.approx(stats.ttest_rel([29, 30, 31], [28, 28, 28]).pvalue)
    lv1 = next(r for r in tt if r["policy_b"] == "staged" and r["level"] == "1")  # 30,31,32 vs 29,28,27
    assert float(lv1["t"]) == pytest.approx(stats.ttest_rel([30, 31, 32], [29, 28, 27]).statistic)
    # every run's own values stay in summary.csv (long format, one row per run and level)
    assert len(list(csv.DictReader((tmp_path / "summary.csv").open()))) == 7 * 3


def test_every_pair_without_ondemand(tmp_path):
    for seed in (1, 2):
        for j, cur in enumerate(("staged", "cumulative", "hard_mining")):
            _seed_run(tmp_path, f"{seed}{j}", cur, seed, [30 - j + seed, 28, 20])
    md = summary_markdown(find_runs([tmp_path]))
    assert "every pair of policies" in md
    for a, b in [("staged", "cumulative"), ("staged", "hard_mining"), ("cumulative", "hard_mining")]:
        assert _row(md, a, b).startswith(f"| {a} | {b} | 2 |")


def test_refuses_to_pair_runs_scored_on_different_test_pairs(tmp_path):
    with pytest.raises(PairingError, match="seed 2: test-set checksums differ"):
        check_same_test_pairs({1: "a", 2: "b"}, {1: "a", 2: "c", 3: "d"})
    with pytest.raises(PairingError, match="no test-set checksum"):
        check_same_test_pairs({1: "a"}, {1: None})
    check_same_test_pairs({1: "a", 2: "b"}, {1: "a", 3: "c"})  # seed 3 is not paired
    _sweep(tmp_path, staged_checksum={2: "another"})
    md = summary_markdown(find_runs([tmp_path]))
    row = _row(md, "ondemand", "staged")
    assert "refused: seed 2: test-set checksums differ" in row and "0.07" not in row
    assert _row(md, "ondemand", "fixated_hard").endswith(f"| {NEEDS_TWO} |")  # still compared
    assert main([str(tmp_path)]) == 0
    tt = list(csv.DictReader((tmp_path / "summary_ttest.csv").open()))
    assert [r["note"][:8] for r in tt if r["policy_b"] == "staged"] == ["refused:"]


GOLDEN = """# golden

## PSNR (dB) per level, test set

| run | L1 | L2 | L3 | L4 | L5 | L6 (extra) | mean 1-N | spread 1-N | SSIM mean | SSIM extra | images |
|---|---|---|---|---|---|---|---|---|---|---|---|
| ondemand | 30.00 | 28.00 | 26.00 | 24.00 | 22.00 | 20.00 | 26.00 | 8.00 | 0.5000 | 0.5000 |  |
| staged | 29.50 | 27.00 | 26.25 | 24.00 | 21.00 | 19.00 | 25.55 | 8.50 | 0.5000 | 0.5000 |  |

## PSNR (dB) per level, test variant: centered

| run | L1 | L2 | L3 | L4 | L5 | L6 (extra) | mean 1-N | spread 1-N | SSIM mean | SSIM extra | images |
|---|---|---|---|---|---|---|---|---|---|---|---|
| ondemand | 29.00 | 27.00 | 25.00 | 23.00 | 21.00 | 19.00 | 25.00 | 8.00 | 0.5000 | 0.5000 |  |
| staged | 28.50 | 26.00 | 25.25 | 23.00 | 20.00 | 18.00 | 24.55 | 8.50 | 0.5000 | 0.5000 |  |
"""


def test_one_seed_per_policy_leaves_the_summary_as_before(tmp_path):
    """The summary of a single-seed sweep, byte for byte as the report wrote it before seeds
    were aggregated (one row per run, no t-test, no extra files)."""
    for i, (cur, ps) in enumerate([("ondemand", [30, 28, 26, 24, 22, 20]),
                                   ("staged", [29.5, 27, 26.25, 24, 21, 19])]):  # fmt: skip
        d = _seed_run(tmp_path, str(i), cur, 7, ps,
                      overrides=["experiment=ondemand_inpaint", f"curriculum={cur}", "seed=7"])  # fmt: skip
        doc = json.loads((d / "results.json").read_text())
        doc["variants"] = {"centered": {"levels": {k: dict(v, psnr=v["psnr"] - 1)
                                                   for k, v in doc["levels"].items()}}}  # fmt: skip
        (d / "results.json").write_text(json.dumps(doc))
    assert summary_markdown(find_runs([tmp_path]), "golden") == GOLDEN
    assert main([str(tmp_path)]) == 0
    assert not (tmp_path / "summary_seeds.csv").exists()
    assert not (tmp_path / "summary_ttest.csv").exists()


def test_runs_differing_only_in_their_results_seed_are_one_policy(tmp_path):
    # separate runs, no differing overrides: the label comes from results.json
    for i, seed in enumerate((1, 2)):
        _seed_run(tmp_path, f"a{i}", "ondemand", seed, ONDEMAND[seed], overrides=["x=1"])
    md = summary_markdown(find_runs([tmp_path]))
    assert _row(md, "ondemand").endswith("| 29.50 ± 0.50 | 2.00 | 0.5000 | 0.5000 |  | 2 |")
    # the same seed twice is not a second trial: one row per run, as before
    _seed_run(tmp_path / "b", "0", "ondemand", 1, ONDEMAND[1], overrides=["x=1"])
    _seed_run(tmp_path / "b", "1", "ondemand", 1, ONDEMAND[2], overrides=["x=1"])
    md = summary_markdown(find_runs([tmp_path / "b"]))
    assert "±" not in md and "Paired" not in md
    assert "| ondemand [0] | 30.00 |" in md and "| ondemand [1] | 31.00 |" in md


@pytest.mark.slow
def test_ondemand_table1_script_with_seeds(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, WANDB_MODE="offline", SEEDS="2",
               POLICIES="ondemand,rigid_joint", EPOCHS_PER_STAGE="1")  # fmt: skip
    out = subprocess.run(["bash", str(REPO / "experiments" / "ondemand_table1.sh"), "inpaint",
                          "debug=smoke", f"paths.log_dir={tmp_path}"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "4/4 runs complete" in out.stdout
    sweep = next((tmp_path / "table1_inpaint" / "multiruns").iterdir())
    seeds = sorted(json.loads(p.read_text())["seed"] for p in sweep.glob("*/results.json"))
    assert seeds == [1, 1, 2, 2]
    md = (sweep / "summary.md").read_text()
    first_table = md.split("## PSNR")[1]  # test set, restored
    assert _row(first_table, "ondemand").endswith("| 2 |")  # n = 2 seeds
    assert _row(first_table, "rigid_joint").endswith("| 2 |")
    row = _row(md, "ondemand", "rigid_joint")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "2" and "±" in cells[3]
    float(cells[5])  # a p-value (not "n/a")
    assert (sweep / "summary_ttest.csv").is_file() and (sweep / "summary_seeds.csv").is_file()
