"""Restoration networks; every one follows the DL-Net split contract of
:mod:`lightrestore.models.split` (``forward(x) == head(features(x), x)``)."""

from lightrestore.models.split import SplitModel, check_split

__all__ = ["SplitModel", "check_split"]
