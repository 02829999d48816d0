"""``python -m benchmarks`` (or ``make bench``): every benchmark, one table of ratios
against their targets, written to ``benchmarks/RESULTS.md``.

    python -m benchmarks [--only P1,P2] [--full-main-job]
"""

from __future__ import annotations

import argparse
import time

from benchmarks import (
    corruption,
    dlnet_overhead,
    gpu_feeding,
    main_job,
    ondemand_validation,
    pspl_overhead,
    restore_memory,
    step_overhead,
)
from benchmarks.common import Row, machine, table, write_results

SUITE = {
    "P1": lambda a: step_overhead.run(),
    "P2": lambda a: corruption.run(),
    "P3": lambda a: dlnet_overhead.run(),
    "P4": lambda a: ondemand_validation.run(),
    "P5": lambda a: pspl_overhead.run(),
    "P6": lambda a: main_job.run(full=a.full_main_job),
    "P7": lambda a: gpu_feeding.run(),
    "P8": lambda a: restore_memory.run(),
}


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--only", default="", help="comma-separated ids, e.g. P1,P2")
    p.add_argument("--full-main-job", action="store_true", help="P6: run the whole main job")
    args = p.parse_args(argv)
    chosen = [k for k in SUITE if not args.only or k in args.only.split(",")]
    print(f"machine: {machine()}")
    t0 = time.perf_counter()
    rows: list[Row] = []
    for key in chosen:
        t = time.perf_counter()
        got = SUITE[key](args)
        rows += got
        print(
            f"{key} done in {time.perf_counter() - t:.0f} s: "
            + "; ".join(" | ".join(r.cells()[2:5]) for r in got),
            flush=True,
        )
    elapsed = time.perf_counter() - t0
    print("\n" + table(rows))
    if not args.only:
        print(f"\nwritten to {write_results(rows, elapsed)}")
    return rows


if __name__ == "__main__":
    main()
