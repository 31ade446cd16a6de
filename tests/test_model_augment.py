"""Augmentation: geometric transforms shared within a pair, photometric ones per patch, seeded."""

import torch

from baseline_algorithm.augment import PhotometricRanges, Sample, augment, photometric
from baseline_algorithm.model import crop_to_cell_region

NO_PHOTOMETRIC = PhotometricRanges(probability=0.0)


def consistent_sample():
    """A pair whose cell patch IS the cell region of the tissue patch; targets from the images."""
    generator = torch.Generator().manual_seed(3)
    tissue = torch.rand(3, 64, 64, generator=generator)
    box = torch.tensor([36.0, 4.0, 52.0, 20.0])
    cell = crop_to_cell_region(tissue[None], box[None], (32, 32))[0]
    return Sample(cell, tissue, (cell[0] > 0.5).long(), (tissue[0] > 0.5).long(), box)


def test_augmented_pairs_stay_aligned_for_every_flip_and_rotation():
    sample = consistent_sample()
    seen = set()
    generator = torch.Generator().manual_seed(0)
    for _ in range(40):
        moved = augment(sample, NO_PHOTOMETRIC, generator)
        recropped = crop_to_cell_region(moved.tissue_image[None], moved.cell_box[None], (32, 32))[0]
        torch.testing.assert_close(recropped, moved.cell_image, atol=1e-5, rtol=0)
        assert torch.equal(moved.cell_target, (moved.cell_image[0] > 0.5).long())
        assert torch.equal(moved.tissue_target, (moved.tissue_image[0] > 0.5).long())
        seen.add((moved.cell_image[0, 0, 0].item(), moved.cell_image[0, 0, -1].item()))
    corners = {
        (sample.cell_image[0, r, c].item(), sample.cell_image[0, r, c2].item())
        for r in (0, -1)
        for c, c2 in ((0, -1), (-1, 0))
    }
    corners |= {
        (sample.cell_image[0, r, c].item(), sample.cell_image[0, r2, c].item())
        for c in (0, -1)
        for r, r2 in ((0, -1), (-1, 0))
    }
    assert seen == corners  # all 8 orientations of the patch occurred


def test_photometric_changes_colours_only_within_range():
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    changed = photometric(
        image, PhotometricRanges(probability=1.0), torch.Generator().manual_seed(2)
    )
    assert changed.shape == image.shape
    assert changed.min() >= 0 and changed.max() <= 1
    assert not torch.allclose(changed, image, atol=1e-3)
    assert torch.equal(photometric(image, NO_PHOTOMETRIC, torch.Generator().manual_seed(2)), image)


def test_augmentation_is_reproducible_from_the_seed():
    sample = consistent_sample()
    first = augment(sample, generator=torch.Generator().manual_seed(7))
    second = augment(sample, generator=torch.Generator().manual_seed(7))
    for name in ("cell_image", "tissue_image", "cell_target", "tissue_target", "cell_box"):
        assert torch.equal(getattr(first, name), getattr(second, name)), name
