"""Slide readers, resolution metadata, resampled fields, tissue masks and the synthetic slide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from baseline_algorithm.slides.fields import read_field, read_thumbnail
from baseline_algorithm.slides.reader import TiffSlide, open_slide, slide_mpp
from baseline_algorithm.slides.synthetic import synthesize_slide
from baseline_algorithm.slides.tissue import saturation_of, tissue_mask


@pytest.fixture(scope="module")
def slide(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("slide")
    return synthesize_slide(
        folder / "slide.tiff", (2048, 1536), seed=5, tissue=(512, 0, 2048, 1536), progress=False
    )


def test_synthetic_slide_is_a_pyramid_at_0_2_um(slide):
    tiff, truth = slide
    with tifffile.TiffFile(tiff) as tif:
        page = tif.pages[0]
        assert page.is_tiled and page.resolutionunit.name == "CENTIMETER"
        assert page.resolution == (50_000.0, 50_000.0)
        assert [level.shape for level in tif.series[0].levels] == [
            (1536, 2048, 3),
            (768, 1024, 3),
            (384, 512, 3),
        ]
    document = json.loads(truth.read_text())
    assert document["num_images"] == 1 and len(document["points"]) > 100
    xy = np.array([e["point"][:2] for e in document["points"]])
    assert xy[:, 0].min() >= 512 and xy[:, 0].max() < 2048 and xy[:, 1].max() < 1536
    with open_slide(tiff) as opened:
        assert (opened.read_region(0, 0, 0, 512, 1536) == 255).all()  # no tissue: glass
        # One scene at every level: level 1 is level 0 seen at twice the pixel size.
        fine = opened.read_region(0, 1024, 512, 512, 512).astype(float)
        coarse = opened.read_region(1, 512, 256, 256, 256).astype(float)
        halved = fine.reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))
        assert np.abs(halved - coarse).mean() < 12


def test_synthetic_slide_depends_only_on_its_arguments(slide, tmp_path):
    tiff, truth = slide
    again, again_truth = synthesize_slide(
        tmp_path / "again.tiff", (2048, 1536), seed=5, tissue=(512, 0, 2048, 1536), progress=False
    )
    assert again_truth.read_text() == truth.read_text()
    assert np.array_equal(tifffile.imread(again), tifffile.imread(tiff))


def test_openslide_reads_what_tifffile_reads(slide):
    openslide = pytest.importorskip("openslide")
    from baseline_algorithm.slides.reader import OpenSlideSlide

    tiff, _ = slide
    assert openslide.OpenSlide(str(tiff)).properties["openslide.vendor"] == "generic-tiff"
    with OpenSlideSlide(tiff) as by_openslide, TiffSlide(tiff) as by_tifffile:
        assert by_openslide.metadata_mpp == pytest.approx((0.2, 0.2))
        assert [(v.width, v.height) for v in by_openslide.levels] == [
            (v.width, v.height) for v in by_tifffile.levels
        ]
        for level, box in ((0, (-100, 1400, 700, 300)), (1, (600, 100, 300, 500))):
            assert np.array_equal(
                by_openslide.read_region(level, *box), by_tifffile.read_region(level, *box)
            )


def _write(path: Path, **kwargs) -> Path:
    tifffile.imwrite(path, np.full((256, 256, 3), 200, np.uint8), photometric="rgb", **kwargs)
    return path


def test_resolution_from_metadata(tmp_path):
    inches = _write(
        tmp_path / "inch.tiff", resolution=(25_400 / 0.5, 25_400 / 0.25), resolutionunit="INCH"
    )
    ome = tmp_path / "ome.ome.tiff"
    tifffile.imwrite(
        ome,
        np.full((256, 256, 3), 200, np.uint8),
        photometric="rgb",
        metadata={
            "axes": "YXS",
            "PhysicalSizeX": 0.25,
            "PhysicalSizeY": 0.26,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeYUnit": "µm",
        },
    )
    unitless = _write(tmp_path / "none.tiff", resolution=(1, 1), resolutionunit="NONE")
    with open_slide(inches) as a, open_slide(ome) as b, open_slide(unitless) as c:
        assert a.metadata_mpp == pytest.approx((0.5, 0.25))
        assert b.metadata_mpp == pytest.approx((0.25, 0.26))
        assert c.metadata_mpp is None  # a ratio without a unit is not a size: never guessed
        assert slide_mpp(c, 0.3) == (0.3, 0.3)


def test_field_resampled_matches_the_level_it_replaces(slide):
    """A 0.4 µm/px field read from level 0 (smoothed, interpolated) looks like level 1 itself."""
    tiff, _ = slide
    with open_slide(tiff) as opened:
        level1 = opened.read_region(1, 600, 200, 256, 256).astype(float)
        # Off a level's pixel size (0.39 µm/px), the field comes from level 0 by resampling.
        box = (1200, 400, 1200 + 512 * 0.975, 400 + 512 * 0.975)
        field = read_field(opened, box, 256).astype(float)
        shifted = read_field(opened, (1200, 400, 1712, 912), 256).astype(float)
    assert np.array_equal(shifted, level1)  # on the level's pixels: copied
    assert np.abs(field[:200, :200] - level1[:200, :200]).mean() < 25


def test_tissue_mask_finds_the_tissue_and_not_the_glass(slide):
    tiff, _ = slide
    with open_slide(tiff) as opened:
        thumbnail, downsample = read_thumbnail(opened, 8.0, 0.2)
    mask = tissue_mask(thumbnail, downsample * 0.2)
    assert thumbnail.shape[:2] == (39, 52) and downsample == 40
    glass_columns = int(512 / downsample)
    assert not mask[:, :glass_columns].any()
    assert mask[:, glass_columns + 1 :].mean() > 0.4


def test_saturation_is_hsv_saturation():
    from skimage.color import rgb2hsv

    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    image[0, 0] = 0
    assert np.allclose(saturation_of(image), rgb2hsv(image)[..., 1], atol=1e-6)


def test_thumbnail_is_capped_so_its_memory_does_not_grow_with_the_slide(slide):
    tiff, _ = slide
    with open_slide(tiff) as opened:
        capped, downsample = read_thumbnail(opened, 8.0, 0.2, max_side_px=20)
        free, _ = read_thumbnail(opened, 8.0, 0.2)
    assert max(capped.shape[:2]) <= 20 and downsample > 40
    assert max(free.shape[:2]) == 52
