"""Degradation families with difficulty ladders (see :mod:`.base` for the contract)."""

from __future__ import annotations

from lightrestore.degradations.base import Degradation, Ladder, Params
from lightrestore.degradations.blur import GaussianBlur
from lightrestore.degradations.chain import BlendedDistortions
from lightrestore.degradations.darkness import Darkness
from lightrestore.degradations.haze import Haze
from lightrestore.degradations.inpaint import Inpaint
from lightrestore.degradations.interpolate import Interpolate
from lightrestore.degradations.jpeg import JPEG
from lightrestore.degradations.motion_blur import MotionBlur
from lightrestore.degradations.noise import GaussianNoise
from lightrestore.degradations.resize import Resize

__all__ = [
    "BlendedDistortions",
    "Darkness",
    "Degradation",
    "GaussianBlur",
    "GaussianNoise",
    "Haze",
    "Inpaint",
    "Interpolate",
    "JPEG",
    "Ladder",
    "MotionBlur",
    "Params",
    "Resize",
]
