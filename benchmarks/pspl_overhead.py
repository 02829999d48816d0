"""P5: a training step with the PSPL loss against the same step with plain L1, on the
same model and batch (EDSR-baseline x2 when the SR models are installed, else ODL's
autoencoder). Target <= 1.10x.

    python -m benchmarks.pspl_overhead [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.common import Row, interleaved
from lightrestore.losses.pixel import PixelLoss
from lightrestore.losses.pspl import PSPLoss


def _model_and_batch(device):
    try:
        from lightrestore.models.sr import edsr_baseline

        model = edsr_baseline(scale=2, channels=3)
        lr, hr = torch.rand(8, 3, 48, 48), torch.rand(8, 3, 96, 96)
        name = "EDSR-baseline x2, 8 x 48x48 LR patches"
    except ImportError:
        from lightrestore.models.odl_autoencoder import ODLAutoencoder

        model = ODLAutoencoder()
        lr = torch.rand(100, 3, 64, 64)
        hr = lr
        name = "ODL autoencoder, 100 x 64x64"
    return model.to(device), lr.to(device), hr.to(device), name


def run(repeats: int = 7) -> list[Row]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, lr, hr, name = _model_and_batch(device)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    l1, pspl = PixelLoss("l1"), PSPLoss(base="l1").to(device)

    def step(loss_fn):
        def fn():
            loss = loss_fn(model(lr), hr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return fn

    times = interleaved({"l1": step(l1), "pspl": step(pspl)}, repeats, warmup=1, device=device)
    ratio = statistics.median(p / q for p, q in zip(times["pspl"], times["l1"]))
    note = f"{name}: L1 step {1e3 * statistics.median(times['l1']):.0f} ms, PSPL {1e3 * statistics.median(times['pspl']):.0f} ms"
    return [Row("P5", "PSPL step / L1 step", ratio, "<= 1.10x", ratio <= 1.10, note)]


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    rows = run(p.parse_args(argv).repeats)
    for r in rows:
        print(" | ".join(r.cells()))
    return rows


if __name__ == "__main__":
    main()
