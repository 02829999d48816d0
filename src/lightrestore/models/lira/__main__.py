"""``python -m lightrestore.models.lira [--width 64] [--experts 3] [--blocks 6]``: a table
of parameter counts for LIRA's networks (the base network per part, the fork and
expanded networks) and the CycleGAN generator and discriminator of the replay stage."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from lightrestore.models.cyclegan import PatchDiscriminator, ResnetGenerator
from lightrestore.models.lira.networks import (
    LiraBaseNet,
    LiraExpandedNet,
    LiraForkNet,
    count_parameters,
)


def parameter_table(width: int = 64, experts: int = 3, blocks: int = 6, channels: int = 3) -> str:
    """A Markdown table of parameter counts at the given sizes (the CycleGAN networks at
    the same width, the generator with 9 residual blocks)."""
    base = LiraBaseNet(channels, width, experts, blocks)
    rows = [(f"LiraBaseNet: {part}", n) for part, n in base.part_counts().items()]
    rows += [
        ("LiraForkNet", count_parameters(LiraForkNet(channels, width, experts, blocks))),
        (
            "LiraExpandedNet (without the shared old expert)",
            count_parameters(LiraExpandedNet(channels, width, blocks)),
        ),
        (
            "CycleGAN ResnetGenerator (9 blocks)",
            count_parameters(ResnetGenerator(channels, width, 9)),
        ),
        (
            "CycleGAN PatchDiscriminator (3 layers)",
            count_parameters(PatchDiscriminator(channels, width, 3)),
        ),
    ]
    lines = [
        f"width {width}, {experts} experts, {blocks} SK-DuRBs each, {channels} channels",
        "| network / part | parameters |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {n:,} |" for name, n in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m lightrestore.models.lira", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--width", type=int, default=64, help="feature width (default 64)")
    parser.add_argument("--experts", type=int, default=3, help="experts N (default 3)")
    parser.add_argument("--blocks", type=int, default=6, help="SK-DuRBs per expert M (default 6)")
    parser.add_argument("--channels", type=int, default=3, help="image channels (default 3)")
    args = parser.parse_args(argv)
    print(parameter_table(args.width, args.experts, args.blocks, args.channels))


if __name__ == "__main__":
    main()
