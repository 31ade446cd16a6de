"""The tissue context lands on the cell region, exactly, also after the shared flips and rotations."""

import numpy as np
import pytest
import torch

from baseline_algorithm.augment import Sample, flip_rotate, flip_rotate_box
from baseline_algorithm.model import (
    INJECTION_POINTS,
    DeepLabV3PlusBranch,
    crop_to_cell_region,
)


def coordinate_map(height, width):
    """(1, 2, H, W) map whose channels are the x and y of each pixel centre (pixel edges at integers)."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    return torch.tensor(np.stack([xs, ys])[None], dtype=torch.float32)


def expected_centres(box, size):
    """x and y of the centres of a size x size grid laid over box, in tissue pixels."""
    x0, y0, x1, y1 = box
    steps = (np.arange(size) + 0.5) / size
    return x0 + steps * (x1 - x0), y0 + steps * (y1 - y0)


@pytest.mark.parametrize("size", [8, 16, 64, 100])  # shrink 4x and 2x, enlarge 2x, non-integer ratio
def test_crop_reproduces_tissue_coordinates_per_sample(size):
    tissue = coordinate_map(128, 128).repeat(3, 1, 1, 1)
    boxes = torch.tensor([[16.0, 48.0, 48.0, 80.0], [80.0, 8.0, 112.0, 40.0], [40.5, 40.25, 72.5, 72.25]])
    crops = crop_to_cell_region(tissue, boxes, (size, size))
    assert crops.shape == (3, 2, size, size)
    for crop, box in zip(crops, boxes.tolist()):
        xs, ys = expected_centres(box, size)
        np.testing.assert_allclose(crop[0].numpy(), np.broadcast_to(xs[None, :], (size, size)), atol=1e-4)
        np.testing.assert_allclose(crop[1].numpy(), np.broadcast_to(ys[:, None], (size, size)), atol=1e-4)


def test_crop_shrinking_by_an_integer_factor_is_the_area_mean():
    rng = np.random.default_rng(0)
    tissue = rng.random((2, 3, 64, 64)).astype(np.float32)
    boxes = [(8, 24, 40, 56), (0, 0, 32, 32)]  # the second touches the patch border
    crops = crop_to_cell_region(torch.tensor(tissue), torch.tensor(boxes, dtype=torch.float32), (8, 8)).numpy()
    for sample, (x0, y0, x1, y1) in enumerate(boxes):
        region = tissue[sample, :, y0:y1, x0:x1]
        block_mean = region.reshape(3, 8, 4, 8, 4).mean(axis=(2, 4))
        np.testing.assert_allclose(crops[sample], block_mean, atol=1e-6)


def test_crop_rejects_one_box_for_two_maps():
    with pytest.raises(ValueError, match="boxes has shape"):
        crop_to_cell_region(torch.zeros(2, 2, 8, 8), torch.zeros(1, 4), (4, 4))


def test_box_follows_flips_and_rotations_of_the_patch():
    height, width = 40, 40
    box = torch.tensor([4.0, 10.0, 14.0, 30.0])
    mask = torch.zeros(height, width)
    mask[10:30, 4:14] = 1
    for flip in (False, True):
        for turns in range(4):
            moved = flip_rotate(
                Sample(mask[None], mask[None], mask.long(), mask.long(), box), flip, turns
            )
            rows, cols = torch.nonzero(moved.tissue_target, as_tuple=True)
            bbox = [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            assert moved.cell_box.tolist() == [float(v) for v in bbox], (flip, turns)
            assert flip_rotate_box(box, flip, turns, height, width).tolist() == moved.cell_box.tolist()


def test_crop_commutes_with_the_shared_flips_and_rotations():
    """crop(T(tissue), T(box)) == T(crop(tissue, box)), box off-centre and touching the border."""
    rng = np.random.default_rng(1)
    tissue = torch.tensor(rng.random((3, 64, 64)), dtype=torch.float32)
    box = torch.tensor([24.0, 0.0, 40.0, 16.0])  # offsets (0.5, 0.125) like the real sample pair
    for size in (4, 16, 32):
        cell = crop_to_cell_region(tissue[None], box[None], (size, size))[0]
        sample = Sample(cell, tissue, torch.zeros(size, size), torch.zeros(64, 64), box)
        for flip in (False, True):
            for turns in range(4):
                moved = flip_rotate(sample, flip, turns)
                recropped = crop_to_cell_region(moved.tissue_image[None], moved.cell_box[None], (size, size))[0]
                torch.testing.assert_close(recropped, moved.cell_image, atol=1e-5, rtol=0)


# Module that consumes the concatenated tensor at each injection point, and where the context sits in it
# (after ASPP the context follows the 256 ASPP channels, before the 48 low-level ones).
CONTEXT_CHANNELS = {"input": [3, 4], "encoder": [512, 513], "aspp": [256, 257], "decoder": [256, 257]}
CONSUMER = {
    "input": lambda branch: branch.encoder.conv1,
    "encoder": lambda branch: branch.decoder.aspp,
    "aspp": lambda branch: branch.decoder.block2,
    "decoder": lambda branch: branch.head,
}


@pytest.mark.parametrize("point", INJECTION_POINTS)
def test_branch_concatenates_the_cropped_context_at_its_injection_point(point):
    torch.manual_seed(0)
    branch = DeepLabV3PlusBranch("resnet18", classes=3, context_channels=2, inject_at=point).eval()
    context = coordinate_map(96, 96).repeat(2, 1, 1, 1)
    boxes = torch.tensor([[8.0, 8.0, 32.0, 32.0], [60.0, 36.0, 84.0, 60.0]])
    seen = {}
    CONSUMER[point](branch).register_forward_pre_hook(lambda module, args: seen.setdefault("input", args[0]))
    with torch.no_grad():
        logits = branch(torch.randn(2, 3, 64, 64), context, boxes)
    assert logits.shape == (2, 3, 64, 64)
    received = seen["input"]
    expected_size = {"input": 64, "encoder": 4, "aspp": 16, "decoder": 16}[point]
    assert received.shape[-1] == expected_size
    x_channel, y_channel = CONTEXT_CHANNELS[point]
    for sample in range(2):
        xs, ys = expected_centres(boxes[sample].tolist(), expected_size)
        grid = received.shape[-2:]
        np.testing.assert_allclose(received[sample, x_channel].numpy(), np.broadcast_to(xs, grid), atol=1e-4)
        np.testing.assert_allclose(received[sample, y_channel].numpy(), np.broadcast_to(ys[:, None], grid), atol=1e-4)


def test_branch_without_context_refuses_context_channels():
    with pytest.raises(ValueError, match="context_channels"):
        DeepLabV3PlusBranch("resnet18", classes=3, context_channels=2, inject_at=None)
