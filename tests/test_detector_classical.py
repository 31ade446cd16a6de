"""The worked example ``examples/classical_detector``: a detector package nobody here special-cases.

It is imported from its own source folder, as an installed package would be, and run through the
same interface as any detector: ``predict --detector classical_detector:make_detector``, then the
scorer. Its image (built with scripts/build-images.sh --package) is tested in
tests/test_algorithm_container.py.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from baseline_algorithm.cli import main
from baseline_algorithm.data.synthetic import SyntheticConfig, synthesize_pair
from baseline_algorithm.detector import load_detector, validated_points
from baseline_algorithm.inference import ground_truth_points
from evaluation import PointSet, read_points_document, score
from evaluation.cli import main as evaluation_cli
from evaluation.constants import BC, MATCH_RADIUS_UM, TC

REPO = Path(__file__).resolve().parents[1]
PACKAGE_SOURCE = REPO / "examples" / "classical_detector" / "src"
TEST_INPUT = REPO / "test_data" / "input"
GROUND_TRUTH = REPO / "test_data" / "ground_truth" / "cell_gt.json"
SPEC = "classical_detector:make_detector"
SIZE = 256  # synthetic pairs small enough to make here: 0.8 um per cell-patch pixel


@pytest.fixture(scope="module", autouse=True)
def package_on_path():
    sys.path.insert(0, str(PACKAGE_SOURCE))
    yield
    sys.path.remove(str(PACKAGE_SOURCE))


@pytest.fixture(scope="module")
def synthetic_pairs():
    """Validation-like synthetic pairs (seed 1, not the seed the shipped model was trained on)."""
    return [
        synthesize_pair(f"{k + 1:03d}", 1, k, "val", SyntheticConfig(size=SIZE)) for k in range(6)
    ]


def detect(pairs, detector) -> PointSet:
    found = [validated_points(SPEC, k, detector(pair)) for k, pair in enumerate(pairs)]
    return PointSet(
        *(
            np.concatenate([getattr(p, f) for p in found])
            for f in ("image", "xy", "label", "probability")
        )
    )


def test_tissue_context_decides_classes(synthetic_pairs):
    """Labelling the same cells from the tissue context beats labelling them all one class: the
    context carries the class, as in the synthetic data (and the paper's thesis)."""
    detector = load_detector(SPEC).detect
    points = detect(synthetic_pairs, detector)
    truth, count = ground_truth_points(synthetic_pairs)
    radius = MATCH_RADIUS_UM / (0.2 * 1024 / SIZE)
    with_context = score(points, truth, count, radius_px=radius).aggregates
    for constant in (BC, TC):
        uniform = replace(points, label=np.full(len(points), constant))
        without = score(uniform, truth, count, radius_px=radius).aggregates
        assert with_context["mF1"] > without["mF1"] + 0.1, (constant, with_context, without)
    # Detection alone, classes ignored: it finds most cells, and more true cells than false ones.
    agnostic = score(
        replace(points, label=np.ones(len(points), dtype=np.int64)),
        replace(truth, label=np.ones(len(truth), dtype=np.int64)),
        count,
        radius_px=radius,
    ).aggregates
    assert agnostic["Rec/BC"] > 0.75 and agnostic["Pre/BC"] > 0.5, agnostic


def test_points_lie_in_the_patch_with_probabilities(synthetic_pairs):
    detector = load_detector(SPEC).detect
    for pair in synthetic_pairs[:2]:
        rows = np.array(detector(pair), dtype=np.float64)
        assert len(rows) > 0
        assert (rows[:, 0] >= 0).all() and (rows[:, 0] < SIZE).all()
        assert (rows[:, 1] >= 0).all() and (rows[:, 1] < SIZE).all()
        assert set(rows[:, 2]) <= {BC, TC}
        assert ((rows[:, 3] > 0) & (rows[:, 3] <= 1)).all()


def test_blank_patch_has_no_cells(synthetic_pairs):
    blank = replace(
        synthetic_pairs[0],
        cell_image=np.full((SIZE, SIZE, 3), 240, np.uint8),
        tissue_image=np.full((SIZE, SIZE, 3), 240, np.uint8),
    )
    assert load_detector(SPEC).detect(blank) == []


def test_host_predict_then_score(capsys, tmp_path):
    """The interface end to end on the host: predict with the package's detector, then score."""
    if not TEST_INPUT.is_dir():
        pytest.skip(f"{TEST_INPUT} is missing")
    predictions = tmp_path / "cell_classification.json"
    assert (
        main(
            [
                "predict",
                "--quiet",
                "--input",
                str(TEST_INPUT),
                "--output",
                str(predictions),
                "--detector",
                SPEC,
            ]
        )
        == 0
    )
    assert f"detector {SPEC} (classical:" in capsys.readouterr().err
    points, _ = read_points_document(predictions)
    assert len(points) > 0 and set(points.image.tolist()) == {0, 1, 2}
    metrics = tmp_path / "metrics.json"
    assert (
        evaluation_cli(
            [
                "score",
                "--predictions",
                str(predictions),
                "--ground-truth",
                str(GROUND_TRUTH),
                "--output",
                str(metrics),
            ]
        )
        == 0
    )
    assert metrics.is_file()
