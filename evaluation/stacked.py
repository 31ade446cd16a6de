"""Grand Challenge algorithm input: N patches stacked along the first axis of one file.

::

    INPUT/metadata.json                         list, entry k describes pair k
    INPUT/images/cell_patches/<one>.tif|.mha    N*H x W x 3 uint8
    INPUT/images/tissue_patches/<one>.tif|.mha  N*H x W x 3 uint8

Patches are read one at a time, so memory holds one pair, whatever N is: uncompressed contiguous
TIFFs are read with one ``pread`` per patch; compressed, striped or tiled TIFFs are decoded only in
the strips or tiles that cover the requested rows; ``.mha`` files are read with SimpleITK's
streaming region extraction. The bytes of a TIFF patch are dropped from the page cache once read
(a container is charged for the page cache of its input, which would otherwise grow with N).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from evaluation.errors import DataError, OcelotError
from evaluation.limits import current_limits
from evaluation.metadata import read_gc_metadata
from evaluation.pairs import Pair, cell_box_in_tissue

if TYPE_CHECKING:
    import tifffile

__all__ = [
    "STACK_SUFFIXES",
    "GcInput",
    "StackedPatches",
    "find_stack",
    "iter_gc_input_pairs",
    "write_stacked_tiff",
]

STACK_SUFFIXES = (".tif", ".tiff", ".mha")


class StackedPatches:
    """Random access to the square RGB patches stacked in one TIFF or MetaImage file.

    Parameters
    ----------
    path : path
        ``.tif``/``.tiff``: one page of shape (N*S, S, 3), or N pages of shape (S, S, 3).
        ``.mha``: a 2-D image of size (S, N*S) or a 3-D image of size (S, S, N), 3 uint8 components.
    count : int
        Expected number of patches N (the length of ``metadata.json``).

    Raises
    ------
    DataError
        Missing or unreadable file, wrong pixel type, or a shape that does not hold ``count``
        square patches.
    """

    def __init__(self, path: str | os.PathLike, count: int):
        self.path = Path(path)
        self.count = count
        if not self.path.is_file():
            raise DataError(f"{self.path}: file not found")
        suffix = self.path.suffix.lower()
        try:
            if suffix == ".mha":
                self._reader = _MetaImageStack(self.path, count)
            elif suffix in (".tif", ".tiff"):
                self._reader = _TiffStack(self.path, count)
            else:
                raise DataError(
                    f"{self.path}: unsupported file type {suffix!r}, expected .tif, .tiff or .mha"
                )
        except OcelotError:
            raise
        except Exception as exc:  # noqa: BLE001 - every decoder failure is "cannot read"
            raise DataError(
                f"{self.path}: cannot read ({type(exc).__name__}: {exc})".replace("\n", " ")
            ) from None
        self.patch_shape = self._reader.patch_shape

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> np.ndarray:
        """Patch ``index`` as a new (S, S, 3) uint8 array."""
        if not 0 <= index < self.count:
            raise IndexError(index)
        try:
            patch = self._reader.read(index)
        except OcelotError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise DataError(
                f"{self.path}: cannot read patch {index} ({type(exc).__name__}: {exc})".replace(
                    "\n", " "
                )
            ) from None
        if patch.shape != self.patch_shape or patch.dtype != np.uint8:
            raise DataError(
                f"{self.path}: patch {index} decoded as {patch.dtype} {patch.shape}, "
                f"expected uint8 {self.patch_shape}"
            )
        return patch

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> StackedPatches:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _check_stack(path: Path, shape: tuple[int, ...], count: int) -> int:
    """Side S of the square patches of a (N*S, S, 3) stack; ``DataError`` unless ``count`` fit."""
    if len(shape) != 3 or shape[2] != 3:
        raise DataError(
            f"{path}: expected an RGB image (rows, columns, 3), got shape {tuple(shape)}"
        )
    rows, side = shape[0], shape[1]
    _check_side(path, side)
    if count < 1:
        raise DataError(f"{path}: metadata.json lists no pairs")
    if rows != count * side:
        raise DataError(
            f"{path}: {rows} rows hold {rows / side:g} square patches of {side} px, "
            f"but metadata.json lists {count} pairs"
        )
    return side


def _check_side(path: Path, side: int) -> None:
    """Refuse, from the header alone, a patch side no real patch has (a decompression bomb)."""
    current_limits().check("patch_side_px", int(side), str(path), "pixels per patch side")


class _TiffStack:
    def __init__(self, path: Path, count: int):
        import tifffile  # the images extra; imported where a TIFF is read

        self.path = path
        self._tiff = tifffile.TiffFile(path)
        pages = self._tiff.pages
        first = pages.first
        if first.dtype != np.uint8:
            raise DataError(f"{path}: expected uint8 pixels, got {first.dtype}")
        self._offset = None  # of the pixels, when patch k is the k-th run of bytes of the file
        separate, _, rows, columns, contig = first.shaped  # planar-configuration independent
        if len(pages) == count and count > 1 and rows != count * columns:
            # One page per patch (as some writers store a stack).
            self._page = None
            side = _check_stack(path, (count * rows, columns, separate * contig), count)
        else:
            self._page = first
            side = _check_stack(path, (rows, columns, separate * contig), count)
            if first.is_contiguous and first.compression == 1 and separate == 1:
                self._offset = first.dataoffsets[0]
        self.patch_shape = (side, side, 3)
        self._fd = os.open(path, os.O_RDONLY)  # pixel reads and page-cache advice

    def read(self, index: int) -> np.ndarray:
        side = self.patch_shape[0]
        if self._page is None:
            page = self._tiff.pages[index]
            patch = page.asarray()
            self._forget(page.dataoffsets, page.databytecounts)
            return np.moveaxis(patch, 0, -1) if page.planarconfig == 2 else patch
        if self._offset is not None:
            patch = np.empty(self.patch_shape, dtype=np.uint8)
            start = self._offset + index * patch.nbytes
            read = os.preadv(self._fd, [patch], start)
            if read != patch.nbytes:
                raise DataError(
                    f"{self.path}: truncated, patch {index} ends {patch.nbytes - read} bytes early"
                )
            self._forget([start], [patch.nbytes])
            return patch
        segments = _segment_indices(self._page, index * side, (index + 1) * side)
        patch = _read_rows(self._page, index * side, (index + 1) * side, segments)
        self._forget(
            [self._page.dataoffsets[k] for k in segments],
            [self._page.databytecounts[k] for k in segments],
        )
        return patch

    def _forget(self, offsets: Iterable[int], bytecounts: Iterable[int]) -> None:
        """Drop byte ranges just read from the page cache: every pair is read once."""
        if hasattr(os, "posix_fadvise"):  # Linux; elsewhere the cache is left to the system
            for offset, bytecount in zip(offsets, bytecounts):
                os.posix_fadvise(self._fd, offset, bytecount, os.POSIX_FADV_DONTNEED)

    def close(self) -> None:
        os.close(self._fd)
        self._tiff.close()


def _segment_indices(page: tifffile.TiffPage, row_start: int, row_stop: int) -> list[int]:
    """Indices of the strips or tiles of ``page`` that cover rows [row_start, row_stop)."""
    planes = page.samplesperpixel if page.planarconfig == 2 else 1
    if page.is_tiled:
        tiles_across = math.ceil(page.imagewidth / page.tilewidth)
        tiles_down = math.ceil(page.imagelength / page.tilelength)
        rows = range(row_start // page.tilelength, (row_stop - 1) // page.tilelength + 1)
        per_plane = tiles_across * tiles_down
        return [
            p * per_plane + r * tiles_across + c
            for p in range(planes)
            for r in rows
            for c in range(tiles_across)
        ]
    per_plane = math.ceil(page.imagelength / page.rowsperstrip)
    rows = range(row_start // page.rowsperstrip, (row_stop - 1) // page.rowsperstrip + 1)
    return [p * per_plane + r for p in range(planes) for r in rows]


def _read_rows(
    page: tifffile.TiffPage, row_start: int, row_stop: int, segments: list[int]
) -> np.ndarray:
    """Decode rows [row_start, row_stop) of a (compressed, striped or tiled) 2-D RGB page from its
    strips or tiles ``segments`` (:func:`_segment_indices` of those rows)."""
    separate, _, _, width, contig = page.shaped
    out = np.zeros((separate, row_stop - row_start, width, contig), dtype=page.dtype)
    decode = page.decode
    filehandle = page.parent.filehandle
    for index in segments:
        offset, bytecount = page.dataoffsets[index], page.databytecounts[index]
        with filehandle.lock:
            filehandle.seek(offset)
            data = filehandle.read(bytecount) if bytecount else None
        segment, (plane, _, y, x, _), _ = decode(data, index, jpegtables=page.jpegtables)
        if segment is None:
            continue  # an empty segment stays zero, as tifffile's own reader fills it
        segment = segment[0]  # drop the depth axis: (length, width, contig samples)
        top, bottom = max(y, row_start), min(y + segment.shape[0], row_stop)
        right = min(x + segment.shape[1], width)
        out[plane, top - row_start : bottom - row_start, x:right] = segment[
            top - y : bottom - y, : right - x
        ]
    if separate > 1:
        return np.moveaxis(out[..., 0], 0, -1)
    return out[0]


class _MetaImageStack:
    def __init__(self, path: Path, count: int):
        import SimpleITK as sitk  # imported here: only .mha inputs need it

        self.path = path
        self._reader = sitk.ImageFileReader()
        self._reader.SetFileName(str(path))
        self._reader.ReadImageInformation()
        if (
            self._reader.GetPixelID() not in (sitk.sitkVectorUInt8, sitk.sitkUInt8)
            or self._reader.GetNumberOfComponents() != 3
        ):
            raise DataError(
                f"{path}: expected 3-component uint8 pixels, got "
                f"{sitk.GetPixelIDValueAsString(self._reader.GetPixelID())} with "
                f"{self._reader.GetNumberOfComponents()} components"
            )
        size = self._reader.GetSize()
        self._volume = len(size) == 3 and size[2] > 1
        if self._volume:
            if size[2] != count or size[0] != size[1]:
                raise DataError(
                    f"{path}: volume of size {size} does not hold {count} square patches "
                    "(metadata.json)"
                )
            side = size[0]
            _check_side(path, side)
        else:
            side = _check_stack(path, (size[1], size[0], 3), count)
        self._dimension = len(size)
        self.patch_shape = (side, side, 3)

    def read(self, index: int) -> np.ndarray:
        import SimpleITK as sitk

        side = self.patch_shape[0]
        if self._volume:
            start, extent = [0, 0, index], [side, side, 1]
        else:
            start, extent = [0, index * side], [side, side]
            if self._dimension == 3:
                start, extent = start + [0], extent + [1]
        self._reader.SetExtractIndex(start)
        self._reader.SetExtractSize(extent)
        return sitk.GetArrayFromImage(self._reader.Execute()).reshape(self.patch_shape)

    def close(self) -> None:
        pass


def find_stack(directory: Path) -> Path:
    """The single stacked image file in ``directory``; ``DataError`` if none or several."""
    if not directory.is_dir():
        raise DataError(f"{directory}: directory not found")
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in STACK_SUFFIXES)
    if len(files) != 1:
        found = ", ".join(p.name for p in files) or "none"
        raise DataError(f"{directory}: expected exactly one .tif/.tiff/.mha file, found {found}")
    return files[0]


class GcInput:
    """An opened Grand Challenge input folder: its pairs, read one at a time.

    Opening reads ``metadata.json`` once and checks both stacks against it (type, shape, one
    square patch per metadata entry), so that a malformed input is reported before any work.

    Parameters
    ----------
    input_dir : path
        The folder mounted at ``/input``.

    Attributes
    ----------
    root : Path
    metadata : list of dict
        Entry k describes pair k.

    Raises
    ------
    DataError
        A missing folder or file, an unreadable stack, or patch counts that differ from the
        metadata list.

    Examples
    --------
    >>> with GcInput("test_data/input") as opened:  # doctest: +SKIP
    ...     for pair in opened:
    ...         print(pair.name, pair.cell_image.shape)
    """

    def __init__(self, input_dir: str | os.PathLike):
        self.root = Path(input_dir)
        if not self.root.is_dir():
            raise DataError(
                f"{self.root}: input folder not found (expected images/cell_patches/, "
                "images/tissue_patches/ and metadata.json)"
            )
        self.metadata = read_gc_metadata(self.root)
        cell_path = find_stack(self.root / "images" / "cell_patches")
        tissue_path = find_stack(self.root / "images" / "tissue_patches")
        self._cells = StackedPatches(cell_path, len(self.metadata))
        try:
            self._tissues = StackedPatches(tissue_path, len(self.metadata))
        except BaseException:
            self._cells.close()
            raise

    def __len__(self) -> int:
        return len(self.metadata)

    def pair(self, index: int) -> Pair:
        """Pair ``index``: ``name`` is ``"image_<index>"``; ``cell_points`` is empty and
        ``tissue_mask`` None (the input carries no annotations)."""
        meta = self.metadata[index]
        tissue_height, tissue_width = self._tissues.patch_shape[:2]
        return Pair(
            name=f"image_{index}",
            cell_image=self._cells[index],
            tissue_image=self._tissues[index],
            cell_points=np.zeros((0, 3), dtype=np.int64),
            tissue_mask=None,
            meta=meta,
            cell_box=cell_box_in_tissue(meta, tissue_height, tissue_width),
        )

    def __iter__(self) -> Iterator[Pair]:
        return (self.pair(index) for index in range(len(self)))

    def close(self) -> None:
        self._cells.close()
        self._tissues.close()

    def __enter__(self) -> GcInput:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def iter_gc_input_pairs(input_dir: str | os.PathLike) -> Iterator[Pair]:
    """Yield the pairs of a Grand Challenge input folder one at a time (see :class:`GcInput`)."""
    with GcInput(input_dir) as opened:
        yield from opened


def write_stacked_tiff(
    path: str | os.PathLike,
    patches: np.ndarray | Iterable[np.ndarray],
    *,
    compression: str | None = None,
    rowsperstrip: int | None = None,
    tile: tuple[int, int] | None = None,
) -> None:
    """Write patches stacked along the first axis as one RGB TIFF page (the Grand Challenge input).

    Parameters
    ----------
    path : path
        Written through a temporary file in the same directory, then renamed.
    patches : ndarray of uint8, shape (N, S, S, 3), or iterable of (S, S, 3) arrays
        An ``np.memmap`` keeps memory low for large N.
    compression : str, optional
        tifffile compression name (``"zlib"``, ``"lzw"``, ...), used with the
        horizontal-differencing predictor; None writes uncompressed data in one strip, as the
        platform does.
    rowsperstrip, tile
        Strip height or (tile height, tile width) in pixels; passed to ``tifffile``.
    """
    stack = patches if isinstance(patches, np.ndarray) else np.stack(list(patches))
    if stack.ndim != 4 or stack.shape[3] != 3 or stack.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 patches of shape (N, S, S, 3), got {stack.dtype} {stack.shape}"
        )
    import tifffile

    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp")
    tifffile.imwrite(
        temporary,
        stack.reshape(-1, *stack.shape[2:]),
        photometric="rgb",
        compression=compression,
        predictor=compression is not None,
        rowsperstrip=rowsperstrip,
        tile=tile,
        metadata=None,
    )
    os.replace(temporary, path)
