"""P8: working memory of restoring large images (``lightrestore.inference.tiling.restore_tiled``).

Each image size is measured in a fresh subprocess: a small conv model (3 -> 8 -> 3
channels, one CPU thread) on 64-pixel tiles with stride 48, 16 tiles per call, restores
a random uint8 RGB image into a uint8 output, as ``python -m lightrestore.restore`` does.

The working memory is the peak resident set during the call minus the resident set
before it, taken after the imports, after allocating (and touching) the input and the
output, and after a warm-up call on a 128² image (one-time library set-up). On Linux the
peak is reset before the call and read from ``/proc/self/status`` (``ru_maxrss`` is
inherited from the parent process there); elsewhere it is ``ru_maxrss`` minus its value
before the call. Target: flat across sizes (the band algorithm holds ``batch_size``
tiles and one band of the output). The previous algorithm (every window unfolded at
once, float images) is shown beside it at 1024² and 2048².

    python -m benchmarks.restore_memory [--sizes 256,1024,2048,4096] [--old 1024,2048]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from benchmarks.common import HERE, Row

TILE, STRIDE, BATCH = 64, 48, 16  # every size below has full batches of 16 tiles
TARGET_SPREAD_MB = 32.0  # working memory may vary by this much between sizes


def _status_mb(field: str) -> float | None:
    """``VmHWM`` (peak) or ``VmRSS`` (current) of this process in MiB, from Linux's
    ``/proc/self/status``; ``None`` elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    return None


def _peak_mb() -> float:
    """Peak resident set of this process so far, in MiB.

    Linux: ``VmHWM`` of this process's own memory; ``ru_maxrss`` would be wrong here, as
    Linux carries it over from the parent across fork and exec (a child of a large
    ``python -m benchmarks`` starts at its parent's peak). Elsewhere ``ru_maxrss``
    (macOS: bytes)."""
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (2**20 if sys.platform == "darwin" else 2**10)


def _baseline_mb() -> float:
    """Reset the peak to the current resident set where Linux allows it (``clear_refs``
    5), so that an earlier, higher peak cannot hide the call's; returns the baseline."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_mb("VmRSS") or _peak_mb()
    except OSError:
        return _peak_mb()


def _old_restore_tiled(fn, image, tile, stride, batch_size=64):
    """The previous implementation: every window unfolded at once (the reference)."""
    import torch
    import torch.nn.functional as F

    c, h, w = image.shape
    ph = max(tile, h + (-(h - tile) % stride if h > tile else 0)) - h
    pw = max(tile, w + (-(w - tile) % stride if w > tile else 0)) - w
    x = F.pad(image[None], (0, pw, 0, ph), mode="replicate")
    hh, ww = x.shape[-2:]
    cols = F.unfold(x, tile, stride=stride)
    n = cols.shape[-1]
    windows = cols[0].T.reshape(n, c, tile, tile)
    out = torch.cat([fn(windows[i : i + batch_size]) for i in range(0, n, batch_size)])
    out_cols = out.reshape(n, -1).T[None]
    summed = F.fold(out_cols, (hh, ww), tile, stride=stride)
    count = F.fold(torch.ones_like(out_cols), (hh, ww), tile, stride=stride)
    return (summed / count)[0, :, :h, :w]


def child(size: int, algo: str) -> dict[str, float]:
    """Measure one restoration in this (fresh) process; returns MiB and seconds."""
    import torch

    from lightrestore.inference.tiling import restore_tiled

    torch.manual_seed(0)
    torch.set_num_threads(1)  # memory is the measure; one thread keeps timings steady
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 1)
    ).eval()

    def run(image, out):
        if algo == "new":
            return restore_tiled(model, image, TILE, STRIDE, BATCH, out=out)
        y = _old_restore_tiled(model, image.float().div(255), TILE, STRIDE, BATCH)
        out.copy_((y.clamp(0, 1) * 255).round().byte())
        return out

    with torch.inference_mode():
        small = torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8)
        run(small, torch.empty_like(small))  # warm-up: thread pools, kernel caches
        image = torch.randint(0, 256, (3, size, size), dtype=torch.uint8)
        out = torch.zeros_like(image).fill_(1)  # touched: resident before the baseline
        base = _baseline_mb()
        t = time.perf_counter()
        run(image, out)
        seconds = time.perf_counter() - t
    peak = _peak_mb()
    return {"size": size, "base_mb": base, "peak_mb": peak, "working_mb": peak - base,
            "seconds": seconds, "image_mb": 2 * image.numel() / 2**20}  # fmt: skip


def measure(size: int, algo: str) -> dict[str, float]:
    """:func:`child` in a fresh ``python`` process (peak memory is per process)."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.restore_memory", "--child", str(size), "--algo", algo],
        cwd=HERE.parent, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(results: dict[int, dict[str, dict[str, float]]]) -> str:
    """Markdown table: one row per size, new (and old) working memory."""
    lines = [
        "| image | input + output (uint8) | working memory, bands | time | working memory, "
        "old (unfold all) | time, old |",
        "|---|---|---|---|---|---|",
    ]
    for size, r in results.items():
        new, old = r["new"], r.get("old")
        old_cells = (
            f"{old['working_mb']:.0f} MiB | {old['seconds']:.1f} s" if old else "not run | —"
        )
        lines.append(
            f"| {size}² | {new['image_mb']:.1f} MiB | {new['working_mb']:.0f} MiB | "
            f"{new['seconds']:.1f} s | {old_cells} |"
        )
    return "\n".join(lines)


def run(
    sizes: tuple[int, ...] = (256, 1024, 2048, 4096), old: tuple[int, ...] = (1024, 2048)
) -> list[Row]:
    results: dict[int, dict[str, dict[str, float]]] = {}
    for size in sizes:
        results[size] = {"new": measure(size, "new")}
        if size in old:
            results[size]["old"] = measure(size, "old")
    print(table(results), flush=True)
    working = [r["new"]["working_mb"] for r in results.values()]
    spread = max(working) - min(working)
    note = "; ".join(
        f"{s}²: {r['new']['working_mb']:.0f} MiB"
        + (f" (old {r['old']['working_mb']:.0f})" if "old" in r else "")
        for s, r in results.items()
    )
    return [
        Row("P8", f"restore working memory spread, {sizes[0]}²..{sizes[-1]}² (MiB)", spread,
            f"<= {TARGET_SPREAD_MB:g} MiB (flat)", spread <= TARGET_SPREAD_MB,
            f"tile {TILE}, stride {STRIDE}, batch {BATCH}, uint8 in/out: {note}"),
    ]  # fmt: skip


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(s) for s in text.split(",") if s.strip())


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="256,1024,2048,4096", help="image sides, comma-separated")
    p.add_argument("--old", default="1024,2048", help="sizes to run the old algorithm at too")
    p.add_argument("--child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--algo", default="new", choices=("new", "old"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.algo)))
        return []
    rows = run(_ints(a.sizes), _ints(a.old))
    for r in rows:
        print(" | ".join(r.cells()))
    return rows


if __name__ == "__main__":
    main()
