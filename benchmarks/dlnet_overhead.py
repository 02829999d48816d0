"""P3: DL-Net's inference and training step at K = 1..5 against the reference network.
Target <= 1.2x at K = 5. Reports "not available" until the DL-Net method lands."""

from __future__ import annotations

from benchmarks.common import Row, not_available


def run() -> list[Row]:
    try:
        import lightrestore.methods.dlnet  # noqa: F401
    except ImportError:
        return [
            not_available(
                "P3", "DL-Net step at K=5 / reference step", "<= 1.2x", "DL-Net has not landed"
            )
        ]
    raise NotImplementedError(
        "fill this row when DL-Net lands: time K = 1..5 against the reference"
    )


if __name__ == "__main__":
    for r in run():
        print(" | ".join(r.cells()))
