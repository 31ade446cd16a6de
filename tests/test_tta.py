"""Test-time augmentation: each view moves both patches and the cell box together, maps come back
to the pair's frame, and a detector whose maps are equivariant finds the same cells under every
mode (a wrongly inverted transform would move them)."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from baseline_algorithm import inference
from baseline_algorithm.cli import main
from baseline_algorithm.detector import DetectorError, load_detector
from baseline_algorithm.inference import BaselineDetector, DetectionSettings
from baseline_algorithm.model import CellTissueModel, ModelConfig
from baseline_algorithm.tta import TTA_MODES, View, _image_in_view, to_original, view_of_pair
from evaluation.pairs import Pair
from tests.test_predict import TEST_INPUT, make_checkpoint

ALL_VIEWS = TTA_MODES["d4"]


def pair_with_box(side: int, box: tuple[int, int, int, int], seed: int = 0) -> Pair:
    rng = np.random.default_rng(seed)
    return Pair(
        name="image_0",
        cell_image=rng.integers(0, 256, (side, side, 3), dtype=np.uint8),
        tissue_image=rng.integers(0, 256, (side, side, 3), dtype=np.uint8),
        cell_points=np.zeros((0, 3), dtype=np.int64),
        tissue_mask=None,
        meta={},
        cell_box=tuple(float(v) for v in box),
    )


@settings(derandomize=True, max_examples=60, deadline=None)
@given(side=st.integers(4, 24), data=st.data())
def test_the_box_follows_the_tissue_patch_in_every_view(side, data):
    """Mark the box's pixels in the tissue patch; in every view the marked pixels are exactly
    the view's box (off-centre boxes included)."""
    x0 = data.draw(st.integers(0, side - 1))
    y0 = data.draw(st.integers(0, side - 1))
    x1 = data.draw(st.integers(x0 + 1, side))
    y1 = data.draw(st.integers(y0 + 1, side))
    pair = pair_with_box(side, (x0, y0, x1, y1))
    pair.tissue_image[:] = 0
    pair.tissue_image[y0:y1, x0:x1] = 255
    for view in ALL_VIEWS:
        shown = view_of_pair(pair, view)
        bx0, by0, bx1, by1 = (int(v) for v in shown.cell_box)
        expected = np.zeros((side, side), dtype=bool)
        expected[by0:by1, bx0:bx1] = True
        np.testing.assert_array_equal(shown.tissue_image[..., 0] == 255, expected, str(view))


@pytest.mark.parametrize("view", ALL_VIEWS)
def test_maps_come_back_to_the_original_frame(view):
    maps = np.random.default_rng(1).random((2, 3, 5, 5)).astype(np.float32)
    shown = np.stack(
        [np.moveaxis(_image_in_view(np.moveaxis(m, 0, -1), view), -1, 0) for m in maps]
    )
    np.testing.assert_array_equal(to_original(shown, view), maps)


def test_the_modes_are_the_issue_s_views():
    assert TTA_MODES["none"] == (View(0, False),)
    assert len(TTA_MODES["flips"]) == 3 and len(set(ALL_VIEWS)) == 8
    image = np.arange(6).reshape(2, 3)
    shown = {tuple(map(tuple, _image_in_view(image, v))) for v in TTA_MODES["flips"]}
    assert shown == {tuple(map(tuple, a)) for a in (image, image[:, ::-1], image[::-1])}


def equivariant_log_probabilities(model, pairs, device, precision):
    """Per-pixel class log-probabilities from the cell patch and the tissue under the cell box,
    both smoothed: equivariant under any view by construction, and sensitive to the box."""
    size = model.config.patch_size
    maps = []
    for pair in pairs:
        cell = torch.from_numpy(pair.cell_image.astype(np.float32)).permute(2, 0, 1)[None]
        x0, y0, x1, y1 = (int(round(v)) for v in pair.cell_box)
        tissue = torch.from_numpy(pair.tissue_image[y0:y1, x0:x1].astype(np.float32))
        tissue = F.interpolate(tissue.permute(2, 0, 1)[None], size=(size, size), mode="area")
        cell = F.interpolate(cell, size=(size, size), mode="area")
        blur = torch.ones(1, 1, 5, 5) / 25
        red = F.conv2d(cell[:, :1], blur, padding=2)
        green = F.conv2d(tissue[:, 1:2], blur, padding=2)
        logits = torch.cat([torch.full_like(red, 150.0), red, green], dim=1) / 20
        maps.append(logits.log_softmax(dim=1)[0].numpy())
    return np.stack(maps)


def test_an_equivariant_detector_finds_the_same_cells_under_every_mode(monkeypatch):
    monkeypatch.setattr(inference, "cell_log_probabilities", equivariant_log_probabilities)
    model = CellTissueModel(
        ModelConfig(variant="cell-only", encoder="resnet18", patch_size=32, cell_mpp=0.8)
    ).eval()
    pair = pair_with_box(64, (10, 22, 42, 54), seed=3)  # off-centre: the box must follow
    found = {}
    for mode in TTA_MODES:
        detector = BaselineDetector(model, DetectionSettings(threshold=0.3), tta=mode)
        found[mode] = detector(pair)
    assert len(found["none"]) > 3
    for mode in ("flips", "d4"):
        np.testing.assert_array_equal(found[mode][:, :3], found["none"][:, :3])
        np.testing.assert_allclose(found[mode][:, 3], found["none"][:, 3], rtol=1e-5)


def test_a_wrongly_inverted_view_moves_the_cells(monkeypatch):
    """The check above can fail: undoing a quarter turn the wrong way changes the cells."""
    monkeypatch.setattr(inference, "cell_log_probabilities", equivariant_log_probabilities)
    from baseline_algorithm import tta

    monkeypatch.setattr(
        tta, "to_original", lambda maps, view: np.rot90(maps, view.quarter_turns, axes=(-2, -1))
    )
    model = CellTissueModel(
        ModelConfig(variant="cell-only", encoder="resnet18", patch_size=32, cell_mpp=0.8)
    ).eval()
    pair = pair_with_box(64, (10, 22, 42, 54), seed=3)
    plain = BaselineDetector(model, DetectionSettings(threshold=0.3))(pair)
    turned = BaselineDetector(model, DetectionSettings(threshold=0.3), tta="d4")(pair)
    assert plain.shape != turned.shape or not np.array_equal(plain[:, :2], turned[:, :2])


def test_predict_runs_with_tta_and_logs_it(capsys, tmp_path):
    checkpoint = make_checkpoint(tmp_path / "tiny.pt")
    status = main(
        [
            "predict",
            "--input",
            str(TEST_INPUT),
            "--output",
            str(tmp_path / "o.json"),
            "--checkpoint",
            str(checkpoint),
            "--precision",
            "float32",
            "--tta",
            "flips",
            "--quiet",
        ]
    )
    assert status == 0
    assert "tta flips" in capsys.readouterr().err


def test_a_factory_without_tta_is_refused_only_when_tta_is_asked(monkeypatch):
    module = type(sys)("no_tta_factories")
    module.make = lambda device: lambda pair: []
    monkeypatch.setitem(sys.modules, "no_tta_factories", module)
    assert load_detector("no_tta_factories:make").spec == "no_tta_factories:make"
    with pytest.raises(
        DetectorError,
        match="test-time augmentation d4 was asked for but the factory takes no tta parameter",
    ):
        load_detector("no_tta_factories:make", tta="d4")
