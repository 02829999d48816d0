"""P6: the README's main job (``python -m lightrestore experiment=ondemand_inpaint``) on
this machine. Target <= 10 min.

By default it runs the job with 1 and with 2 epochs (subprocesses, wandb offline) and
estimates the 10-epoch wall time as T1 + (E - 1)·(T2 - T1), saying so; ``--full`` runs
the real thing.

    python -m benchmarks.main_job [--full]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

from benchmarks.common import Row

MAIN_JOB = ["experiment=ondemand_inpaint", "trainer.enable_progress_bar=false"]


def _timed(*overrides: str) -> float:
    tmp = tempfile.mkdtemp(prefix="bench_main_")
    env = dict(os.environ, WANDB_MODE=os.environ.get("WANDB_MODE", "offline"), WANDB_SILENT="true")
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "lightrestore", *MAIN_JOB, f"paths.log_dir={tmp}", *overrides],
                         env=env, capture_output=True, text=True)  # fmt: skip
    elapsed = time.perf_counter() - t
    if out.returncode != 0:
        raise RuntimeError(f"the main job failed:\n{out.stderr[-2000:]}")
    return elapsed


def _epochs() -> int:
    from benchmarks.harness import compose

    return int(compose(*MAIN_JOB).trainer.max_epochs)


def run(full: bool = False) -> list[Row]:
    epochs = _epochs()
    if full:
        total = _timed()
        note = f"measured: the whole job ({epochs} epochs)"
    else:
        t1, t2 = _timed("trainer.max_epochs=1"), _timed("trainer.max_epochs=2")
        total = t1 + (epochs - 1) * (t2 - t1)
        note = f"estimate from 1 epoch ({t1:.0f} s) and 2 epochs ({t2:.0f} s) for {epochs} epochs; --full measures"
    return [Row("P6", "main job wall time (min)", total / 60, "<= 10 min", total <= 600, note)]


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true")
    rows = run(p.parse_args(argv).full)
    for r in rows:
        print(" | ".join(r.cells()))
    return rows


if __name__ == "__main__":
    main()
