"""A slide's detections as a "Multiple points" document and as QuPath's GeoJSON.

Both are in level-0 pixels and written atomically: a file is either its old self or complete.

- ``cells.json``: every point named ``image_0`` (a slide is one image), ``[x, y, class]`` with
  the pixel index of the cell's centre, scoreable with ``ocelot score --whole-slide``.
- GeoJSON: a ``FeatureCollection`` of ``Point`` features at the pixel's centre (``x + 0.5``),
  each with ``properties.objectType`` ``"detection"``, ``properties.classification``
  ``{"name": "Tumor cell" | "Background cell", "color": [r, g, b]}`` and
  ``properties.probability``: QuPath's File > Import objects reads it as classified detections.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.constants import BC, TC
from evaluation.files import write_json_atomic
from evaluation.multiple_points import points_document
from evaluation.points import PointSet

__all__ = ["CLASSIFICATIONS", "cells_document", "geojson_document", "write_outputs"]

#: Class -> QuPath's classification (the names of QuPath's built-in classes and their colours).
CLASSIFICATIONS = {
    TC: {"name": "Tumor cell", "color": [200, 0, 0]},
    BC: {"name": "Background cell", "color": [0, 150, 0]},
}


def sorted_points(points: np.ndarray) -> np.ndarray:
    """Points (N, 4) ordered by y, then x: the same document whatever order the tiles ran in."""
    points = np.asarray(points, float).reshape(-1, 4)
    return points[np.lexsort((points[:, 0], points[:, 1]))]


def cells_document(points: np.ndarray) -> dict:
    """The "Multiple points" document of points (N, 4): x, y (level-0 px), class, probability."""
    points = sorted_points(points)
    count = len(points)
    return points_document(
        PointSet(
            np.zeros(count, np.int64),
            points[:, :2].astype(np.int64),
            points[:, 2].astype(np.int64),
            points[:, 3].astype(np.float64),
        )
    )


def geojson_document(points: np.ndarray) -> dict:
    """A GeoJSON FeatureCollection of the points (N, 4), one Point feature each."""
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [x + 0.5, y + 0.5]},
            "properties": {
                "objectType": "detection",
                "classification": CLASSIFICATIONS[int(label)],
                "probability": probability,
            },
        }
        for x, y, label, probability in sorted_points(points).tolist()
    ]
    return {"type": "FeatureCollection", "features": features}


def write_outputs(points: np.ndarray, cells: Path, geojson: Path | None) -> None:
    """Write ``cells`` (and ``geojson`` when given), each atomically."""
    write_json_atomic(cells, cells_document(points))
    if geojson is not None:
        write_json_atomic(geojson, geojson_document(points))
