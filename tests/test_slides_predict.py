"""predict-slide end to end on synthetic slides: tiling, cores, coordinates, outputs, resuming.

The oracle detector (tests/slide_detectors.py) returns the ground-truth points inside the cell tile
its pair's metadata names; anything the tiling loses, duplicates or misplaces shows in its score.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from baseline_algorithm.cli import main
from baseline_algorithm.slides.outputs import CLASSIFICATIONS
from baseline_algorithm.slides.run import SlideOptions, predict_slide
from baseline_algorithm.slides.synthetic import synthesize_slide
from baseline_algorithm.slides.tiling import TileGrid

ORACLE = "tests.slide_detectors:oracle"
REPO = Path(__file__).resolve().parents[1]
# Not a multiple of the tile size or of the pyramid's factors: edge tiles are padded.
SIZE = (2700, 1900)


@pytest.fixture(scope="module")
def slide(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("slide")
    return synthesize_slide(folder / "slide.tiff", SIZE, seed=7, progress=False)


def truth_points(path: Path) -> np.ndarray:
    document = json.loads(path.read_text())
    assert document["num_images"] == 1
    return np.array([e["point"] for e in document["points"]]).reshape(-1, 3)


def predicted_points(path: Path) -> np.ndarray:
    document = json.loads(path.read_text())
    assert {e["name"] for e in document["points"]} <= {"image_0"}
    return np.array([e["point"] for e in document["points"]]).reshape(-1, 3)


def score(capsys, predictions: Path, truth: Path, tmp_path: Path) -> dict:
    metrics = tmp_path / "metrics.json"
    capsys.readouterr()
    assert (
        main(
            [
                "score",
                "--whole-slide",
                "--radius-um",
                "3",
                "--mpp",
                "0.2",
                "--predictions",
                str(predictions),
                "--ground-truth",
                str(truth),
                "--output",
                str(metrics),
            ]
        )
        == 0
    )
    return json.loads(metrics.read_text())


def in_overlaps(points: np.ndarray, grid: TileGrid) -> int:
    """Points lying where two neighbouring tiles overlap (in x or in y)."""
    count = 0
    for axis in (0, 1):
        starts = grid.roi[axis] + grid.stride[axis] * np.arange(1, grid.shape[axis])
        lower = starts[None, :] <= points[:, axis, None]
        upper = points[:, axis, None] < starts[None, :] + grid.overlap[axis]
        count += int((lower & upper).any(axis=1).sum())
    return count


@pytest.mark.parametrize("overlap", [0, 64, 300])
def test_oracle_scores_one_without_duplicates(slide, overlap, tmp_path, capsys):
    tiff, truth = slide
    output = tmp_path / "cells.json"
    run = predict_slide(
        tiff,
        SlideOptions(
            output=output,
            detector=ORACLE,
            checkpoint=truth,
            overlap=overlap,
            device="cpu",
            progress=False,
        ),
    )
    expected, found = truth_points(truth), predicted_points(output)
    assert run.grid == (3, 2) if overlap < 300 else run.grid[0] >= 3
    assert len(found) == len(expected) == run.cells
    assert len(np.unique(found[:, :2], axis=0)) == len(found)
    assert sorted(map(tuple, found.tolist())) == sorted(map(tuple, expected.tolist()))
    if overlap:  # cells on tile edges are part of the test, not luck
        assert in_overlaps(expected, TileGrid.for_slide((0, 0, *SIZE), (0.2, 0.2), overlap)) > 5
    metrics = score(capsys, output, truth, tmp_path)
    assert metrics["aggregates"]["mF1"] == 1.0
    assert not (tmp_path / "cells.json.tiles").exists()


def test_oracle_at_another_resolution_and_in_a_roi(slide, tmp_path, capsys):
    """At --mpp 0.25 tiles are 819.2 level-0 px, read with resampling; the ROI starts off-grid."""
    tiff, truth = slide
    roi = (301, 203, 2411, 1707)
    output = tmp_path / "cells.json"
    predict_slide(
        tiff,
        SlideOptions(
            output=output,
            detector=ORACLE,
            checkpoint=truth,
            mpp=0.25,
            roi=roi,
            device="cpu",
            progress=False,
        ),
    )
    expected = truth_points(truth)
    x0, y0, x1, y1 = roi
    inside = (
        (expected[:, 0] >= x0)
        & (expected[:, 0] < x1)
        & (expected[:, 1] >= y0)
        & (expected[:, 1] < y1)
    )
    found = predicted_points(output)
    assert sorted(map(tuple, found.tolist())) == sorted(map(tuple, expected[inside].tolist()))


def test_pairs_are_the_platforms(slide, tmp_path):
    """Each pair: 1024 px cell and tissue tiles, cell box (384, 384, 640, 640), level-0 boxes."""
    tiff, _ = slide
    seen = tmp_path / "seen.jsonl"
    predict_slide(
        tiff,
        SlideOptions(
            output=tmp_path / "c.json",
            checkpoint=seen,
            detector="tests.slide_detectors:counting",
            device="cpu",
            progress=False,
        ),
    )
    boxes = [json.loads(line) for line in seen.read_text().splitlines()]
    assert boxes and all(b["x_end"] - b["x_start"] == 1024 for b in boxes)
    assert {(b["resized_mpp_x"], b["resized_mpp_y"]) for b in boxes} == {(0.2, 0.2)}


def test_pair_fields(slide):
    from baseline_algorithm.slides.reader import open_slide
    from baseline_algorithm.slides.tiling import tile_pair

    tiff, _ = slide
    grid = TileGrid.for_slide((0, 0, *SIZE), (0.2, 0.2), 64)
    with open_slide(tiff) as opened:
        pair = tile_pair(opened, grid.tile(1, 0), (0.2, 0.2), "image_0")
        level0 = opened.read_region(0, 960, 0, 1024, 1024)
        tissue = opened.read_region(2, (960 - 1536) // 4, -1536 // 4, 1024, 1024)
    assert pair.cell_box == (384.0, 384.0, 640.0, 640.0)
    assert pair.meta["patch_x_offset"] == pair.meta["patch_y_offset"] == 0.5
    assert pair.meta["mpp_x"] == pair.meta["mpp_y"] == 0.2
    assert pair.meta["cell"]["x_start"] == 960 and pair.meta["tissue"]["x_start"] == 960 - 1536
    assert np.array_equal(pair.cell_image, level0)
    assert np.array_equal(pair.tissue_image, tissue)
    # Outside the slide the tissue tile is white.
    assert (pair.tissue_image[:300] == 255).all()


def test_geojson_is_valid_geojson_for_qupath(slide, tmp_path):
    shapely = pytest.importorskip("shapely.geometry")
    tiff, truth = slide
    output, geojson = tmp_path / "cells.json", tmp_path / "cells.geojson"
    predict_slide(
        tiff,
        SlideOptions(
            output=output,
            geojson=geojson,
            detector=ORACLE,
            checkpoint=truth,
            device="cpu",
            progress=False,
        ),
    )
    document = json.loads(geojson.read_text())
    points = predicted_points(output)
    # RFC 7946 by hand: a FeatureCollection of Features, each a Point of two finite numbers.
    assert set(document) == {"type", "features"} and document["type"] == "FeatureCollection"
    assert len(document["features"]) == len(points)
    for feature, (x, y, label) in zip(document["features"], points.tolist()):
        assert feature["type"] == "Feature" and set(feature) == {"type", "geometry", "properties"}
        geometry = feature["geometry"]
        assert geometry["type"] == "Point" and len(geometry["coordinates"]) == 2
        assert all(isinstance(v, float) and math.isfinite(v) for v in geometry["coordinates"])
        shape = shapely.shape(geometry)
        assert shape.is_valid and (shape.x, shape.y) == (x + 0.5, y + 0.5)
        properties = feature["properties"]
        assert properties["classification"] == CLASSIFICATIONS[label]
        assert properties["classification"]["name"] in ("Tumor cell", "Background cell")
        assert 0 <= properties["probability"] <= 1
        assert properties["objectType"] == "detection"


def test_interrupted_run_continues_from_its_tiles(slide, tmp_path, monkeypatch, capsys):
    """Ctrl-C after 2 tiles; the rerun with the same arguments does only the others."""
    tiff, truth = slide
    output, seen = tmp_path / "cells.json", tmp_path / "seen.txt"
    argv = [
        "predict-slide",
        str(tiff),
        "--output",
        str(output),
        "--detector",
        "tests.slide_detectors:interruptible_oracle",
        "--checkpoint",
        str(truth),
        "--device",
        "cpu",
        "--no-progress",
    ]
    monkeypatch.setenv("SLIDE_TEST_SEEN", str(seen))
    monkeypatch.setenv("SLIDE_TEST_STOP_AFTER", "2")
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    assert not output.exists()
    first = seen.read_text().splitlines()
    assert len(first) == 3  # two finished, the third interrupted
    monkeypatch.delenv("SLIDE_TEST_STOP_AFTER")
    seen.unlink()
    assert main(argv) == 0
    assert "2 done by an earlier run" in capsys.readouterr().err
    second = seen.read_text().splitlines()
    assert set(second).isdisjoint(first[:2]) and first[2] in second
    assert sorted(map(tuple, predicted_points(output).tolist())) == sorted(
        map(tuple, truth_points(truth).tolist())
    )


def test_shipped_baseline_runs_unchanged(slide, tmp_path):
    """The baseline on a one-tile ROI: points inside the ROI, valid classes and probabilities."""
    pytest.importorskip("torch")
    tiff, _ = slide
    output = tmp_path / "cells.json"
    roi = (1000, 600, 1900, 1500)
    predict_slide(tiff, SlideOptions(output=output, roi=roi, device="cpu", progress=False))
    points = predicted_points(output)
    assert len(points) > 20
    assert (points[:, 0] >= roi[0]).all() and (points[:, 0] < roi[2]).all()
    assert (points[:, 1] >= roi[1]).all() and (points[:, 1] < roi[3]).all()
    assert set(points[:, 2]) <= {1, 2}


def test_classical_detector_runs_unchanged(slide, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "examples" / "classical_detector" / "src"))
    tiff, _ = slide
    output = tmp_path / "cells.json"
    predict_slide(
        tiff,
        SlideOptions(
            output=output,
            detector="classical_detector:make_detector",
            roi=(0, 0, 1024, 1024),
            device="cpu",
            progress=False,
        ),
    )
    assert len(predicted_points(output)) > 20
    sys.modules.pop("classical_detector", None)


def test_tta_reaches_the_factory(slide, tmp_path):
    """--tta is handed to a factory that takes it; one that does not is told in one line."""
    from baseline_algorithm.detector import DetectorError

    tiff, truth = slide
    with pytest.raises(DetectorError, match="tta"):
        predict_slide(
            tiff,
            SlideOptions(
                output=tmp_path / "c.json",
                detector=ORACLE,
                checkpoint=truth,
                tta="flips",
                device="cpu",
                progress=False,
            ),
        )
    output = tmp_path / "cells.json"
    predict_slide(
        tiff,
        SlideOptions(
            output=output, roi=(1000, 600, 1900, 1500), tta="flips", device="cpu", progress=False
        ),
    )
    assert len(predicted_points(output)) > 20
