"""The synthetic generator: determinism, geometry, and the structure the model demo relies on."""

from __future__ import annotations

import filecmp

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.stats import ks_2samp
from skimage.color import rgb2gray
from skimage.transform import downscale_local_mean

from baseline_algorithm.data import synthesize_dataset
from baseline_algorithm.data.statistics import dataset_statistics
from baseline_algorithm.data.synthetic import (
    TISSUE_FIELD_UM,
    SyntheticConfig,
    _sample_fields,
    make_scene,
    synthesize_pair,
)
from evaluation.constants import TC
from evaluation.release import ReleaseDataset


def test_same_seed_same_pair_other_seed_other_pair():
    config = SyntheticConfig(size=128)
    first, again = (
        synthesize_pair("001", 5, 0, "train", config),
        synthesize_pair("001", 5, 0, "train", config),
    )
    for name in ("cell_image", "tissue_image", "cell_points", "tissue_mask"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert first.meta == again.meta
    other = synthesize_pair("001", 6, 0, "train", config)
    assert not np.array_equal(first.cell_image, other.cell_image)


@pytest.mark.parametrize("workers", [1, 2])
def test_dataset_is_deterministic_for_a_seed(tmp_path, workers):
    a = synthesize_dataset(tmp_path / "a", (2, 1, 1), size=64, seed=9, progress=False)
    b = synthesize_dataset(
        tmp_path / "b", (2, 1, 1), size=64, seed=9, progress=False, workers=workers
    )
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert len(files) > 20
    for relative in files:
        assert filecmp.cmp(a / relative, b / relative, shallow=False), relative


@pytest.mark.parametrize("size", [64, 256])
def test_size_sets_resolution_and_keeps_the_4x_field_of_view(size):
    pair = synthesize_pair("001", 1, 0, "train", SyntheticConfig(size=size))
    assert pair.cell_image.shape == pair.tissue_image.shape == (size, size, 3)
    assert pair.meta["cell"]["resized_mpp_x"] == pytest.approx(0.2 * 1024 / size)
    assert pair.meta["tissue"]["resized_mpp_x"] == pytest.approx(0.8 * 1024 / size)
    x0, y0, x1, y1 = pair.cell_box
    assert x1 - x0 == y1 - y0 == size / 4
    assert (
        0 <= x0 and x1 <= size and 0 <= y0 and y1 <= size
    )  # the cell patch lies inside the tissue patch
    assert {"organ", "subset", "slide_name", "patch_x_offset", "patch_y_offset"} <= set(pair.meta)


def _cell_patch_seen_in_tissue(pair, shift: float = 0.0) -> float:
    """Correlation between the cell patch averaged to tissue resolution and the tissue crop."""
    cell = downscale_local_mean(rgb2gray(pair.cell_image), (4, 4))
    x0, y0 = pair.cell_box[0] + shift, pair.cell_box[1]
    j = np.arange(cell.shape[0])
    rows, cols = np.meshgrid(y0 + j, x0 + j, indexing="ij")
    crop = ndi.map_coordinates(rgb2gray(pair.tissue_image), [rows, cols], order=1)
    return float(np.corrcoef(cell.ravel(), crop.ravel())[0, 1])


@pytest.mark.parametrize("index", range(3))
def test_cell_patch_is_the_tissue_patch_region_of_its_box(index):
    pair = synthesize_pair("001", 11, index, "train", SyntheticConfig(size=512))
    aligned = _cell_patch_seen_in_tissue(pair)
    assert aligned > 0.8
    assert aligned > _cell_patch_seen_in_tissue(pair, shift=12) + 0.1


def test_cell_points_lie_on_nuclei():
    pair = synthesize_pair("001", 2, 1, "train", SyntheticConfig(size=512))
    grey = rgb2gray(pair.cell_image)
    on_points = grey[pair.cell_points[:, 1], pair.cell_points[:, 0]]
    assert np.median(on_points) < np.percentile(grey, 15)


def _scene_cells(count, seed=0):
    rng = np.random.default_rng(seed)
    scenes = [make_scene(rng, SyntheticConfig(), "kidney") for _ in range(count)]
    nuclei = [scene.nuclei for scene in scenes]
    return scenes, {
        "label": np.concatenate([n.label for n in nuclei]),
        "shared": np.concatenate([n.shared_look for n in nuclei]),
        "radius": np.sqrt(np.prod(np.concatenate([n.semi_axes for n in nuclei]), axis=1)),
        "darkness": np.concatenate([n.darkness for n in nuclei]),
    }


def test_looks_overlap_between_classes_but_regions_separate_them():
    _, cells = _scene_cells(6)
    tc, bc, shared = cells["label"] == TC, cells["label"] != TC, cells["shared"]
    # Most cells of either class look the same ...
    assert shared[tc].mean() > 0.75 and shared[bc].mean() > 0.75
    for feature in (cells["radius"], cells["darkness"]):
        assert ks_2samp(feature[shared & tc], feature[shared & bc]).pvalue > 0.001
    # ... while the others are told apart by appearance.
    assert cells["radius"][~shared & tc].min() > cells["radius"][~shared & bc].max()


def test_recognisable_cells_do_not_give_the_region_away():
    scenes, cells = _scene_cells(8, seed=1)
    in_cancer = np.concatenate(
        [
            _sample_fields(
                s.fields["cancer"][None], s.nuclei.xy, TISSUE_FIELD_UM / s.fields["cancer"].shape[0]
            )[0]
            > s.cancer_threshold
            for s in scenes
        ]
    )
    distinct_tc = (cells["label"] == TC) & ~cells["shared"]
    distinct = ~cells["shared"]
    inside = distinct_tc[distinct & in_cancer].mean()
    outside = distinct_tc[distinct & ~in_cancer].mean()
    assert abs(inside - outside) < 0.08
    shared_tc = (cells["label"] == TC) & cells["shared"]
    assert (
        shared_tc[cells["shared"] & in_cancer].mean()
        > 0.75
        > 0.1
        > shared_tc[cells["shared"] & ~in_cancer].mean()
    )


def test_slide_tint_hides_the_cancer_tint_from_a_patch_inside_one_region():
    # The cytoplasm haematoxylin of CA on one slide is often that of stroma on another slide: a
    # patch inside one region cannot tell which it is, only a comparison across regions can.
    rng = np.random.default_rng(2)
    tints = np.array(
        [make_scene(rng, SyntheticConfig(size=64), "kidney").cytoplasm_tint for _ in range(60)]
    )
    cancer = tints * SyntheticConfig().cancer_tint
    ambiguous = (cancer > tints.min()) & (cancer < tints.max())
    assert ambiguous.mean() > 0.4


@pytest.mark.slow
def test_generated_dataset_matches_ocelot_statistics(tmp_path):
    root = synthesize_dataset(tmp_path / "set", (40, 0, 0), size=128, seed=4, progress=False)
    dataset = ReleaseDataset(root, "train")
    stats = dataset_statistics(dataset)
    assert stats.cells.sum() > 3000
    assert 0.30 < stats.tc_share < 0.40
    assert 0.85 < stats.tc_inside_share < 0.95
    assert 0.80 < stats.bc_outside_share < 0.92
    background, cancer, unknown = stats.tissue_shares
    assert 0.01 < unknown < 0.08 and 0.15 < cancer < 0.5
    assert len(stats.organs) >= 5
    assert {dataset.meta(k)["subset"] for k in range(len(dataset))} == {"train"}
    # Cancer areas are larger than a cell patch: most CA pixels belong to regions bigger than it.
    cell_area = (128 / 4) ** 2
    sizes = []
    for k in range(len(dataset)):
        regions, count = ndi.label(dataset.tissue_mask(k) == 2)
        sizes.extend(np.bincount(regions.ravel())[1:])
    sizes = np.array(sizes)
    assert sizes[sizes > cell_area].sum() > 0.7 * sizes.sum()
