"""Stacked Grand Challenge input: every TIFF/MetaImage variant reads back pair by pair."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import tifffile

from evaluation.errors import DataError, OcelotError
from evaluation.stacked import StackedPatches, iter_gc_input_pairs, write_stacked_tiff

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def _patches(count: int, side: int, seed: int = 0) -> np.ndarray:
    # Smooth-ish content so that predictors and compressors do real work, plus noise.
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, side, dtype=np.float32)
    base = ramp[None, :, None] + ramp[:, None, None] * 0.2
    return np.clip(base + rng.integers(0, 40, (count, side, side, 3)), 0, 255).astype(np.uint8)


def _metadata(count: int) -> list[dict]:
    return [
        {"patch_x_offset": 0.5, "patch_y_offset": 0.25 + 0.05 * k, "organ": "kidney"}
        for k in range(count)
    ]


def _gc_input(
    root: Path, cells: np.ndarray, tissues: np.ndarray, metadata: list[dict], **tiff_options
) -> Path:
    for kind, stack in (("cell_patches", cells), ("tissue_patches", tissues)):
        (root / "images" / kind).mkdir(parents=True)
        write_stacked_tiff(root / "images" / kind / "stack.tif", stack, **tiff_options)
    (root / "metadata.json").write_text(json.dumps(metadata))
    return root


TIFF_VARIANTS = {
    "uncompressed one strip": {},
    "deflate, strips straddling pairs": {"compression": "zlib", "rowsperstrip": 24},
    "lzw with predictor": {"compression": "lzw"},
    "tiled, partial edge tiles": {"compression": "zlib", "tile": (32, 32)},
}


@pytest.mark.parametrize("options", TIFF_VARIANTS.values(), ids=TIFF_VARIANTS.keys())
def test_stacked_tiff_variants_read_back_exactly(tmp_path, options):
    patches = _patches(3, 40)  # 40 px: tiles of 32 leave partial tiles at the right and bottom
    path = tmp_path / "stack.tif"
    write_stacked_tiff(path, patches, **options)
    with StackedPatches(path, 3) as stack:
        assert stack.patch_shape == (40, 40, 3)
        for k in (2, 0, 1):  # any order
            np.testing.assert_array_equal(stack[k], patches[k])


@pytest.mark.parametrize("options", TIFF_VARIANTS.values(), ids=TIFF_VARIANTS.keys())
def test_every_byte_read_is_dropped_from_the_page_cache(tmp_path, monkeypatch, options):
    """The container is charged for the page cache of its input: reading patch k releases the
    file ranges that hold it, and together the patches release all of the pixel data."""
    patches = _patches(3, 40)
    path = tmp_path / "stack.tif"
    write_stacked_tiff(path, patches, **options)
    released = []
    monkeypatch.setattr(
        os,
        "posix_fadvise",
        lambda fd, offset, length, advice: released.append((offset, length, advice)),
        raising=False,
    )
    with StackedPatches(path, 3) as stack:
        for k in range(3):
            before = len(released)
            np.testing.assert_array_equal(stack[k], patches[k])
            assert len(released) > before
    page = tifffile.TiffFile(path).pages.first
    pixel_bytes = set()
    for offset, length in zip(page.dataoffsets, page.databytecounts):
        pixel_bytes.update(range(offset, offset + length))
    released_bytes = set()
    for offset, length, advice in released:
        assert advice == os.POSIX_FADV_DONTNEED
        released_bytes.update(range(offset, offset + length))
    assert pixel_bytes <= released_bytes


def test_planar_separate_and_one_page_per_patch(tmp_path):
    patches = _patches(3, 32)
    tifffile.imwrite(
        tmp_path / "planar.tif",
        np.moveaxis(patches.reshape(-1, 32, 3), -1, 0),
        photometric="rgb",
        planarconfig="separate",
        compression="zlib",
        rowsperstrip=16,
    )
    tifffile.imwrite(tmp_path / "pages.tif", patches, photometric="rgb")
    for name in ("planar.tif", "pages.tif"):
        with StackedPatches(tmp_path / name, 3) as stack:
            for k in range(3):
                np.testing.assert_array_equal(stack[k], patches[k])


@pytest.mark.parametrize("layout", ["2d", "3d", "2d compressed"])
def test_metaimage_stacks_read_back_exactly(tmp_path, layout):
    patches = _patches(3, 24)
    if layout.startswith("2d"):
        image = sitk.GetImageFromArray(patches.reshape(-1, 24, 3), isVector=True)
    else:
        image = sitk.GetImageFromArray(patches, isVector=True)
    path = tmp_path / "stack.mha"
    sitk.WriteImage(image, str(path), useCompression=layout.endswith("compressed"))
    with StackedPatches(path, 3) as stack:
        for k in range(3):
            np.testing.assert_array_equal(stack[k], patches[k])


def test_compressed_stack_streams_one_pair_at_a_time(tmp_path):
    count, side = 24, 128
    patches = _patches(count, side)
    path = tmp_path / "stack.tif"
    write_stacked_tiff(path, patches, compression="zlib", rowsperstrip=32)
    pair_bytes = side * side * 3
    with StackedPatches(path, count) as stack:
        tracemalloc.start()
        for k in range(count):
            patch = stack[k]
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    np.testing.assert_array_equal(patch, patches[-1])
    assert peak < 4 * pair_bytes, f"peak {peak} B while reading; one patch is {pair_bytes} B"


def test_iter_gc_input_pairs_yields_every_pair_in_order(tmp_path):
    cells, tissues = _patches(3, 32, seed=1), _patches(3, 32, seed=2)
    root = _gc_input(tmp_path / "input", cells, tissues, _metadata(3), compression="zlib")
    pairs = list(iter_gc_input_pairs(root))
    assert [p.name for p in pairs] == ["image_0", "image_1", "image_2"]
    for k, pair in enumerate(pairs):
        np.testing.assert_array_equal(pair.cell_image, cells[k])
        np.testing.assert_array_equal(pair.tissue_image, tissues[k])
        assert pair.cell_points.shape == (0, 3) and pair.tissue_mask is None
        assert pair.meta == _metadata(3)[k]
        assert pair.cell_box == pytest.approx(
            (12.0, (0.25 + 0.05 * k) * 32 - 4, 20.0, (0.25 + 0.05 * k) * 32 + 4)
        )


def _expect_one_line(error: pytest.ExceptionInfo, *fragments: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_count_mismatch_with_metadata_names_file(tmp_path):
    root = _gc_input(tmp_path / "input", _patches(2, 16), _patches(2, 16), _metadata(3))
    with pytest.raises(DataError) as error:
        list(iter_gc_input_pairs(root))
    _expect_one_line(error, "stack.tif", "32 rows", "metadata.json lists 3 pairs")


def test_cell_and_tissue_counts_differ(tmp_path):
    root = _gc_input(tmp_path / "input", _patches(2, 16), _patches(3, 16), _metadata(2))
    with pytest.raises(DataError) as error:
        list(iter_gc_input_pairs(root))
    _expect_one_line(error, "tissue_patches", "48 rows")


@pytest.mark.parametrize(
    "damage, fragments",
    [
        (lambda root: (root / "metadata.json").unlink(), ("metadata.json", "file not found")),
        (
            lambda root: (root / "metadata.json").write_text("{not json"),
            ("metadata.json", "not valid JSON"),
        ),
        (
            lambda root: (root / "metadata.json").write_text("{}"),
            ("metadata.json", "expected a JSON list"),
        ),
        (
            lambda root: (root / "metadata.json").write_text(
                json.dumps([{"patch_x_offset": 0.5}] * 2)
            ),
            ("metadata.json", "[0].patch_y_offset", "null"),
        ),
        (
            lambda root: (root / "images" / "cell_patches" / "stack.tif").unlink(),
            ("cell_patches", "found none"),
        ),
        (
            lambda root: (root / "images" / "cell_patches" / "other.tif").write_bytes(b"x"),
            ("cell_patches", "exactly one", "other.tif, stack.tif"),
        ),
        (
            lambda root: (root / "images" / "tissue_patches" / "stack.tif").write_bytes(
                b"II*\x00garbage"
            ),
            ("tissue_patches/stack.tif", "cannot read"),
        ),
        (
            lambda root: tifffile.imwrite(
                root / "images" / "cell_patches" / "stack.tif", np.zeros((32, 16), np.uint8)
            ),
            ("cell_patches/stack.tif", "expected an RGB image"),
        ),
        (
            lambda root: tifffile.imwrite(
                root / "images" / "cell_patches" / "stack.tif",
                np.zeros((32, 16, 3), np.uint16),
                photometric="rgb",
            ),
            ("cell_patches/stack.tif", "uint8"),
        ),
    ],
    ids=[
        "no metadata",
        "bad json",
        "metadata not a list",
        "no y offset",
        "no stack",
        "two stacks",
        "corrupt",
        "grey",
        "16 bit",
    ],
)
def test_broken_gc_inputs_raise_one_line_naming_the_file(tmp_path, damage, fragments):
    root = _gc_input(tmp_path / "input", _patches(2, 16), _patches(2, 16), _metadata(2))
    damage(root)
    with pytest.raises(OcelotError) as error:
        list(iter_gc_input_pairs(root))
    _expect_one_line(error, *fragments)


def test_real_sample_reads_as_the_platform_mounts_it():
    sample = SHARED / "real_sample" / "input"
    if not sample.is_dir():
        pytest.skip(f"{sample} not present")
    (pair,) = list(iter_gc_input_pairs(sample))
    reference = tifffile.imread(sample / "images" / "cell_patches" / "000.tif")
    np.testing.assert_array_equal(pair.cell_image, reference)
    assert pair.tissue_image.shape == (1024, 1024, 3)
    assert pair.meta["organ"] == "kidney"
    # patch_x_offset 0.625, patch_y_offset 0.125 of a 1024 px tissue patch, side 256.
    assert pair.cell_box == (512.0, 0.0, 768.0, 256.0)
