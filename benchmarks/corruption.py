"""P2: the batched on-device degradations (every family, 5 levels mixed in one batch).

* their cost as a fraction of a training step of ODL's autoencoder on the same batch
  (target <= 5 % on CPU, <= 3 % on a GPU);
* their throughput beside a straightforward per-image CPU implementation
  (scipy.ndimage / numpy loops over the images): at least as fast on CPU, >= 20x on a GPU.

    python -m benchmarks.corruption [--batch 100] [--size 64] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from benchmarks.common import Row, interleaved
from lightrestore.degradations import GaussianBlur, GaussianNoise, Inpaint, Interpolate
from lightrestore.models.odl_autoencoder import ODLAutoencoder

FILL = np.array([117, 104, 123], dtype=np.float32)[:, None, None] / 255


def reference(
    name: str, images: np.ndarray, params: dict[str, np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """The per-image CPU way: one image at a time with scipy / numpy."""
    out = np.empty_like(images)
    for i, img in enumerate(images):
        if name == "blur":
            out[i] = gaussian_filter(
                img,
                sigma=(0, params["sigma_y"][i], params["sigma_x"][i]),
                mode="mirror",
                truncate=3.0,
            )
        elif name == "inpaint":
            y = img.copy()
            t, l, s = params["top"][i], params["left"][i], int(params["severity"][i])
            y[:, t : t + s, l : l + s] = FILL
            out[i] = y
        elif name == "interpolate":
            mask = rng.random(img.shape[1:]) < params["severity"][i]
            out[i] = np.where(mask[None], FILL, img)
        elif name == "noise":
            out[i] = np.clip(
                img
                + rng.standard_normal(img.shape).astype(np.float32) * params["severity"][i] / 255,
                0,
                1,
            )
    return out


def run(batch: int = 100, size: int = 64, repeats: int = 7) -> list[Row]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    x = torch.rand(batch, 3, size, size, device=device)
    levels = (torch.arange(batch, device=device) % 5) + 1
    gen = torch.Generator(device=device).manual_seed(0)
    model = ODLAutoencoder(image_size=size).to(device)
    opt = torch.optim.Adam(model.parameters(), 2e-4, betas=(0.5, 0.999))

    def train_step() -> None:
        loss = torch.nn.functional.mse_loss(model(x), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    families = {
        "inpaint": Inpaint(),
        "interpolate": Interpolate(),
        "blur": GaussianBlur(),
        "noise": GaussianNoise(),
    }
    images = x.cpu().numpy()
    rng = np.random.default_rng(0)
    fns = {"step": train_step}
    for name, d in families.items():
        fns[name] = lambda d=d: d.apply(x, d.sample(levels, x.shape[1:], gen))
        p = {
            k: v.cpu().numpy()
            for k, v in d.sample(levels.cpu(), x.shape[1:]).items()
            if v.dim() == 1
        }
        fns[f"ref_{name}"] = lambda name=name, p=p: reference(name, images, p, rng)
    times = interleaved(fns, repeats, warmup=1, device=device)
    med = {k: statistics.median(v) for k, v in times.items()}
    rows = []
    total = sum(med[n] for n in families)
    frac_target = 0.03 if gpu else 0.05
    per_family = ", ".join(f"{n} {1e3 * med[n]:.1f} ms" for n in families)
    rows.append(Row("P2a", "corruption / training step (all 4 families, mean)", total / len(families) / med["step"],
                    f"<= {frac_target:.0%}", total / len(families) / med["step"] <= frac_target,
                    f"step {1e3 * med['step']:.0f} ms; {per_family} (batch {batch}x3x{size}x{size})"))  # fmt: skip
    speed_target = 20.0 if gpu else 1.0
    for n in families:
        speedup = med[f"ref_{n}"] / med[n]
        rows.append(Row(f"P2b-{n}", f"{n}: per-image CPU loop / batched ({device.type})", speedup,
                        f">= {speed_target:g}x", speedup >= speed_target,
                        f"loop {1e3 * med[f'ref_{n}']:.1f} ms vs batched {1e3 * med[n]:.1f} ms"))  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> list[Row]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=7)
    a = p.parse_args(argv)
    rows = run(a.batch, a.size, a.repeats)
    for r in rows:
        print(" | ".join(r.cells()))
    return rows


if __name__ == "__main__":
    main()
