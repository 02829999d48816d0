"""Matplotlib figures of a run or a sweep (PNG, Agg backend; no display needed)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    tmp.replace(path)
    return path


def plot_allocation(rows: Sequence[Mapping[str, Any]], path: str | Path, title: str = "") -> Path:
    """Stacked area of the level weights per epoch (the sampler's allocation history)."""
    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]
    weights = list(zip(*[r["weights"] for r in rows])) if rows else []
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if rows:
        ax.stackplot(
            epochs, weights, labels=[f"level {i + 1}" for i in range(len(weights))], step="post"
        )
    ax.set(xlabel="epoch", ylabel="share of each batch", ylim=(0, 1), title=title or "allocation")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    out = _save(fig, path)
    plt.close(fig)
    return out


History = Sequence[tuple[int, Mapping[int, Mapping[str, float]]]]


def plot_psnr_per_epoch(history: History, path: str | Path, title: str = "") -> Path:
    """Validation PSNR of every level against the epoch."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    levels = sorted({lv for _, res in history for lv in res})
    for lv in levels:
        pts = [(e, res[lv]["psnr"]) for e, res in history if lv in res]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=f"level {lv}")
    ax.set(xlabel="epoch", ylabel="validation PSNR (dB)", title=title or "PSNR per level")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.grid(alpha=0.3)
    out = _save(fig, path)
    plt.close(fig)
    return out


def plot_psnr_vs_level(
    curves: Mapping[str, Mapping[int | str, float]],
    path: str | Path,
    extra_level: int | None = None,
    title: str = "",
) -> Path:
    """Test PSNR against the level, one line per run/policy (ODL Fig. 4)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, per_level in curves.items():
        pts = sorted((int(lv), v) for lv, v in per_level.items())
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    if extra_level is not None:
        ax.axvline(extra_level - 0.5, color="grey", lw=0.8, ls="--")
        ax.text(extra_level - 0.45, ax.get_ylim()[1], "extra", va="top", fontsize=8, color="grey")
    ax.set(xlabel="test level", ylabel="PSNR (dB)", title=title or "PSNR per test level")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.grid(alpha=0.3)
    out = _save(fig, path)
    plt.close(fig)
    return out


Curve = Sequence[tuple[float, float]]


def plot_training_curves(
    losses: Mapping[str, Curve], val: Mapping[str, Curve], path: str | Path, title: str = ""
) -> Path:
    """Training losses (left) and validation PSNR (right) against the epoch; each a map
    ``{name: [(epoch, value), ...]}``. A name ending in ``mean`` is drawn thick."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    panels = ((left, losses, "training loss"), (right, val, "validation PSNR (dB)"))
    for ax, curves, ylabel in panels:
        for name, pts in curves.items():
            pts = sorted(pts)
            thick = name.endswith("mean")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=".", label=name,
                    lw=2.2 if thick else 1.0, alpha=1.0 if thick else 0.7)  # fmt: skip
        ax.set(xlabel="epoch", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if curves:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "nothing logged", ha="center", va="center", transform=ax.transAxes)
    fig.subplots_adjust(wspace=0.3)
    fig.suptitle(title or "training curves")
    out = _save(fig, path)
    plt.close(fig)
    return out


def png_bytes(plot: Any, *args: Any, **kwargs: Any) -> bytes:
    """The PNG that ``plot(*args, path, ...)`` (any ``plot_*`` function of this module,
    ``path`` given as the keyword ``path``) draws, as bytes instead of a file."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figure.png"
        plot(*args, path=path, **kwargs)
        return path.read_bytes()
