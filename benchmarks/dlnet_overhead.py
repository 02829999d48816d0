"""P3: DL-Net's inference and training step at K = 1..5 against the reference network
(the backbone alone), on the same batch, timed side by side, for every backbone DL-Net
runs around (ODL's autoencoder on inpainting, VDSR / DRRN / IDN on SR x2 with blur, the
Y channel). Target <= 1.2x at K = 5 (the paper measured 1.41x on a GPU and 1.54x on a CPU).
DL-Net adds no parameters.

Where the time of one K=5 inference goes is printed for each backbone: ``g`` (features,
once), ``h`` forward (K times), ``h`` backward to ``z`` (K-1 times, the likelihood's
gradient) and the Adam update of ``z`` (K-1 times), each timed alone.

    python -m benchmarks.dlnet_overhead [--repeats 5] [--batch 32] [--backbones odl,vdsr,drrn,idn]
"""

from __future__ import annotations

import argparse
import statistics

import torch

from benchmarks.common import Row, interleaved
from benchmarks.harness import build
from lightrestore.methods.dlnet import adam_step_

BACKBONES = {
    "odl": ("experiment=dlnet_inpaint", "ODL autoencoder, inpainting 64x64"),
    "vdsr": ("experiment=dlnet_sr_vdsr_x2", "VDSR (LR grid), SR x2 48->96, Y"),
    "drrn": ("experiment=dlnet_sr_drrn_x2", "DRRN B1U9 (DL-Net's), SR x2 48->96, Y"),
    "idn": ("experiment=dlnet_sr_idn_x2", "IDN, SR x2 48->96, Y"),
}


def _median(times: list[float]) -> float:
    return statistics.median(times)


def breakdown(method, batch, repeats: int, device) -> dict[str, float]:
    """Seconds of each part of one K=5 inference (see the module docstring)."""
    model, y = method.model, batch.degraded
    mask = method.observed(batch, y)
    with torch.no_grad():
        z0 = model.features(y)
    z = z0.clone().requires_grad_(True)

    def features():
        with torch.no_grad():
            model.features(y)

    def head():
        with torch.no_grad():
            model.head(z0, y)

    def head_backward():
        with torch.enable_grad():
            lik = method.likelihood(model.head(z, y), batch, mask).sum()
            torch.autograd.grad(lik, z)

    grad = torch.randn_like(z0)
    zs, m, v = z0.clone(), torch.zeros_like(z0), torch.zeros_like(z0)

    def adam():  # the evaluation path: in place, no graph
        adam_step_(zs, grad, m, v, 2, method.gamma)

    t = interleaved({"g": features, "h": head, "h+grad": head_backward, "adam": adam}, repeats,
                    warmup=1, device=device)  # fmt: skip
    k = 5
    h = _median(t["h"])
    back = max(0.0, _median(t["h+grad"]) - h)
    return {"g": _median(t["g"]), "h fwd x5": k * h, "h bwd x4": (k - 1) * back,
            "adam x4": (k - 1) * _median(t["adam"])}  # fmt: skip


def run_backbone(name: str, repeats: int = 5, batch_size: int = 32) -> tuple[Row, str]:
    experiment, what = BACKBONES[name]
    objs = build(experiment)
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
    ref = _median(times["ref"])
    ratios = {k: [a / b for a, b in zip(times[f"k{k}"], times["ref"])] for k in range(1, 6)}
    k5 = ratios[5]

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
    method.eval()
    method.k = 5
    parts = breakdown(method, batch, repeats, device)
    total = sum(parts.values())
    where = ", ".join(f"{k} {1e3 * v:.0f} ms ({100 * v / total:.0f} %)" for k, v in parts.items())
    note = (f"{what} ({params / 1e6:.2f} M parameters, DL-Net adds 0), batch {len(batch)} on "
            f"{device.type}: reference {1e3 * ref:.0f} ms; inference K=1..5: "
            + ", ".join(f"{statistics.median(ratios[k]):.2f}x" for k in range(1, 6))
            + f" (K=5 min {min(k5):.2f} / max {max(k5):.2f} over {repeats} repeats)"
            + f"; training step K=5 / K=1: {train_ratio:.2f}x")  # fmt: skip
    ratio = statistics.median(k5)
    row = Row(f"P3-{name}", f"DL-Net inference at K=5 / reference ({name})", ratio, "<= 1.2x",
              ratio <= 1.2, note)  # fmt: skip
    return row, f"{name}: K=5 inference = {where}"


def run(repeats: int = 5, batch_size: int = 32, backbones=tuple(BACKBONES)) -> list[Row]:
    rows = []
    for name in backbones:
        row, where = run_backbone(name, repeats, batch_size)
        print(where)
        rows.append(row)
    if rows and rows[0].id == "P3-odl":
        rows[0].id = "P3"  # the headline row: the paper's inpainting network
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--backbones", default=",".join(BACKBONES))
    a = p.parse_args(argv)
    rows = run(a.repeats, a.batch, tuple(b for b in a.backbones.split(",") if b))
    for r in rows:
        print(" | ".join(r.cells()))
    return rows


if __name__ == "__main__":
    main()
