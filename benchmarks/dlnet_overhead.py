"""P3: DL-Net's inference and training step at K = 1..5 against the reference network
(the backbone alone), on the same batch, timed side by side. Target <= 1.2x at K = 5 (the
paper measured 1.41x on a GPU and 1.54x on a CPU). DL-Net adds no parameters.

    python -m benchmarks.dlnet_overhead [--repeats 5] [--batch 32]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.common import Row, interleaved
from benchmarks.harness import build


def run(repeats: int = 5, batch_size: int = 32) -> list[Row]:
    objs = build("experiment=dlnet_inpaint")
    method, dm = objs["method"], objs["datamodule"]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    method.to(device)
    dm.setup("fit")
    batch = dm.val_set.batch(torch.arange(min(batch_size, len(dm.val_set)))).to(device)
    model = method.model
    params = sum(p.numel() for p in model.parameters())
    assert params == sum(p.numel() for p in method.parameters())  # no parameters of its own

    def infer(k):
        def fn():
            method.k = k
            with torch.no_grad():
                method.restore(batch)

        return fn

    def reference():
        with torch.no_grad():
            model(batch.degraded)

    method.eval()
    fns = {"ref": reference, **{f"k{k}": infer(k) for k in range(1, 6)}}
    times = interleaved(fns, repeats, warmup=1, device=device)
    ref = statistics.median(times["ref"])
    ratios = {k: statistics.median(a / b for a, b in zip(times[f"k{k}"], times["ref"])) for k in range(1, 6)}

    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def train_step(k):
        def fn():
            method.k = k
            method.train()
            loss = method.loss(method.restore(batch), batch.clean)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return fn

    train = interleaved({"k1": train_step(1), "k5": train_step(5)}, repeats, warmup=1, device=device)
    train_ratio = statistics.median(a / b for a, b in zip(train["k5"], train["k1"]))
    method.k = 5
    note = (f"ODL autoencoder ({params / 1e6:.1f} M parameters, DL-Net adds 0), batch {len(batch)} "
            f"x 64x64 on {device.type}: reference {1e3 * ref:.0f} ms; inference K=1..5: "
            + ", ".join(f"{ratios[k]:.2f}x" for k in range(1, 6))
            + f"; training step K=5 / K=1: {train_ratio:.2f}x")  # fmt: skip
    return [
        Row("P3", "DL-Net inference at K=5 / reference", ratios[5], "<= 1.2x", ratios[5] <= 1.2, note)
    ]


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    a = p.parse_args(argv)
    rows = run(a.repeats, a.batch)
    for r in rows:
        print(" | ".join(r.cells()))
    return rows


if __name__ == "__main__":
    main()
