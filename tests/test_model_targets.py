"""Disk labels, tissue targets and the Dice losses against independent references."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from baseline_algorithm.labels import cell_label_map, disk_radius_px, tissue_target
from baseline_algorithm.losses import CellTissueDiceLoss
from baseline_algorithm.model import ModelOutput


def test_disk_radius_is_seven_pixels_at_1024_and_scales_with_the_patch():
    assert disk_radius_px(1024) == 7.0
    assert disk_radius_px(256) == 1.75


def test_cell_labels_are_disks_of_the_class_around_each_point():
    points = np.array([[20, 30, 1], [45, 10, 2], [0, 63, 2]])
    labels = cell_label_map(points, (64, 50), radius_px=7.0)
    rows, cols = np.mgrid[0:64, 0:50]
    expected = np.zeros((64, 50), np.uint8)
    for x, y, label in points:
        expected[(cols - x) ** 2 + (rows - y) ** 2 < 49] = label
    np.testing.assert_array_equal(labels, expected)
    assert (labels == 1).sum() == 145  # integer points strictly inside a radius-7 circle


def test_overlapping_disks_take_the_later_point():
    labels = cell_label_map(np.array([[10, 10, 1], [12, 10, 2]]), (20, 20), radius_px=3.0)
    assert labels[10, 11] == 2 and labels[10, 8] == 1


def test_no_points_give_an_all_background_map():
    assert not cell_label_map(np.zeros((0, 3), np.int64), (8, 8), 2.0).any()


def test_cell_labels_reject_an_unknown_class():
    with pytest.raises(ValueError, match=r"points\[1\] has label 3"):
        cell_label_map(np.array([[1, 1, 1], [2, 2, 3]]), (8, 8), 2.0)


def test_tissue_target_maps_annotation_values_and_keeps_unknown():
    mask = np.array([[1, 2], [255, 1]], np.uint8)
    np.testing.assert_array_equal(tissue_target(mask), [[0, 1], [255, 0]])


def test_tissue_target_names_the_first_unexpected_pixel():
    with pytest.raises(ValueError, match=r"\(x=1, y=0\) has value 3"):
        tissue_target(np.array([[1, 3], [0, 1]], np.uint8))


def reference_dice_loss(logits, target, ignore_index=None):
    """1 - dice per class over all non-ignored pixels of the batch, 0 for classes absent."""
    logits = logits.astype(np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    keep = np.ones(target.shape, bool) if ignore_index is None else target != ignore_index
    losses = []
    for c in range(logits.shape[1]):
        truth = (target == c) & keep
        predicted = probabilities[:, c] * keep
        if truth.sum() == 0:
            losses.append(0.0)
            continue
        losses.append(1 - 2 * (predicted * truth).sum() / (predicted.sum() + truth.sum()))
    return np.mean(losses)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), batch=st.integers(1, 3), side=st.integers(2, 9))
def test_losses_match_an_independent_dice_reference(seed, batch, side):
    rng = np.random.default_rng(seed)
    cell_logits = rng.normal(scale=3, size=(batch, 3, side, side)).astype(np.float32)
    tissue_logits = rng.normal(scale=3, size=(batch, 2, side, side)).astype(np.float32)
    cell_target = rng.integers(0, 3, size=(batch, side, side))
    tissue_target = rng.choice([0, 1, 255], size=(batch, side, side))
    losses = CellTissueDiceLoss()(
        ModelOutput(torch.tensor(cell_logits), torch.tensor(tissue_logits)),
        torch.tensor(cell_target),
        torch.tensor(tissue_target),
    )
    expected_cell = reference_dice_loss(cell_logits, cell_target)
    expected_tissue = reference_dice_loss(tissue_logits, tissue_target, ignore_index=255)
    assert losses["cell"].item() == pytest.approx(expected_cell, abs=1e-5)
    assert losses["tissue"].item() == pytest.approx(expected_tissue, abs=1e-5)
    assert losses["loss"].item() == pytest.approx(expected_cell + expected_tissue, abs=1e-5)


def test_unknown_tissue_pixels_do_not_change_the_loss():
    target = torch.tensor([[[0, 1], [255, 255]]])
    logits = torch.randn(1, 2, 2, 2)
    changed = logits.clone()
    changed[..., 1, :] = torch.tensor([[50.0, -50.0], [-50.0, 50.0]])
    loss = CellTissueDiceLoss()
    cell = ModelOutput(torch.zeros(1, 3, 2, 2), logits)
    first = loss(cell, torch.zeros(1, 2, 2, dtype=torch.long), target)["tissue"]
    second = loss(
        cell._replace(tissue_logits=changed), torch.zeros(1, 2, 2, dtype=torch.long), target
    )["tissue"]
    assert first.item() == pytest.approx(second.item(), abs=1e-6)


def test_a_confident_correct_prediction_has_almost_no_loss():
    target = torch.tensor([[[0, 1, 2], [2, 1, 0]]])
    logits = 30.0 * torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float()
    losses = CellTissueDiceLoss()(ModelOutput(logits, None), target)
    assert set(losses) == {"cell", "loss"}
    assert losses["loss"].item() < 1e-6
