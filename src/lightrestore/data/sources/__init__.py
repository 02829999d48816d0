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

Paired sources (not implemented yet). A ``PairedFolderSource`` for data sets that come
as degraded / clean pairs (GoPro-style blurred / sharp frames) would go in
``paired_folder.py``, reusing :mod:`.folder_scan` and :mod:`.splits`, with this contract:

* input: two folder trees (``degraded_root`` + ``clean_root``), or one ``root`` whose
  images sit in ``blur/`` + ``sharp/`` subfolders at any depth (GoPro:
  ``train/<sequence>/blur/*.png`` and ``train/<sequence>/sharp/*.png``); a pair is the
  two files with the same relative path (``blur`` <-> ``sharp`` swapped), and an image
  without its partner is a :class:`~lightrestore.errors.DataError` naming it;
* splits: the :class:`FolderSource` rules (GoPro ships ``train/`` and ``test/``
  subfolders), applied to the clean images, each pair kept whole;
* ``split(name)`` returns a paired :class:`FileImageList`: ``names`` / ``sizes()`` /
  ``[i]`` are the clean images (so everything that takes an :class:`ImageList` still
  works), and ``degraded(i)`` returns the partner as the same-shaped uint8
  ``(C, H, W)`` tensor in [0, 255], after the same ``channels`` / ``load_size``; the
  two headers are read at construction and a size mismatch is a ``DataError``;
* ``describe()`` adds ``"kind": "paired_folder"`` and both roots.

Consuming the pairs (cropping the same window from both images instead of applying
the task's synthetic degradation) belongs to the training / evaluation sets, not here.
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
    "SkippedImagesWarning",
    "TensorImageList",
    "check_split",
    "embedded_photo_names",
    "fraction_sizes",
    "region_boxes",
]
