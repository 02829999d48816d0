"""Aggregate the runs of a sweep into one table: ``python -m lightrestore.report DIR...``.

Finds every run folder below the given folders (``results.json``, or a
``.hydra/config.yaml`` without results for a run that did not finish), labels each run
by what differs between them (the curriculum for ODL's Table 1 sweep), and writes
``summary.md``, ``summary.csv`` and ``psnr_vs_level.png`` into the first folder (or
``--out``). Hydra multiruns call it at the end through :class:`MultirunSummary`.

Test settings (DL-Net's Tables 2/3/9): a test variant whose definition in results.json
(``data.test_variants``) fixes a ``severity`` is a test setting, scored at one level. Each
(task, protocol) group with settings gets a "Test settings" table: one row per run (per
policy, the mean over its seeds), one column per setting then ``levels 1-N`` (the mean over
the default test set's training levels, not the extra level); cells ``ℓ1 / ℓ2 / PSNR`` over
the missing pixels when every row has them (inpainting / interpolation), else over the
whole image; ``summary_settings.csv`` holds them in long format.

Seeds: runs whose labels differ only by a ``seed=<n>`` override (or, without differing
overrides, whose results differ only in ``seed``) are one policy. When a policy has two
seeds or more, its (task, protocol) table shows one row per policy: mean ± standard error
over the seeds (SE = sample std / sqrt(n)) and ``n``, followed by a paired t-test of the
per-seed mean PSNR over levels 1..N (each policy against ``ondemand`` when present, else
every pair; same seed = same test pairs, checked through ``test_set.checksum``), and
``summary_seeds.csv`` / ``summary_ttest.csv`` are written too. With one seed per policy
the output is unchanged (one row per run, no t-test).

Lifelong runs (LIRA and its baselines: outputs ``old_task`` and ``new_task``) get Table 4's
old / new task table (:mod:`lightrestore.reporting.lifelong`) and ``summary_lifelong.csv``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightrestore.reporting.lifelong import is_lifelong, lifelong_block, lifelong_csv
from lightrestore.reporting.significance import (
    NEEDS_TWO,
    PairingError,
    check_same_test_pairs,
    mean_se,
    paired_ttest,
)
from lightrestore.storage.atomic import atomic_write_text

log = logging.getLogger(__name__)

METRICS = ("psnr", "ssim", "l1", "l2")


class NoRunsError(FileNotFoundError):
    """The folders given to the report hold no run."""


@dataclass
class Run:
    """One run folder: its results document (None if it did not finish)."""

    path: Path
    doc: dict[str, Any] | None
    overrides: list[str] = field(default_factory=list)
    label: str = ""
    policy: str = ""  # the label without its seed: the runs of one policy over seeds

    @property
    def complete(self) -> bool:
        return self.doc is not None

    @property
    def task(self) -> str:
        """The task the results measure (``results.json``'s ``task``)."""
        return str((self.doc or {}).get("task") or "")

    @property
    def group(self) -> tuple[str, str]:
        """Runs are comparable in one table only with the same task and protocol (the
        metric space: all channels vs the Y channel with a border, ...)."""
        return self.task, str((self.doc or {}).get("protocol") or "")

    @property
    def seed(self) -> int | None:
        """The run's seed: ``results.json``'s ``seed``, else its ``seed=<n>`` override."""
        value = (self.doc or {}).get("seed")
        if value is None:
            value = next((o.partition("=")[2] for o in self.overrides if _is_seed(o)), None)
        try:
            return None if value is None else int(value)
        except (TypeError, ValueError):
            return None

    @property
    def checksum(self) -> str | None:
        """The checksum of the run's (default) test set."""
        return ((self.doc or {}).get("test_set") or {}).get("checksum")


def _overrides(run_dir: Path) -> list[str]:
    f = run_dir / ".hydra" / "overrides.yaml"
    if not f.is_file():
        return []
    from omegaconf import OmegaConf

    return [_canonical(str(o)) for o in OmegaConf.load(f)]


#: Hydra's multirun writes a job's overrides back in Python's spelling (``x=False``)
_LITERALS = {"False": "false", "True": "true", "None": "null"}


def _canonical(override: str) -> str:
    """``key=False`` / ``True`` / ``None`` as a command line spells them (``false``, ...),
    so a run and a multirun job given the same override share it."""
    key, sep, value = override.partition("=")
    return f"{key}{sep}{_LITERALS.get(value, value)}" if sep else override


def find_runs(roots: Sequence[str | Path]) -> list[Run]:
    """Every run folder below ``roots`` (sorted by path)."""
    found: dict[Path, Run] = {}
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f"'{root}' does not exist: give a run or multirun folder")
        for res in root.rglob("results.json"):
            run_dir = res.parent
            try:
                doc = json.loads(res.read_text())
            except (OSError, json.JSONDecodeError) as e:
                log.warning("unreadable %s: %s", res, e)
                doc = None
            found[run_dir] = Run(run_dir, doc, _overrides(run_dir))
        for cfg in root.rglob(".hydra/config.yaml"):
            run_dir = cfg.parent.parent
            if run_dir not in found and (run_dir / ".hydra" / "overrides.yaml").is_file():
                found[run_dir] = Run(run_dir, None, _overrides(run_dir))
    runs = sorted(found.values(), key=lambda r: str(r.path))
    _label(runs)
    return runs


#: overrides left out of the labels when the runs stay apart without them: a sweep's own
#: ``task_name`` and the checkpoint it fine-tunes from (DL-Net's tables report a reference
#: run together with the sweep fine-tuned from it)
_QUIET = ("task_name", "init_from")


def _label(runs: list[Run]) -> None:
    """Label runs by the overrides that differ between them (else their folder name)."""
    if not runs:
        return
    common = set(runs[0].overrides)
    for r in runs[1:]:
        common &= set(r.overrides)
    differing = [[o for o in r.overrides if o not in common and not o.startswith("paths.")]
                 for r in runs]  # fmt: skip
    names = [_names(r, parts) for r, parts in zip(runs, differing)]
    kept = [[o for o in parts if _key(o) not in _QUIET] for parts in differing]
    quiet = [_names(r, parts) for r, parts in zip(runs, kept)]
    if all(k or not d for k, d in zip(kept, differing)) and all(
        len({n[i] for n in quiet}) == len({n[i] for n in names}) for i in (0, 1)
    ):  # nothing merged and no label emptied: the quiet overrides told no runs apart
        names = quiet
    for r, (label, policy) in zip(runs, names):
        r.label, r.policy = label, policy
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.label] = seen.get(r.label, 0) + 1
    for r in runs:
        if seen[r.label] > 1:
            r.label = f"{r.label} [{r.path.name}]"


def _names(run: Run, differing: list[str]) -> tuple[str, str]:
    """The run's label and policy (the label without its seed) from its differing overrides."""
    label = ",".join(_short(o, run.doc) for o in differing)
    policy = ",".join(_short(o, run.doc) for o in differing if not _is_seed(o))
    doc = run.doc
    fallback = str(doc.get("curriculum") or doc.get("experiment") or "") if doc else ""
    return label or fallback or run.path.name, policy or fallback or run.path.name


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")


def _is_seed(override: str) -> bool:
    return _key(override) == "seed"


def _short(override: str, doc: dict[str, Any] | None) -> str:
    """A readable label part: the curriculum's name; for an evaluated checkpoint
    (``ckpt=<path>``) the experiment and curriculum it was trained with."""
    key, _, value = override.partition("=")
    if key in ("curriculum", "experiment"):
        return value
    if key == "ckpt" and doc:
        trained = doc.get("experiment") or Path(value).parents[1].name
        return f"{trained} ({doc['curriculum']})" if doc.get("curriculum") else str(trained)
    return override


def _num(value: Any) -> float:
    """A metric from results.json: ``null`` (a non-finite value, which strict JSON cannot
    hold) reads as NaN."""
    return float("nan") if value is None else float(value)


def _levels(
    doc: dict[str, Any], variant: str | None = None, output: str = "restored"
) -> dict[str, Any]:
    """The per-level rows of ``output`` on the test set ``variant`` (None: the default)."""
    if output != "restored":
        table = (doc.get("outputs") or {}).get(output, {}).get(variant or "default", {})
    else:
        table = doc if variant is None else doc.get("variants", {}).get(variant, {})
    return table.get("levels", {})


def _extra_outputs(runs: Sequence[Run]) -> list[str]:
    """The scored outputs besides ``restored`` and ``input`` (e.g. ``after_F``, ``G_1``)."""
    names = {o for r in runs for o in (r.doc.get("outputs") or {}) if o != "input"}
    return sorted(names)


def summary_markdown(runs: Sequence[Run], title: str = "") -> str:
    """Policy × level PSNR table (+ SSIM means), one block per test variant."""
    done = [r for r in runs if r.complete]
    lines = [f"# {title or 'Summary'}", ""]
    groups = groups_of(done)
    for (task, protocol), members in groups.items():
        if len(groups) > 1:  # never one table across tasks or metric spaces
            lines += [f"## task: {task or 'unknown'}", "", f"Protocol: {protocol}", ""]
        variants = [None] + sorted({v for r in members for v in (r.doc.get("variants") or {})})
        heading = "###" if len(groups) > 1 else "##"
        policies = seed_policies(members)
        if not _over_seeds(policies):  # one seed per policy: one row per run
            for variant in variants:
                lines += _psnr_block(members, variant, heading)
            lines += _missing_block(members, heading)  # inpainting / interpolation
            for output in _extra_outputs(members):  # whatever else the methods scored
                for variant in variants:
                    lines += _psnr_block(members, variant, heading, output)
            lines += _settings_block(members, heading)  # DL-Net's method x test setting
            lines += lifelong_block(members, heading)  # LIRA's old / new task table
            continue
        lines += [
            "Rows are policies: mean ± standard error over seeds (SE = sample std / sqrt(n), "
            "n = number of seeds); every run's own values are in summary.csv.",
            "",
        ]
        for variant in variants:
            lines += _seed_block(policies, variant, heading)
        for output in _extra_outputs(members):
            for variant in variants:
                lines += _seed_block(policies, variant, heading, output)
        lines += _ttest_block(policies, heading)
        lines += _settings_block(members, heading)
        lines += lifelong_block(members, heading)
    missing = [r for r in runs if not r.complete]
    if missing:
        lines += ["Incomplete runs (no results.json):", ""]
        lines += [f"- {r.label}: `{r.path}`" for r in missing] + [""]
    return "\n".join(lines)


def groups_of(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    """Complete runs by (task, protocol), in order of first appearance."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    return groups


def _table_head(
    levels: list[int], extra: int | None, title: str, columns: Sequence[str]
) -> list[str]:
    """A block's title line and its table header: ``run``, one column per level (the extra
    level marked), then ``columns``."""
    head = ["run"] + [f"L{lv}" + (" (extra)" if lv == extra else "") for lv in levels]
    head += list(columns)
    return [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]


def _block_name(variant: str | None, output: str) -> str:
    name = "test set" if variant is None else f"test variant: {variant}"
    return name if output == "restored" else f"output {output}, {name}"


def _psnr_block(
    runs: Sequence[Run], variant: str | None, heading: str = "##", output: str = "restored"
) -> list[str]:
    levels = sorted({int(lv) for r in runs for lv in _levels(r.doc, variant, output)})
    if not levels:
        return []
    extra = runs[0].doc.get("extra_level")
    train = [lv for lv in levels if lv != extra]
    out = _table_head(levels, extra, f"{heading} PSNR (dB) per level, {_block_name(variant, output)}",
                      ["mean 1-N", "spread 1-N", "SSIM mean", "SSIM extra", "images"])  # fmt: skip
    for r in runs:
        rows = _levels(r.doc, variant, output)
        if not rows:
            continue
        psnr = {int(lv): _num(row["psnr"]) for lv, row in rows.items()}
        ssim = {int(lv): _num(row["ssim"]) for lv, row in rows.items()}
        tp = [psnr[lv] for lv in train if lv in psnr]
        ts = [ssim[lv] for lv in train if lv in ssim]
        cells = [r.label] + [f"{psnr[lv]:.2f}" if lv in psnr else "" for lv in levels]
        cells += [
            f"{sum(tp) / len(tp):.2f}" if tp else "",
            f"{max(tp) - min(tp) if all(map(math.isfinite, tp)) else math.nan:.2f}" if tp else "",
        ]
        cells += [
            f"{sum(ts) / len(ts):.4f}" if ts else "",
            f"{ssim[extra]:.4f}" if extra in ssim else "",
        ]
        cells.append(str(_images(r)))
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


def _missing_block(runs: Sequence[Run], heading: str = "##") -> list[str]:
    """PSNR over the missing region only (inpainting / interpolation: DL-Net's Table 2
    protocol), per level, on the default test set; nothing for other tasks."""
    rows = {r.label: {int(lv): _num(row["missing_psnr"]) for lv, row in _levels(r.doc).items()
                      if "missing_psnr" in row} for r in runs}  # fmt: skip
    rows = {label: values for label, values in rows.items() if values}
    if not rows:
        return []
    levels = sorted({lv for values in rows.values() for lv in values})
    extra = runs[0].doc.get("extra_level")
    train = [lv for lv in levels if lv != extra]
    out = _table_head(levels, extra, f"{heading} PSNR (dB) over the missing region only, test set",
                      ["mean 1-N"])  # fmt: skip
    for label, values in rows.items():
        tp = [values[lv] for lv in train if lv in values]
        cells = [label] + [f"{values[lv]:.2f}" if lv in values else "" for lv in levels]
        cells.append(f"{sum(tp) / len(tp):.2f}" if tp else "")
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


@dataclass
class Policy:
    """The runs of one policy over seeds (sorted by seed)."""

    name: str
    runs: list[Run]

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]


def seed_policies(runs: Sequence[Run]) -> list[Policy]:
    """Complete runs of one (task, protocol) group as policies over seeds, in order of
    first appearance: runs with the same :attr:`Run.policy` (and the same experiment,
    curriculum, model, method and optimiser in results.json) and distinct seeds. Runs that
    cannot be told apart by their seed (a seed missing or repeated) stay one row each."""
    keyed: dict[tuple[Any, ...], list[Run]] = {}
    for r in runs:
        doc = r.doc or {}
        sig = tuple(str(doc.get(k)) for k in ("experiment", "curriculum", "model", "method", "optimizer"))  # fmt: skip
        keyed.setdefault((r.policy, sig), []).append(r)
    names: dict[str, int] = {}
    for name, _ in keyed:
        names[name] = names.get(name, 0) + 1
    out: list[Policy] = []
    for (name, _), members in keyed.items():
        seeds = [r.seed for r in members]
        if len(members) > 1 and (None in seeds or len(set(seeds)) < len(seeds) or names[name] > 1):
            out += [Policy(r.label, [r]) for r in members]
        else:
            label = name if len(members) > 1 or names[name] == 1 else members[0].label
            out.append(Policy(label, sorted(members, key=lambda r: r.seed or 0)))
    return out


def _over_seeds(policies: Sequence[Policy]) -> bool:
    return any(len(p.runs) > 1 for p in policies)


def _train_mean(run: Run, metric: str = "psnr", variant: str | None = None,
                output: str = "restored") -> float | None:  # fmt: skip
    """The run's mean of ``metric`` over the training levels 1..N (not the extra level)."""
    rows = _levels(run.doc, variant, output)
    extra = run.doc.get("extra_level")
    values = [_num(row[metric]) for lv, row in rows.items() if int(lv) != extra]
    return sum(values) / len(values) if values else None


def _pm(values: Sequence[float], digits: int = 2) -> str:
    """``mean ± SE`` (just the value for one seed; empty for none)."""
    if not values:
        return ""
    mean, se = mean_se(values)
    return f"{mean:.{digits}f}" if len(values) < 2 else f"{mean:.{digits}f} ± {se:.{digits}f}"


def _seed_block(
    policies: Sequence[Policy], variant: str | None, heading: str = "##", output: str = "restored"
) -> list[str]:
    """The PSNR block with one row per policy: mean ± SE over its seeds, and n."""
    runs = [r for p in policies for r in p.runs]
    levels = sorted({int(lv) for r in runs for lv in _levels(r.doc, variant, output)})
    if not levels:
        return []
    extra = runs[0].doc.get("extra_level")
    train = [lv for lv in levels if lv != extra]
    title = f"{heading} PSNR (dB) per level, {_block_name(variant, output)} (mean ± SE over seeds)"
    out = _table_head(levels, extra, title,
                      ["mean 1-N", "spread 1-N", "SSIM mean", "SSIM extra", "images", "n"])  # fmt: skip
    for p in policies:
        tables = [_levels(r.doc, variant, output) for r in p.runs]
        present = [(r, t) for r, t in zip(p.runs, tables) if t]
        if not present:
            continue
        per_level = {lv: [_num(t[str(lv)]["psnr"]) for _, t in present if str(lv) in t] for lv in levels}  # fmt: skip
        means, spreads, ssims, ssim_extra = [], [], [], []
        for _, t in present:
            tp = [_num(t[str(lv)]["psnr"]) for lv in train if str(lv) in t]
            ts = [_num(t[str(lv)]["ssim"]) for lv in train if str(lv) in t]
            if tp:
                means.append(sum(tp) / len(tp))
                spreads.append(max(tp) - min(tp) if all(map(math.isfinite, tp)) else math.nan)
            if ts:
                ssims.append(sum(ts) / len(ts))
            if str(extra) in t:
                ssim_extra.append(_num(t[str(extra)]["ssim"]))
        images = sorted({str(_images(r)) for r, _ in present})
        cells = [p.name] + [_pm(per_level[lv]) for lv in levels]
        cells += [_pm(means), f"{sum(spreads) / len(spreads):.2f}" if spreads else ""]
        cells += [f"{sum(ssims) / len(ssims):.4f}" if ssims else ""]
        cells += [f"{sum(ssim_extra) / len(ssim_extra):.4f}" if ssim_extra else ""]
        cells += ["/".join(images), str(len(present))]
        out.append("| " + " | ".join(cells) + " |")
    return out + [""]


@dataclass
class PairRow:
    """One paired comparison: a test per level (``"mean"``: the mean over levels 1..N)
    or, when the runs' test pairs differ, the reason it was refused."""

    a: Policy
    b: Policy
    tests: dict[str, Any] = field(default_factory=dict)
    refused: str = ""


def _reference(policies: Sequence[Policy]) -> Policy | None:
    named = [p for p in policies if p.name == "ondemand"]
    if len(named) == 1:
        return named[0]
    trained = [p for p in policies if all(r.doc.get("curriculum") == "ondemand" for r in p.runs)]
    return trained[0] if len(trained) == 1 else None


def paired_comparisons(policies: Sequence[Policy]) -> list[PairRow]:
    """Paired t-tests over seeds: each policy against ``ondemand`` when one policy is
    ondemand, else every pair. Pairs are the per-seed values of the default test set
    (per level, and the mean over training levels 1..N); a pair whose runs of one seed
    have different test-set checksums is refused (not the same test pairs)."""
    ref = _reference(policies)
    if ref is not None:
        pairs = [(ref, p) for p in policies if p is not ref]
    else:
        pairs = [(a, b) for i, a in enumerate(policies) for b in policies[i + 1 :]]
    rows = []
    for a, b in pairs:
        row = PairRow(a, b)
        ra = {r.seed: r for r in a.runs if r.seed is not None}
        rb = {r.seed: r for r in b.runs if r.seed is not None}
        try:
            check_same_test_pairs({s: r.checksum for s, r in ra.items()},
                                  {s: r.checksum for s, r in rb.items()}, (a.name, b.name))  # fmt: skip
        except PairingError as e:
            row.refused = str(e)
            rows.append(row)
            continue
        row.tests["mean"] = paired_ttest(
            {s: v for s, r in ra.items() if (v := _train_mean(r)) is not None},
            {s: v for s, r in rb.items() if (v := _train_mean(r)) is not None},
        )
        levels = sorted({int(lv) for r in [*ra.values(), *rb.values()] for lv in _levels(r.doc)})
        for lv in levels:
            va = {s: _num(t[str(lv)]["psnr"]) for s, r in ra.items() if str(lv) in (t := _levels(r.doc))}  # fmt: skip
            vb = {s: _num(t[str(lv)]["psnr"]) for s, r in rb.items() if str(lv) in (t := _levels(r.doc))}  # fmt: skip
            row.tests[str(lv)] = paired_ttest(va, vb)
        rows.append(row)
    return rows


def _ttest_block(policies: Sequence[Policy], heading: str = "##") -> list[str]:
    rows = paired_comparisons(policies)
    if not rows:
        return []
    against = "each policy against ondemand" if _reference(policies) else "every pair of policies"
    out = [
        f"{heading} Paired t-test (per seed, mean PSNR levels 1..N)",
        "",
        "What is paired: seeds. The seed fixes the evaluation set, so for each seed both "
        "policies were scored on the same test pairs (test-set checksums checked per seed); "
        "the pairs are the per-seed mean PSNR over training levels 1..N, tested with a "
        f"two-sided scipy.stats.ttest_rel; {against}. Per-level tests: summary_ttest.csv. "
        "ODL's protocol is 20 trials and a paired t-test.",
        "",
        "| policy A | policy B | n seeds | mean A − B (dB) ± SE | t | p |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row.refused:
            out.append(f"| {row.a.name} | {row.b.name} | | refused: {row.refused} | | |")
            continue
        t = row.tests["mean"]
        diff = _pm_stats(t.mean_diff, t.se_diff, t.n)
        if t.p is None:
            out.append(f"| {row.a.name} | {row.b.name} | {t.n} | {diff} | n/a | {NEEDS_TWO} |")
        else:
            out.append(f"| {row.a.name} | {row.b.name} | {t.n} | {diff} | {t.t:.3f} | {t.p:.4g} |")
    return out + [""]


def _pm_stats(mean: float, se: float, n: int) -> str:
    if n == 0:
        return ""
    return f"{mean:.2f}" if n < 2 else f"{mean:.2f} ± {se:.2f}"


#: a cell of the test-settings table: the missing region (inpainting / interpolation,
#: DL-Net's protocol) or the whole image, as l1, l2, psnr
REGION_KEYS = {
    "missing": ("missing_l1", "missing_l2", "missing_psnr"),
    "whole": ("l1", "l2", "psnr"),
}


def settings_of(doc: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The run's test settings: the test variants whose definition (``data.test_variants``
    in results.json) fixes a ``severity``, ``{name: definition}`` in their order."""
    defs = ((doc or {}).get("data") or {}).get("test_variants") or {}
    return {str(n): d for n, d in defs.items() if isinstance(d, dict) and "severity" in d}


def _setting_rows(doc: dict[str, Any], name: str) -> dict[int, dict[str, Any]]:
    """The rows a setting was scored at: its one level (those of the definition's
    ``levels`` when it has some and they were scored; else every scored level)."""
    rows = {int(lv): row for lv, row in _levels(doc, name).items()}
    wanted = settings_of(doc).get(name, {}).get("levels")
    if isinstance(wanted, (int, str)):
        wanted = [wanted]
    if isinstance(wanted, list):
        picked = {int(lv): rows[int(lv)] for lv in wanted if int(lv) in rows}
        rows = picked or rows
    return rows


def _train_rows(doc: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The default test set's rows of the training levels 1..N (not the extra level)."""
    extra = doc.get("extra_level")
    return {int(lv): row for lv, row in _levels(doc).items() if int(lv) != extra}


@dataclass
class SettingsCell:
    """One cell: l1, l2, psnr averaged over the rows (levels) of each run, then over the
    runs (seeds) that have them; ``n`` runs, ``levels`` the levels used."""

    l1: float
    l2: float
    psnr: float
    n: int
    levels: list[int]


@dataclass
class SettingsTable:
    """DL-Net's method x test-setting table of one (task, protocol) group."""

    task: str
    settings: dict[str, dict[str, Any]]  # column name -> definition, in order
    train_levels: list[int]
    region: str  # "missing" | "whole"
    partial_region: bool  # some rows had the missing-region measures, not all
    over_seeds: bool
    rows: list[tuple[str, int, dict[str, SettingsCell]]]  # (run or policy, runs, cells)

    @property
    def span(self) -> str:
        """The training levels, ``1-N``."""
        lv = self.train_levels
        return f"{lv[0]}-{lv[-1]}" if lv else ""

    @property
    def levels_column(self) -> str:
        return f"levels {self.span}" if self.train_levels else ""

    @property
    def columns(self) -> list[str]:
        return list(self.settings) + ([self.levels_column] if self.train_levels else [])


def settings_table(members: Sequence[Run]) -> SettingsTable | None:
    """The test-settings table of one (task, protocol) group of complete runs, or None
    when none of them has a test setting. Columns: the settings in the order of the first
    run that defines some (then any other run's), then the mean over the default test
    set's training levels. Rows: the runs, or the policies (mean over seeds) when a policy
    has several seeds."""
    settings: dict[str, dict[str, Any]] = {}
    for r in members:
        for name, definition in settings_of(r.doc).items():
            if name not in settings and any(_setting_rows(m.doc, name) for m in members):
                settings[name] = definition
    if not settings:
        return None
    train = sorted({lv for r in members for lv in _train_rows(r.doc)})
    used = [
        row for r in members for name in settings for row in _setting_rows(r.doc, name).values()
    ]
    used += [row for r in members for row in _train_rows(r.doc).values()]
    has = [all(k in row for k in REGION_KEYS["missing"]) for row in used]
    region = "missing" if used and all(has) else "whole"
    policies = seed_policies(members)
    over = _over_seeds(policies)
    entities = [(p.name, p.runs) for p in policies] if over else [(r.label, [r]) for r in members]
    keys = REGION_KEYS[region]
    rows = []
    for name, runs in entities:
        cells: dict[str, SettingsCell] = {}
        for column in settings:
            cell = _settings_cell([_setting_rows(r.doc, column) for r in runs], keys)
            if cell:
                cells[column] = cell
        if train:
            cell = _settings_cell([_train_rows(r.doc) for r in runs], keys)
            if cell:
                cells[f"levels {train[0]}-{train[-1]}"] = cell
        rows.append((name, len(runs), cells))
    task = str(members[0].task) if members else ""
    return SettingsTable(task, settings, train, region, any(has) and not all(has), over, rows)


def _settings_cell(
    tables: Sequence[dict[int, dict[str, Any]]], keys: Sequence[str]
) -> SettingsCell | None:
    """Mean over the runs (seeds) of each run's mean over its rows."""
    per_run = []
    for rows in tables:
        if rows:
            per_run.append([sum(_num(row[k]) for row in rows.values()) / len(rows) for k in keys])
    if not per_run:
        return None
    l1, l2, psnr = (sum(v[i] for v in per_run) / len(per_run) for i in range(3))
    levels = sorted({lv for rows in tables for lv in rows})
    return SettingsCell(l1, l2, psnr, len(per_run), levels)


def _settings_block(members: Sequence[Run], heading: str = "##") -> list[str]:
    """DL-Net's Tables 2/3/9: one row per run (policy), one column per test setting and
    the mean over the training levels; cells ``l1 / l2 / PSNR``."""
    table = settings_table(members)
    if table is None:
        return []
    where = ("over the missing pixels only (DL-Net's protocol)" if table.region == "missing"
             else "over the whole image")  # fmt: skip
    lines = [f"{heading} Test settings: ℓ1 / ℓ2 / PSNR (dB)", ""]
    note = f"Cells: ℓ1 / ℓ2 / PSNR {where}"
    if table.partial_region:
        note += (
            " (some runs lack the missing-region measures, so every cell is over the whole image)"
        )
    note += (
        ". Columns: each test setting (a test variant with a fixed severity, scored at "
        "one level; summary_settings.csv gives its severity and level)"
    )
    if table.train_levels:
        extra = members[0].doc.get("extra_level")
        note += (
            f", then `{table.levels_column}`: the mean over the default test set's "
            f"training levels {table.span}"
            + (f" (the extra level {extra} excluded)" if extra is not None else "")
        )
    lines += [note + ".", ""]
    if table.over_seeds:
        ns = sorted({n for _, n, _ in table.rows})
        lines += [f"Rows are policies: the mean over {ns[0]} seeds." if len(ns) == 1 else
                  "Rows are policies: the mean over each policy's seeds (n).", ""]  # fmt: skip
    head = ["run" if not table.over_seeds else "policy", *table.columns]
    head += ["n"] if table.over_seeds else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, n, cells in table.rows:
        row = [name] + [_triple(cells.get(c)) for c in table.columns]
        row += [str(n)] if table.over_seeds else []
        lines.append("| " + " | ".join(row) + " |")
    return lines + [""]


def _triple(cell: SettingsCell | None) -> str:
    return "" if cell is None else f"{cell.l1:.4f} / {cell.l2:.4f} / {cell.psnr:.2f}"


def settings_tables(runs: Sequence[Run]) -> list[SettingsTable]:
    """The test-settings table of every (task, protocol) group that has test settings."""
    groups = groups_of([r for r in runs if r.complete])
    return [t for members in groups.values() if (t := settings_table(members)) is not None]


def summary_settings_csv(runs: Sequence[Run]) -> str:
    """The test-settings tables in long format: run (the policy when averaged over seeds),
    task, setting (``levels 1-N``: the mean over the training levels), severity, level
    (the levels used, space-separated; ``1-N`` for the mean), l1, l2, psnr, region
    (missing | whole), n (runs averaged)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", "task", "setting", "severity", "level", "l1", "l2", "psnr", "region", "n"])
    for table in settings_tables(runs):
        for name, _, cells in table.rows:
            for column in table.columns:
                cell = cells.get(column)
                if cell is None:
                    continue
                if column in table.settings:
                    severity = table.settings[column].get("severity")
                    level = " ".join(map(str, cell.levels))
                else:
                    severity, level = "", table.span
                w.writerow([name, table.task, column, "" if severity is None else severity, level,
                            cell.l1, cell.l2, cell.psnr, table.region, cell.n])  # fmt: skip
    return buf.getvalue()


def summary_seeds_csv(runs: Sequence[Run]) -> str:
    """Per policy (over seeds): policy, task, variant, output, level (``mean_1-N`` for the
    mean over the training levels), extra, n, seeds, then mean and SE of every metric."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["policy", "task", "variant", "output", "level", "extra", "n", "seeds",
                *(f"{m}_{s}" for m in METRICS for s in ("mean", "se"))])  # fmt: skip
    for (task, _), members in groups_of([r for r in runs if r.complete]).items():
        for p in seed_policies(members):
            doc0 = p.runs[0].doc
            variants = [None, *sorted({v for r in p.runs for v in (r.doc.get("variants") or {})})]
            outputs = ["restored", *sorted({o for r in p.runs for o in (r.doc.get("outputs") or {})})]  # fmt: skip
            for output in outputs:
                for variant in variants:
                    tables = [(r, _levels(r.doc, variant, output)) for r in p.runs]
                    tables = [(r, t) for r, t in tables if t]
                    levels = sorted({int(lv) for _, t in tables for lv in t})
                    for lv in [*levels, "mean_1-N"]:
                        if lv == "mean_1-N":
                            vals = {m: [v for r, _ in tables if (v := _train_mean(r, m, variant, output)) is not None] for m in METRICS}  # fmt: skip
                            used, extra = [r for r, _ in tables], ""
                        else:
                            used = [r for r, t in tables if str(lv) in t]
                            vals = {m: [_num(_levels(r.doc, variant, output)[str(lv)][m]) for r in used] for m in METRICS}  # fmt: skip
                            extra = int(lv == doc0.get("extra_level"))
                        if not used:
                            continue
                        stats = [x for m in METRICS for x in mean_se(vals[m])]
                        seeds = " ".join(str(r.seed) for r in used)
                        w.writerow([p.name, task, variant or "default", output, lv, extra,
                                    len(vals["psnr"]), seeds, *stats])  # fmt: skip
    return buf.getvalue()


def summary_ttest_csv(runs: Sequence[Run]) -> str:
    """The paired t-tests: task, policy_a, policy_b, level (``mean_1-N``: the mean over
    training levels), n, seeds, mean_diff (A - B), se_diff, t, p, note (why refused or
    not computed)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["task", "policy_a", "policy_b", "level", "n", "seeds", "mean_diff", "se_diff",
                "t", "p", "note"])  # fmt: skip
    for (task, _), members in groups_of([r for r in runs if r.complete]).items():
        for row in paired_comparisons(seed_policies(members)):
            if row.refused:
                w.writerow([task, row.a.name, row.b.name, "", "", "", "", "", "", "", f"refused: {row.refused}"])  # fmt: skip
                continue
            order = sorted(row.tests, key=lambda lv: (lv == "mean", lv.zfill(4)))
            for lv, t in ((lv, row.tests[lv]) for lv in order):
                note = NEEDS_TWO if t.p is None else ""
                w.writerow([task, row.a.name, row.b.name, "mean_1-N" if lv == "mean" else lv, t.n,
                            " ".join(map(str, t.seeds)), t.mean_diff, t.se_diff,
                            "" if t.t is None else t.t, "" if t.p is None else t.p, note])  # fmt: skip
    return buf.getvalue()


def _images(run: Run) -> int | str:
    """Training images the run saw (from its allocation.csv), for the equal-budget check."""
    f = run.path / "allocation.csv"
    if not f.is_file():
        return ""
    rows = list(csv.reader(f.read_text().splitlines()))
    head = rows[0]
    cols = [i for i, h in enumerate(head) if h.startswith("images_")]
    return sum(int(row[i]) for row in rows[1:] for i in cols)


def summary_csv(runs: Sequence[Run]) -> str:
    """Long format: run, task, variant, output, level, extra, psnr, ssim, l1, l2, count,
    path; ``restored`` rows first, then every other scored output."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["run", "task", "variant", "output", "level", "extra", *METRICS, "count", "path"])
    for r in runs:
        if not r.complete:
            w.writerow([r.label, "", "", "", "", "", "", "", "", "", "", str(r.path)])
            continue
        variants = [None, *sorted(r.doc.get("variants") or {})]
        outputs = ["restored", *sorted(r.doc.get("outputs") or {})]
        for output in outputs:
            for variant in variants:
                for lv, row in _levels(r.doc, variant, output).items():
                    values = [row[m] for m in METRICS]
                    extra = int(bool(row.get("extra")))
                    w.writerow([r.label, r.task, variant or "default", output, lv, extra,
                                *values, row["count"], str(r.path)])  # fmt: skip
    return buf.getvalue()


def level_curves(members: Sequence[Run]) -> dict[str, dict[str, float]]:
    """The test PSNR per level of a group's runs (default test set, ``restored``):
    ``{label: {level: dB}}``, one curve per run, or per policy (the mean over its seeds,
    labelled ``<policy> (n=<seeds>)``) when policies have several seeds."""
    policies = seed_policies(members)
    if not _over_seeds(policies):
        return {r.label: {lv: _num(row["psnr"]) for lv, row in _levels(r.doc).items()}
                for r in members}  # fmt: skip
    curves = {}
    for p in policies:
        tables = [_levels(r.doc) for r in p.runs]
        lvs = sorted({lv for t in tables for lv in t}, key=int)
        curves[f"{p.name} (n={len(p.runs)})"] = {
            lv: mean_se([_num(t[lv]["psnr"]) for t in tables if lv in t])[0] for lv in lvs
        }
    return curves


def write_summary(
    roots: Sequence[str | Path], out: str | Path | None = None, title: str = ""
) -> Path:
    """Write ``summary.md``, ``summary.csv`` and ``psnr_vs_level.png``; return the folder."""
    runs = find_runs(roots)
    if not runs:
        raise NoRunsError(
            f"no runs found under {', '.join(map(str, roots))} (no results.json and no "
            ".hydra/config.yaml): give a run folder, a multirun folder, or a folder holding them"
        )
    out_dir = Path(out or roots[0])
    title = title or out_dir.name
    md = summary_markdown(runs, title)
    atomic_write_text(out_dir / "summary.md", md)
    atomic_write_text(out_dir / "summary.csv", summary_csv(runs))
    done = [r for r in runs if r.complete]
    groups = groups_of(done)
    if any(_over_seeds(seed_policies(members)) for members in groups.values()):
        atomic_write_text(out_dir / "summary_seeds.csv", summary_seeds_csv(runs))
        atomic_write_text(out_dir / "summary_ttest.csv", summary_ttest_csv(runs))
    if settings_tables(runs):
        atomic_write_text(out_dir / "summary_settings.csv", summary_settings_csv(runs))
    if any(is_lifelong(r.doc) for r in done):
        atomic_write_text(out_dir / "summary_lifelong.csv", lifelong_csv(done))
    from lightrestore.reporting.plotting import plot_psnr_vs_level

    for i, ((task, _), members) in enumerate(groups.items()):
        curves = level_curves(members)
        name, heading = "psnr_vs_level.png", title
        if len(groups) > 1:  # one plot per task (and protocol)
            name, heading = f"psnr_vs_level_{i + 1}_{task or 'unknown'}.png", f"{title}: {task}"
        plot_psnr_vs_level(curves, out_dir / name, members[0].doc.get("extra_level"), heading)
    print(md)
    print(f"summary written to {out_dir / 'summary.md'} ({len(done)}/{len(runs)} runs complete)")
    return out_dir


try:  # Hydra callback, available when hydra-core is installed (always, as a dependency)
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover
    _HydraCallback = object  # type: ignore[misc,assignment]


class MultirunSummary(_HydraCallback):
    """Hydra callback: after a multirun, write the summary into the sweep folder; when
    the sweep logged to wandb, also send it as one more run of the sweep's wandb group
    (:mod:`lightrestore.reporting.wandb_summary`)."""

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if sweep_dir.is_dir():
            try:
                write_summary([sweep_dir])
            except Exception as e:  # a summary must never fail the sweep
                log.warning("could not write the sweep summary: %s", e)
            try:
                from lightrestore.reporting.wandb_summary import log_sweep_summary_from_config

                log_sweep_summary_from_config(config, sweep_dir)  # nothing without wandb
            except Exception as e:  # noqa: BLE001
                log.warning("could not log the sweep summary to wandb: %s", e)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lightrestore.report", description=__doc__.split("\n")[0]
    )
    parser.add_argument("dirs", nargs="+", help="run or multirun folders to aggregate")
    parser.add_argument("--out", help="where to write summary.* (default: the first folder)")
    parser.add_argument("--title", default="", help="title of the summary")
    parser.add_argument(
        "--html",
        nargs="?",
        const="",
        default=None,
        metavar="FILE",
        help="also write one self-contained HTML report (figures embedded, works offline) "
        "to FILE (a folder: FILE/report.html; default: <out>/report.html); give it after "
        "the folders or as --html=FILE",
    )
    args = parser.parse_args(argv)
    try:
        out_dir = write_summary(args.dirs, args.out, args.title)
        if args.html is not None:
            from lightrestore.reporting.html_report import html_path, write_html

            path = write_html(args.dirs, html_path(out_dir, args.html), args.title or out_dir.name)
            print(f"HTML report written to {path} ({path.stat().st_size / 1e6:.1f} MB)")
    except FileNotFoundError as e:
        print(f"lightrestore.report: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
