"""Cell and tissue patches for the overlays, from a Grand Challenge input or a release folder.

Reading images needs the ``images`` extra (pillow, tifffile); it is imported only when a report
is asked for overlays (``--images``), so scoring never pays for it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path

from evaluation.errors import DataError
from evaluation.metadata import read_gc_metadata
from evaluation.pairs import Pair

__all__ = ["image_pairs"]


def _is_gc_input(folder: Path) -> bool:
    return (folder / "images" / "cell_patches").is_dir()


def image_pairs(folder: Path, *, num_images: int, split: str | None = None) -> Iterator[Pair]:
    """Check an images folder now, then give its pairs one at a time, image ``0..num_images-1``.

    Parameters
    ----------
    folder : Path
        A Grand Challenge input folder (``images/cell_patches/``, ``images/tissue_patches/``,
        ``metadata.json``) or an OCELOT release folder (``images/<split>/cell/`` ...).
    num_images : int
        Number of images of the ground truth; the folder must hold exactly these.
    split : str, optional
        The split of a release folder.

    Returns
    -------
    iterator of evaluation.pairs.Pair
        Pair ``k`` shows ``image_k``; each is read when the iterator reaches it.

    Raises
    ------
    DataError
        At once when the image libraries are missing, or the folder is neither layout or holds
        another number of pairs; while iterating when a patch cannot be read.
    """
    missing = [name for name in ("PIL", "tifffile") if importlib.util.find_spec(name) is None]
    if missing:
        raise DataError(
            f"{folder}: reading images needs {' and '.join(missing)}, from the "
            "'images' extra: pip install .[images,report]"
        )
    from evaluation.release import ReleaseDataset
    from evaluation.stacked import iter_gc_input_pairs

    folder = Path(folder)
    if _is_gc_input(folder):
        count = len(read_gc_metadata(folder))
        pairs = iter_gc_input_pairs(folder)
    elif (folder / "images").is_dir():
        if split is None:
            raise DataError(f"{folder}: a release folder of images needs a split to read")
        dataset = ReleaseDataset(folder, split)
        count = len(dataset)
        pairs = (dataset[index] for index in range(count))
    else:
        raise DataError(
            f"{folder}: not a Grand Challenge input folder (no images/cell_patches/) "
            "nor an OCELOT release folder (no images/)"
        )
    if count != num_images:
        raise DataError(
            f"{folder}: holds {count} image pairs but the ground truth has {num_images} images"
        )
    return pairs
