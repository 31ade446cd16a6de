"""Cell and tissue patches for the overlays, from a Grand Challenge input or a release folder.

Reading images is the data layer's job: ``baseline_algorithm.data`` is imported here, lazily, only
when a report is asked for overlays (``--images``). It needs no torch, but it needs the image
libraries of the ``algorithm`` extra (scikit-image, tifffile); scoring never imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from evaluation.formats import InputError

__all__ = ["image_pairs"]


def _is_gc_input(folder: Path) -> bool:
    return (folder / "images" / "cell_patches").is_dir()


def image_pairs(folder: Path, *, num_images: int, split: str | None = None) -> Iterator:
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
    iterator of baseline_algorithm.data.Pair
        Pair ``k`` shows ``image_k``; each is read when the iterator reaches it.

    Raises
    ------
    InputError
        At once when the folder is neither layout or holds another number of pairs; while
        iterating when a patch cannot be read.
    """
    try:
        from baseline_algorithm.data import DataError, ReleaseDataset, iter_gc_input_pairs
        from baseline_algorithm.data.stacked import read_gc_metadata
    except ImportError as error:
        raise InputError(f"--images needs the image readers of the 'algorithm' extra "
                         f"(pip install .[algorithm,report]): {error}") from None
    folder = Path(folder)
    try:
        if _is_gc_input(folder):
            count = len(read_gc_metadata(folder))
            pairs = iter_gc_input_pairs(folder)
        elif (folder / "images").is_dir():
            if split is None:
                raise InputError(f"{folder}: a release folder as --images needs --split")
            dataset = ReleaseDataset(folder, split)
            count = len(dataset)
            pairs = (dataset[index] for index in range(count))
        else:
            raise InputError(f"{folder}: not a Grand Challenge input folder (no "
                             f"images/cell_patches/) nor an OCELOT release folder (no images/)")
    except DataError as error:
        raise InputError(str(error)) from None
    if count != num_images:
        raise InputError(f"{folder}: holds {count} image pairs but the ground truth has "
                         f"{num_images} images")
    return _reading_errors_as_input_errors(pairs, DataError)


def _reading_errors_as_input_errors(pairs: Iterator, data_error: type) -> Iterator:
    try:
        yield from pairs
    except data_error as error:
        raise InputError(str(error)) from None
