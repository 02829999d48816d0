"""P7 (GPU only): feeding and precision paths of ODL's autoencoder (batch 100, 64x64).

* step time with the real DataModule (uint8 crops -> GPU -> on-device corruption) against
  batches already resident on the GPU, bf16 autocast on: target <= 1.05x;
* training images/s in fp32, bf16-mixed, bf16 + channels_last, + torch.compile.

    python -m benchmarks.gpu_feeding [--steps 30]
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import Row, not_available


def _throughput(model, x, steps: int, bf16: bool, channels_last: bool) -> float:
    opt = torch.optim.Adam(model.parameters(), 2e-4, betas=(0.5, 0.999))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.mse_loss(model(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return steps * x.shape[0] / (time.perf_counter() - t)


def run(steps: int = 30) -> list[Row]:
    if not torch.cuda.is_available():
        why = "no GPU on this machine"
        return [
            not_available("P7a", "GPU step: DataModule / resident batches (bf16)", "<= 1.05x", why),
            not_available(
                "P7b", "ODL AE images/s: fp32, bf16-mixed, +channels_last, +compile", "report", why
            ),
        ]
    from benchmarks.harness import build
    from lightrestore.models.odl_autoencoder import ODLAutoencoder

    objs = build("experiment=ondemand_inpaint", "data.num_workers=auto")
    dm, model = objs["datamodule"], objs["model"].cuda()
    dm.setup("fit")
    opt = torch.optim.Adam(model.parameters(), 2e-4, betas=(0.5, 0.999))
    device = torch.device("cuda")

    def train_on(batch):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.mse_loss(model(batch.degraded), batch.clean)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    loader = dm.train_dataloader()
    resident = [dm.corrupt(next(iter(loader)).to(device)) for _ in range(4)]

    def fed(n):
        it = iter(loader)
        for _ in range(n):
            train_on(dm.corrupt(next(it).to(device, non_blocking=True)))

    def local(n):
        for i in range(n):
            train_on(resident[i % len(resident)])

    n = min(steps, len(loader))
    fed(3), local(3)
    torch.cuda.synchronize()
    t = time.perf_counter()
    fed(n)
    torch.cuda.synchronize()
    t_fed = time.perf_counter() - t  # noqa: E702
    t = time.perf_counter()
    local(n)
    torch.cuda.synchronize()
    t_local = time.perf_counter() - t  # noqa: E702
    ratio = t_fed / t_local
    rows = [Row("P7a", "GPU step: DataModule / resident batches (bf16)", ratio, "<= 1.05x", ratio <= 1.05,
                f"{n} steps: {1e3 * t_fed / n:.1f} vs {1e3 * t_local / n:.1f} ms/step")]  # fmt: skip
    x = torch.rand(100, 3, 64, 64, device=device)
    variants = {
        "fp32": dict(bf16=False, channels_last=False),
        "bf16-mixed": dict(bf16=True, channels_last=False),
        "bf16+channels_last": dict(bf16=True, channels_last=True),
    }
    ips = {k: _throughput(ODLAutoencoder().cuda(), x, steps, **v) for k, v in variants.items()}
    ips["+compile"] = _throughput(
        torch.compile(ODLAutoencoder().cuda()), x, steps, bf16=True, channels_last=True
    )
    note = ", ".join(f"{k} {v:.0f}" for k, v in ips.items())
    rows.append(
        Row(
            "P7b",
            "ODL AE training images/s (bf16+channels_last)",
            ips["bf16+channels_last"],
            "report",
            None,
            note,
        )
    )
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30)
    for r in run(p.parse_args().steps):
        print(" | ".join(r.cells()))
