"""Tissue context lands on the cell region, exactly, also after the shared flips and rotations."""

import numpy as np
import pytest
import torch

from baseline_algorithm.augment import Sample, flip_rotate, flip_rotate_box
from baseline_algorithm.model import (
    INJECTION_POINTS,
    SHARING_POSITIONS,
    CellTissueModel,
    DeepLabV3PlusBranch,
    ModelConfig,
    crop_to_cell_region,
    place_in_cell_region,
)


def coordinate_map(height, width):
    """(1, 2, H, W) map whose channels are the x and y of each pixel centre (edges at integers)."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    return torch.tensor(np.stack([xs, ys])[None], dtype=torch.float32)


def expected_centres(box, size):
    """x and y of the centres of a size x size grid laid over box, in tissue pixels."""
    x0, y0, x1, y1 = box
    steps = (np.arange(size) + 0.5) / size
    return x0 + steps * (x1 - x0), y0 + steps * (y1 - y0)


@pytest.mark.parametrize(
    "size", [8, 16, 64, 100]
)  # shrink 4x and 2x, enlarge 2x, non-integer ratio
def test_crop_reproduces_tissue_coordinates_per_sample(size):
    tissue = coordinate_map(128, 128).repeat(3, 1, 1, 1)
    boxes = torch.tensor(
        [[16.0, 48.0, 48.0, 80.0], [80.0, 8.0, 112.0, 40.0], [40.5, 40.25, 72.5, 72.25]]
    )
    crops = crop_to_cell_region(tissue, boxes, (size, size))
    assert crops.shape == (3, 2, size, size)
    for crop, box in zip(crops, boxes.tolist()):
        xs, ys = expected_centres(box, size)
        np.testing.assert_allclose(
            crop[0].numpy(), np.broadcast_to(xs[None, :], (size, size)), atol=1e-4
        )
        np.testing.assert_allclose(
            crop[1].numpy(), np.broadcast_to(ys[:, None], (size, size)), atol=1e-4
        )


def test_crop_shrinking_by_an_integer_factor_is_the_area_mean():
    rng = np.random.default_rng(0)
    tissue = rng.random((2, 3, 64, 64)).astype(np.float32)
    boxes = [(8, 24, 40, 56), (0, 0, 32, 32)]  # the second touches the patch border
    crops = crop_to_cell_region(
        torch.tensor(tissue), torch.tensor(boxes, dtype=torch.float32), (8, 8)
    ).numpy()
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
            assert (
                flip_rotate_box(box, flip, turns, height, width).tolist() == moved.cell_box.tolist()
            )


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
                recropped = crop_to_cell_region(
                    moved.tissue_image[None], moved.cell_box[None], (size, size)
                )[0]
                torch.testing.assert_close(recropped, moved.cell_image, atol=1e-5, rtol=0)


# Module that consumes the concatenated tensor at each injection point, and where the context
# sits in it
# (after ASPP the context follows the 256 ASPP channels, before the 48 low-level ones).
CONTEXT_CHANNELS = {
    "input": [3, 4],
    "encoder": [512, 513],
    "aspp": [256, 257],
    "decoder": [256, 257],
}
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
    CONSUMER[point](branch).register_forward_pre_hook(
        lambda module, args: seen.setdefault("input", args[0])
    )
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
        np.testing.assert_allclose(
            received[sample, x_channel].numpy(), np.broadcast_to(xs, grid), atol=1e-4
        )
        np.testing.assert_allclose(
            received[sample, y_channel].numpy(), np.broadcast_to(ys[:, None], grid), atol=1e-4
        )


def test_branch_without_context_refuses_context_channels():
    with pytest.raises(ValueError, match="context_channels"):
        DeepLabV3PlusBranch("resnet18", classes=3, context_channels=2, inject_at=None)


def expected_placement(box, cell_size, size):
    """Cell-patch x and y (in cell pixels) at each tissue pixel centre, NaN outside the box."""
    x0, y0, x1, y1 = box
    centres = np.arange(size) + 0.5
    xs = (centres - x0) * cell_size / (x1 - x0)
    ys = (centres - y0) * cell_size / (y1 - y0)
    xs[(centres < x0) | (centres > x1)] = np.nan
    ys[(centres < y0) | (centres > y1)] = np.nan
    return xs, ys


@pytest.mark.parametrize("cell_size", [16, 32, 64])  # 1, 2 and 4 cell pixels per tissue pixel
def test_placement_reproduces_cell_coordinates_inside_the_box_and_zero_outside(cell_size):
    cell = coordinate_map(cell_size, cell_size).repeat(2, 1, 1, 1)
    boxes = torch.tensor([[16.0, 32.0, 32.0, 48.0], [0.0, 48.0, 16.0, 64.0]])  # one at a border
    placed = place_in_cell_region(cell, boxes, (64, 64))
    assert placed.shape == (2, 2, 64, 64)
    for sample, box in enumerate(boxes.tolist()):
        xs, ys = expected_placement(box, cell_size, 64)
        inside = np.isfinite(ys)[:, None] & np.isfinite(xs)[None, :]
        got_x, got_y = placed[sample, 0].numpy(), placed[sample, 1].numpy()
        np.testing.assert_allclose(
            got_x[inside], np.broadcast_to(xs[None], (64, 64))[inside], atol=1e-4
        )
        np.testing.assert_allclose(
            got_y[inside], np.broadcast_to(ys[:, None], (64, 64))[inside], atol=1e-4
        )
        assert not placed[sample][:, ~inside].any()


def test_placement_is_the_area_mean_and_weighs_a_cut_edge_pixel_by_its_coverage():
    rng = np.random.default_rng(2)
    cell = torch.tensor(rng.random((1, 3, 16, 16)), dtype=torch.float32)
    placed = place_in_cell_region(cell, torch.tensor([[4.0, 2.0, 8.0, 6.0]]), (12, 12))[0]
    block_mean = cell[0].reshape(3, 4, 4, 4, 4).mean(dim=(2, 4))
    torch.testing.assert_close(placed[:, 2:6, 4:8], block_mean, atol=1e-6, rtol=0)
    # A box that covers half of its first column of pixels.
    half = place_in_cell_region(
        torch.ones(1, 1, 8, 8), torch.tensor([[3.5, 0.0, 7.5, 4.0]]), (8, 8)
    )[0, 0]
    assert half[0, 3].item() == pytest.approx(0.5) and half[0, 4].item() == pytest.approx(1.0)
    assert half[0, 2].item() == 0 and half[4, 4].item() == 0


def test_placement_commutes_with_the_shared_flips_and_rotations():
    """place(T(cell), T(box)) == T(place(cell, box)), box off-centre and touching the border."""
    rng = np.random.default_rng(3)
    box = torch.tensor([24.0, 0.0, 40.0, 16.0])
    for cell_size in (16, 32, 64):
        cell = torch.tensor(rng.random((3, cell_size, cell_size)), dtype=torch.float32)
        tissue = place_in_cell_region(cell[None], box[None], (64, 64))[0]
        sample = Sample(cell, tissue, torch.zeros(cell_size, cell_size), torch.zeros(64, 64), box)
        for flip in (False, True):
            for turns in range(4):
                moved = flip_rotate(sample, flip, turns)
                replaced = place_in_cell_region(
                    moved.cell_image[None], moved.cell_box[None], (64, 64)
                )[0]
                torch.testing.assert_close(replaced, moved.tissue_image, atol=1e-5, rtol=0)


# Feature-sharing: at each position, the module that writes a branch's features and the module
# that reads them (with the other branch's features appended after its own channels).
WRITER = {"encoder": "encoder", "aspp": "decoder.up", "decoder": "decoder.block2"}
READER = {"encoder": "decoder.aspp", "aspp": "decoder.block2", "decoder": "head"}
OWN_CHANNELS = {"encoder": 512, "aspp": 256, "decoder": 256}
STRIDE = {"encoder": 16, "aspp": 4, "decoder": 4}


def sharing_model_seeing_coordinates(position, direction):
    """A Feature-sharing model whose exchange convolutions are identities and whose sending
    branch writes its own pixel coordinates (channels 0 and 1) at ``position``."""
    torch.manual_seed(0)
    sharing = tuple(direction if p == position else "none" for p in SHARING_POSITIONS)
    model = CellTissueModel(
        ModelConfig(variant="feature-sharing", encoder="resnet18", patch_size=256, sharing=sharing)
    ).eval()
    for name in model.exchanges:
        model.exchanges[name] = torch.nn.Identity()
    sender = model.tissue_branch if direction == "tissue-to-cell" else model.cell_branch
    receiver = model.cell_branch if direction == "tissue-to-cell" else model.tissue_branch

    def write_coordinates(module, args, output):
        deepest = output[-1] if position == "encoder" else output
        coordinates = torch.zeros_like(deepest)
        coordinates[:, :2] = coordinate_map(*deepest.shape[-2:])
        return [*output[:-1], coordinates] if position == "encoder" else coordinates

    sender.get_submodule(WRITER[position]).register_forward_hook(write_coordinates)
    seen = {}
    receiver.get_submodule(READER[position]).register_forward_pre_hook(
        lambda module, args: seen.setdefault("input", args[0])
    )
    return model, seen


# The second box's edges fall between feature pixels at stride 16 (half-pixel offsets).
SHARING_BOXES = torch.tensor([[64.0, 96.0, 128.0, 160.0], [88.0, 40.0, 152.0, 104.0]])


@pytest.mark.parametrize("position", SHARING_POSITIONS)
def test_tissue_to_cell_exchange_brings_the_tissue_features_of_the_cell_region(position):
    model, seen = sharing_model_seeing_coordinates(position, "tissue-to-cell")
    with torch.no_grad():
        model(torch.randn(2, 3, 256, 256), torch.randn(2, 3, 256, 256), SHARING_BOXES)
    received = seen["input"]
    channels = OWN_CHANNELS[position]
    low_level = 48 if position == "aspp" else 0  # block2 also reads the reduced low-level feature
    assert received.shape[1] == 2 * channels + low_level
    size = 256 // STRIDE[position]
    for sample in range(2):
        box = (SHARING_BOXES[sample] / STRIDE[position]).tolist()
        xs, ys = expected_centres(box, size)
        grid = (size, size)
        np.testing.assert_allclose(
            received[sample, channels].numpy(), np.broadcast_to(xs, grid), atol=1e-4
        )
        np.testing.assert_allclose(
            received[sample, channels + 1].numpy(), np.broadcast_to(ys[:, None], grid), atol=1e-4
        )


@pytest.mark.parametrize("position", SHARING_POSITIONS)
def test_cell_to_tissue_exchange_places_the_cell_features_in_the_cell_region(position):
    model, seen = sharing_model_seeing_coordinates(position, "cell-to-tissue")
    with torch.no_grad():
        model(torch.randn(2, 3, 256, 256), torch.randn(2, 3, 256, 256), SHARING_BOXES)
    received = seen["input"]
    channels = OWN_CHANNELS[position]
    size = 256 // STRIDE[position]
    for sample in range(2):
        box = (SHARING_BOXES[sample] / STRIDE[position]).tolist()
        xs, ys = expected_placement(box, size, size)
        covered = place_in_cell_region(
            torch.ones(1, 1, size, size), torch.tensor([box]), (size, size)
        )[0, 0].numpy()
        inside = covered == 1
        got_x = received[sample, channels].numpy()
        got_y = received[sample, channels + 1].numpy()
        assert inside.sum() >= 4
        np.testing.assert_allclose(
            got_x[inside], np.broadcast_to(xs[None], got_x.shape)[inside], atol=1e-3
        )
        np.testing.assert_allclose(
            got_y[inside], np.broadcast_to(ys[:, None], got_y.shape)[inside], atol=1e-3
        )
        assert not got_x[covered == 0].any() and not got_y[covered == 0].any()
