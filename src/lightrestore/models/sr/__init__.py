"""Super-resolution backbones: SRCNN, VDSR, DRRN, IDN, LapSRN, EDSR.

All follow one convention (see :mod:`lightrestore.models.sr.common`): LR ``(B, C, h, w)``
in [0, 1] -> SR ``(B, C, h·s, w·s)``, unclamped; ``features(x) -> z`` (last hidden
representation before its activation) and ``head(z, x) -> y`` (activation + last layer
+ global skip) with ``forward(x) == head(features(x), x)``.
"""

from lightrestore.models.sr.common import (
    DIV2K_RGB_MEAN,
    MeanShift,
    SRNet,
    bicubic_upsample,
    count_parameters,
    transposed_upsampler,
)
from lightrestore.models.sr.drrn import DRRN, drrn_dlnet, drrn_original
from lightrestore.models.sr.edsr import EDSR, edsr, edsr_baseline
from lightrestore.models.sr.idn import IDN
from lightrestore.models.sr.lapsrn import LapSRN
from lightrestore.models.sr.srcnn import SRCNN
from lightrestore.models.sr.vdsr import VDSR, vdsr_dlnet

__all__ = [
    "DIV2K_RGB_MEAN",
    "DRRN",
    "EDSR",
    "IDN",
    "SRCNN",
    "VDSR",
    "LapSRN",
    "MeanShift",
    "SRNet",
    "bicubic_upsample",
    "count_parameters",
    "drrn_dlnet",
    "drrn_original",
    "edsr",
    "edsr_baseline",
    "transposed_upsampler",
    "vdsr_dlnet",
]
