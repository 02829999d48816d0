"""Image sources: which images make up the train / val / test splits.

An :class:`ImageSource` hands out one :class:`ImageList` per split. An image list is a
read-only sequence of uint8 ``(C, H, W)`` tensors (values in [0, 255], ``C`` = the
source's ``channels``) with stable ``names`` and cheap ``sizes()``.

* :class:`EmbeddedSource`: scikit-image's (and matplotlib's) bundled photographs (no
  files, no download), each cut into disjoint train / val / test regions separated by a
  guard band, decoded once per process and kept in memory.
* :class:`FolderSource`: any folder tree of image files, decoded lazily; the split
  comes from list files, a CelebA-style partition file, ``train/ val/ test/``
  subfolders, fixed counts in sorted order, or seeded random fractions.

Both are picklable, so they (and their image lists) can go to DataLoader workers.

Modules (everything public is re-exported here, so ``lightrestore.data.sources.X``
keeps working, e.g. in the ``_target_`` of a saved run's config):

* :mod:`.base`: the contract: :data:`SPLITS`, :func:`check_split`, :class:`ImageSource`.
* :mod:`.image_list`: :class:`ImageList` and its in-memory / file-backed kinds.
* :mod:`.embedded`: :class:`EmbeddedSource`, its photo lists and region layout.
* :mod:`.folder_scan`: listing a folder's image files, reading headers, list files.
* :mod:`.splits`: the folder split rules' parameters, :func:`fraction_sizes`, the
  partition file format.
* :mod:`.folder`: :class:`FolderSource`.

* :mod:`.paired_folder`: :class:`PairedFolderSource`, degraded / clean pairs read from files
  in GoPro's layout (``<root>/{train,test}/<sequence>/{blur,sharp}/``); the pairs are
  cropped together by :mod:`lightrestore.data.paired` (``data=gopro``).
"""

from lightrestore.data.sources.base import SPLITS, ImageSource, check_split
from lightrestore.data.sources.embedded import (
    EMBEDDED_COLOUR_PHOTOS,
    EMBEDDED_GREY_PHOTOS,
    EmbeddedSource,
    embedded_photo_names,
    region_boxes,
)
from lightrestore.data.sources.folder import FolderSource, SkippedImagesWarning
from lightrestore.data.sources.image_list import FileImageList, ImageList, TensorImageList
from lightrestore.data.sources.paired_folder import PairedFolderSource, PairedImageList
from lightrestore.data.sources.splits import fraction_sizes

__all__ = [
    "EMBEDDED_COLOUR_PHOTOS",
    "EMBEDDED_GREY_PHOTOS",
    "SPLITS",
    "EmbeddedSource",
    "FileImageList",
    "FolderSource",
    "ImageList",
    "ImageSource",
    "PairedFolderSource",
    "PairedImageList",
    "SkippedImagesWarning",
    "TensorImageList",
    "check_split",
    "embedded_photo_names",
    "fraction_sizes",
    "region_boxes",
]
