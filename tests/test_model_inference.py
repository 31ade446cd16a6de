"""Probability maps to points, resampled inputs mapped back, checkpoints on CPU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from baseline_algorithm.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from baseline_algorithm.inference import (
    DetectionSettings,
    detect_cells,
    image_tensor,
    predict_points,
)
from baseline_algorithm.model import CellTissueModel, ModelConfig, ModelOutput
from evaluation.pairs import Pair


def blob_maps(size, cells):
    """(3, size, size) probability maps with a gaussian foreground blob per (x, y, label, peak)."""
    rows, cols = np.mgrid[0:size, 0:size]
    maps = np.zeros((3, size, size))
    maps[0] = 1.0
    for x, y, label, peak in cells:
        blob = peak * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / 8.0)
        maps[label] = np.maximum(maps[label], blob)
    maps[0] = 1.0 - maps[1] - maps[2]
    return maps


@settings(max_examples=25, deadline=None)
@given(
    st.integers(16, 300),
    st.integers(16, 300),
    st.sampled_from([32, 64, 256]),
    st.integers(0, 2**32 - 1),
)
def test_image_tensor_resamples_uint8_within_one_grey_level_of_float(height, width, size, seed):
    """The uint8 resampling (the fast path) against antialiased bilinear resampling in float32."""
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    reference = torch.from_numpy(image).permute(2, 0, 1).double()[None] / 255.0
    if (height, width) != (size, size):
        reference = F.interpolate(
            reference, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    tensor = image_tensor(image, size)
    assert tensor.shape == (3, size, size) and tensor.dtype == torch.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 1.0
    assert (tensor.double() - reference[0].clamp(0, 1)).abs().max() <= 1.0 / 255.0 + 1e-6


def test_image_tensor_keeps_patches_of_the_model_size_exactly():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    expected = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0
    assert torch.equal(image_tensor(image, 32), expected)


def test_detect_cells_returns_peaks_classes_and_class_probabilities():
    maps = blob_maps(48, [(10, 12, 1, 0.9), (30, 20, 2, 0.8), (40, 40, 1, 0.3)])
    xy, label, probability = detect_cells(np.log(maps), min_distance_px=3, threshold=0.5)
    order = np.argsort(xy[:, 0])
    assert xy[order].tolist() == [[10, 12], [30, 20]]  # the 0.3 blob is below the threshold
    assert label[order].tolist() == [1, 2]
    np.testing.assert_allclose(probability[order], [0.9, 0.8])
    assert xy.dtype == np.int64 and label.dtype == np.int64 and probability.dtype == np.float64


def test_detect_cells_keeps_one_of_two_peaks_closer_than_min_distance():
    maps = blob_maps(48, [(20, 20, 1, 0.9), (26, 20, 2, 0.8)])
    assert len(detect_cells(np.log(maps), min_distance_px=2, threshold=0.5)[0]) == 2
    xy, label, _ = detect_cells(np.log(maps), min_distance_px=8, threshold=0.5)
    assert xy.tolist() == [[20, 20]] and label.tolist() == [1]


def test_min_distance_follows_the_checkpoint_resolution():
    settings = DetectionSettings(min_distance_um=2.0)
    assert settings.min_distance_px(ModelConfig(patch_size=1024, cell_mpp=0.2)) == 10
    assert settings.min_distance_px(ModelConfig(patch_size=256, cell_mpp=0.8)) == 2
    assert settings.min_distance_px(ModelConfig(patch_size=64, cell_mpp=3.2)) == 1


class DarkSpotDetector(torch.nn.Module):
    """Stands in for a trained model: foreground = darkness of the cell patch, TC left of the
    centre, BC right."""

    def __init__(self, patch_size):
        super().__init__()
        self.config = ModelConfig(
            variant="cell-only", patch_size=patch_size, cell_mpp=0.2 * 1024 / patch_size
        )
        self.needs_tissue_label = False
        self.scale = torch.nn.Parameter(torch.tensor(0.98))

    def forward(self, cell_image, tissue_image, cell_box, tissue_label):
        mean = torch.tensor(self.config.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.config.std).view(1, 3, 1, 1)
        foreground = self.scale * (1 - (cell_image * std + mean).mean(dim=1))
        left = (torch.arange(cell_image.shape[-1]) < cell_image.shape[-1] // 2).float()
        probabilities = torch.stack(
            [1 - foreground, foreground * (1 - left), foreground * left], dim=1
        )
        return ModelOutput(torch.log(probabilities.clamp_min(1e-6)), None)


def pair_with_dark_spots(size, spots):
    """A bright cell patch with a dark gaussian spot (sigma 8 px) centred on each (x, y)."""
    rows, cols = np.mgrid[0:size, 0:size]
    darkness = np.zeros((size, size))
    for x, y in spots:
        darkness = np.maximum(
            darkness, 0.9 * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 8.0**2))
        )
    image = np.repeat(np.rint(255 * (1 - darkness))[..., None], 3, axis=2).astype(np.uint8)
    return Pair(
        name="image_0",
        cell_image=image,
        tissue_image=np.full((size, size, 3), 200, np.uint8),
        cell_points=np.zeros((0, 3), np.int64),
        tissue_mask=None,
        meta={},
        cell_box=(size * 3 / 8, size * 3 / 8, size * 5 / 8, size * 5 / 8),
    )


def test_points_come_back_in_pixels_of_a_larger_input_patch():
    detector = DarkSpotDetector(patch_size=64).eval()
    spots = [(40, 100), (200, 60), (150, 220)]
    pairs = [pair_with_dark_spots(256, spots), pair_with_dark_spots(256, spots[:1])]
    points = predict_points(
        detector,
        pairs,
        settings=DetectionSettings(threshold=0.5, min_distance_um=9.6),
        batch_size=2,
    )
    first = points.xy[points.image == 0]
    order = np.argsort(first[:, 0])
    # One model pixel is 4 input pixels: peaks land within half a model pixel (2 input px) of
    # the spots.
    np.testing.assert_allclose(first[order], sorted(spots), atol=2)
    assert points.label[points.image == 0][order].tolist() == [2, 1, 1]
    assert (points.image == 1).sum() == 1
    assert ((points.probability >= 0) & (points.probability <= 1)).all()


def test_predict_points_needs_eval_mode():
    with pytest.raises(ValueError, match="eval mode"):
        predict_points(DarkSpotDetector(64).train(), [])


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return CellTissueModel(
        ModelConfig(variant="pred-to-inter-2", encoder="resnet18", patch_size=64, cell_mpp=3.2)
    ).eval()


def run(model):
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        return model(
            torch.randn(2, 3, 64, 64, generator=generator),
            torch.randn(2, 3, 64, 64, generator=generator),
            torch.tensor([[8.0, 8, 24, 24], [30, 30, 46, 46]]),
        ).cell_logits


def test_float32_checkpoint_round_trips_exactly(tmp_path, small_model):
    save_checkpoint(tmp_path / "model.pt", small_model, epoch=3)
    loaded = load_checkpoint(tmp_path / "model.pt", map_location="cpu")
    assert loaded.config == small_model.config and not loaded.training
    torch.testing.assert_close(run(loaded), run(small_model), rtol=0, atol=0)


@pytest.mark.parametrize("dtype, tolerance", [("float16", 2e-2), ("int8", 1e-1)])
def test_compressed_checkpoints_are_smaller_and_close(tmp_path, small_model, dtype, tolerance):
    full = save_checkpoint(tmp_path / "full.pt", small_model)
    small = save_checkpoint(tmp_path / f"{dtype}.pt", small_model, weights_dtype=dtype)
    assert small < full * {"float16": 0.55, "int8": 0.3}[dtype]
    loaded = load_checkpoint(tmp_path / f"{dtype}.pt")
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    reference = run(small_model)
    error = (run(loaded) - reference).abs().max() / reference.abs().max()
    assert error < tolerance


def test_a_file_that_is_not_a_checkpoint_is_named_in_one_line(tmp_path):
    path = tmp_path / "noise.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"noise\.pt: not a readable checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_saturated_foreground_plateau_gives_one_cell_at_its_centre():
    rows, cols = np.mgrid[0:32, 0:32]
    logits = np.zeros((3, 32, 32), np.float32)
    logits[2] = 40.0 - (
        (cols - 16) ** 2 + (rows - 15) ** 2
    )  # TC logit, far above background near the centre
    log_probabilities = torch.tensor(logits).log_softmax(dim=0).numpy()
    assert (
        1 - np.exp(log_probabilities[0]) == 1.0
    ).sum() > 9  # float32 probabilities saturate around the centre
    xy, label, probability = detect_cells(log_probabilities, min_distance_px=2, threshold=0.5)
    assert (
        xy.tolist() == [[16, 15]] and label.tolist() == [2] and probability[0] == pytest.approx(1.0)
    )
