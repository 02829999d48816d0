"""LIRA (Liu et al., ECCV 2020, *Lifelong Image Restoration from Unknown Blended
Distortions*; lira.txt §3.1-3.2): the fork-stage, base and expanded networks and their
parts. ``python -m lightrestore.models.lira [--width 64]`` prints parameter counts.

See :mod:`lightrestore.models.lira.networks` for the networks and the decisions of ours.
"""

from lightrestore.models.lira.blocks import SKBlock, SKDuRB
from lightrestore.models.lira.networks import (
    Amalgamator,
    LiraBaseNet,
    LiraExpandedNet,
    LiraForkNet,
    count_parameters,
)
from lightrestore.models.lira.parts import (
    SGU,
    BiSGU,
    Decoder,
    Expert,
    ExpertAttention,
    FeatureExtractor,
    GateLayer,
    check_image_size,
)

__all__ = [
    "SGU",
    "Amalgamator",
    "BiSGU",
    "Decoder",
    "Expert",
    "ExpertAttention",
    "FeatureExtractor",
    "GateLayer",
    "LiraBaseNet",
    "LiraExpandedNet",
    "LiraForkNet",
    "SKBlock",
    "SKDuRB",
    "check_image_size",
    "count_parameters",
]
